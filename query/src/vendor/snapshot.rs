//! The vendor's snapshots: one ticker, all tickers (or those listed), and
//! the top 20 gainers or losers. A snapshot holds the ticker's newest New
//! York day with bars (`day`), the day with bars before it (`prevDay`,
//! looked for within [`PREV_DAY_LOOKBACK`] days), the newest minute bar
//! (`min`), the last trade and quote, and the change of the last price
//! from the previous day's close.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use insite_schemas::time::{now_ms, MAX_EVENT_TS_MS};
use insite_schemas::{Bar, Interval, Symbol};

use super::aggs::{days_of, ticker};
use super::body::{
    request_id, SnapshotDay, SnapshotMinute, SnapshotsResponse, TickerSnapshot,
    TickerSnapshotResponse, VendorQuote, VendorTrade,
};
use super::calendar::ny_day;
use super::last::{quote_of, trade_of};
use super::params::TickersParams;
use super::read::day_base;
use super::rollup::Granule;
use crate::api::{json_response, Caching};
use crate::error::{encode_json, ApiError, ErrorBody};
use crate::store::{Source, Symbols};
use crate::AppState;

/// Days before the newest day searched for the previous one.
pub const PREV_DAY_LOOKBACK: i64 = 10;

/// How many gainers or losers.
const TOP: usize = 20;

/// The newest minute bar of `symbol` (of the shortest served interval of
/// at least a minute that divides an hour, normally `1m`).
async fn minute_of(state: &AppState, symbol: &Symbol) -> Result<Option<Bar>, ApiError> {
    let interval = if state.inner.intervals.contains(&Interval::MINUTE) {
        Interval::MINUTE
    } else {
        day_base(state)?
    };
    let found = state.inner.store.latest_bar(symbol, interval).await?;
    found
        .map(|(json, _)| {
            serde_json::from_str(&json).map_err(|e| ApiError::Internal(format!("stored bar: {e}")))
        })
        .transpose()
}

/// The snapshot of `symbol` from its day buckets (oldest first).
async fn snapshot_of(
    state: &AppState,
    symbol: &Symbol,
    days: &[Granule],
) -> Result<Option<TickerSnapshot>, ApiError> {
    let Some(day) = days.last() else {
        return Ok(None);
    };
    let prev = days.len().checked_sub(2).and_then(|i| days.get(i));
    let (trade, quote, minute) = tokio::try_join!(
        trade_of(state, symbol),
        quote_of(state, symbol),
        minute_of(state, symbol)
    )?;
    let last_price = trade.as_ref().map_or(day.close, |t| t.price);
    let (change, perc) = match prev {
        Some(p) if p.close != 0.0 => {
            let change = last_price - p.close;
            (change, change / p.close * 100.0)
        }
        _ => (0.0, 0.0),
    };
    let updated_ms = trade
        .as_ref()
        .map(|t| t.ts)
        .into_iter()
        .chain(quote.as_ref().map(|q| q.ts))
        .chain(std::iter::once(day.last_bar))
        .max()
        .unwrap_or(day.last_bar);
    Ok(Some(TickerSnapshot {
        ticker: symbol.to_string(),
        todays_change_perc: perc,
        todays_change: change,
        updated: updated_ms.saturating_mul(1_000_000),
        day: SnapshotDay::of(day),
        prev_day: prev.map(SnapshotDay::of),
        min: minute.map(|b| SnapshotMinute {
            av: day.volume as f64,
            t: b.window_start,
            n: b.trades,
            o: b.open,
            h: b.high,
            l: b.low,
            c: b.close,
            v: b.volume as f64,
            vw: b.vwap,
        }),
        last_trade: trade.map(|t| VendorTrade::of(&t, false)),
        last_quote: quote.map(|q| VendorQuote::of(&q, false)),
    }))
}

/// Day buckets of `symbols` around the newest day with bars.
async fn recent_days(
    state: &AppState,
    symbols: Symbols<'_>,
) -> Result<BTreeMap<Symbol, Vec<Granule>>, ApiError> {
    let base = day_base(state)?;
    let one = match symbols {
        Symbols::One(s) => Some(s),
        _ => None,
    };
    let newest = state
        .inner
        .store
        .newest_bar_before(one, base, MAX_EVENT_TS_MS)
        .await?;
    let today = ny_day(now_ms());
    let Some(newest) = newest.map(ny_day) else {
        // Nothing in ClickHouse yet: today's bars, if Redis has them.
        return days_of(state, symbols, today - PREV_DAY_LOOKBACK, today + 1).await;
    };
    days_of(
        state,
        symbols,
        newest - PREV_DAY_LOOKBACK,
        newest.max(today) + 1,
    )
    .await
}

/// Snapshots of every symbol in `days`.
async fn snapshots(
    state: &AppState,
    days: &BTreeMap<Symbol, Vec<Granule>>,
) -> Result<Vec<TickerSnapshot>, ApiError> {
    let all =
        futures::future::try_join_all(days.iter().map(|(s, d)| snapshot_of(state, s, d))).await?;
    Ok(all.into_iter().flatten().collect())
}

/// The snapshot of one ticker.
#[utoipa::path(
    get,
    path = "/v2/snapshot/locale/us/markets/stocks/tickers/{ticker}",
    tag = "vendor",
    params(("ticker" = String, Path, description = "Ticker", pattern = "^[A-Z0-9.\\-]{1,12}$")),
    responses(
        (status = 200, description = "The snapshot", body = TickerSnapshotResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No bars of the ticker", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "A backing store is unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("api_key_query" = []))
)]
pub async fn ticker_snapshot(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let symbol = ticker(&symbol)?;
    let days = recent_days(&state, Symbols::One(&symbol)).await?;
    let days = days.get(&symbol).map(Vec::as_slice).unwrap_or_default();
    let snapshot = snapshot_of(&state, &symbol, days)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no bars of {symbol}")))?;
    let body = TickerSnapshotResponse {
        status: "OK",
        request_id: request_id(),
        ticker: snapshot,
    };
    Ok(json_response(
        &headers,
        encode_json(&body)?,
        Caching::Live(state.inner.config.cache.live_max_age_s),
        Source::ClickHouse,
    ))
}

/// Snapshots of all tickers, or of those listed.
#[utoipa::path(
    get,
    path = "/v2/snapshot/locale/us/markets/stocks/tickers",
    tag = "vendor",
    params(TickersParams),
    responses(
        (status = 200, description = "The snapshots", body = SnapshotsResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "A backing store is unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("api_key_query" = []))
)]
pub async fn all_snapshots(
    State(state): State<AppState>,
    params: Result<Query<TickersParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = params
        .map(|Query(t)| t)
        .map_err(|e| ApiError::bad("query", e.body_text()))?;
    let listed: Option<Vec<Symbol>> = params
        .tickers
        .as_deref()
        .map(|list| {
            list.split(',')
                .map(|s| Symbol::new(s).map_err(|e| ApiError::bad("tickers", e.reason)))
                .collect()
        })
        .transpose()?;
    let symbols = match &listed {
        Some(list) => Symbols::Some(list),
        None => Symbols::All,
    };
    let days = recent_days(&state, symbols).await?;
    let tickers = snapshots(&state, &days).await?;
    respond(&state, &headers, tickers)
}

/// The top 20 gainers or losers by change since the previous close.
#[utoipa::path(
    get,
    path = "/v2/snapshot/locale/us/markets/stocks/{direction}",
    tag = "vendor",
    params(("direction" = String, Path, description = "gainers or losers", pattern = "^(gainers|losers)$")),
    responses(
        (status = 200, description = "The snapshots, biggest move first", body = SnapshotsResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "A backing store is unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("api_key_query" = []))
)]
pub async fn movers(
    State(state): State<AppState>,
    Path(direction): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let gainers = match direction.as_str() {
        "gainers" => true,
        "losers" => false,
        other => {
            return Err(ApiError::bad(
                "direction",
                format!("{other:?} is not gainers or losers"),
            ))
        }
    };
    let days = recent_days(&state, Symbols::All).await?;
    let mut tickers: Vec<TickerSnapshot> = snapshots(&state, &days)
        .await?
        .into_iter()
        .filter(|t| t.prev_day.is_some())
        .filter(|t| {
            if gainers {
                t.todays_change_perc > 0.0
            } else {
                t.todays_change_perc < 0.0
            }
        })
        .collect();
    tickers.sort_by(|a, b| {
        let order = a.todays_change_perc.total_cmp(&b.todays_change_perc);
        if gainers {
            order.reverse()
        } else {
            order
        }
    });
    tickers.truncate(TOP);
    respond(&state, &headers, tickers)
}

/// The answer of several snapshots.
fn respond(
    state: &AppState,
    headers: &HeaderMap,
    tickers: Vec<TickerSnapshot>,
) -> Result<Response, ApiError> {
    let body = SnapshotsResponse {
        status: "OK",
        request_id: request_id(),
        count: tickers.len(),
        tickers,
    };
    Ok(json_response(
        headers,
        encode_json(&body)?,
        Caching::Live(state.inner.config.cache.live_max_age_s),
        Source::ClickHouse,
    ))
}
