//! The latest state of a symbol: its current bar, latest quote and latest
//! trade, served as the JSON Redis holds (live caching; 404 when nothing is
//! known).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::params::{parse_interval, parse_symbol, query_params, IntervalParams};
use super::response::{answer, Caching};
use crate::error::{ApiError, ErrorBody};
use crate::store::Source;
use crate::AppState;

/// The answer of a latest-state route: what the store `found`, else 404
/// saying `what` is missing.
fn latest_response(
    state: &AppState,
    headers: &HeaderMap,
    kind: &'static str,
    found: Option<(String, Source)>,
    what: String,
) -> Result<Response, ApiError> {
    let (json, source) = found.ok_or(ApiError::NotFound(what))?;
    Ok(answer(
        state,
        headers,
        kind,
        json,
        Caching::live(state),
        source,
    ))
}

/// The current (provisional, or last final) bar of a symbol.
#[utoipa::path(
    get,
    path = "/v1/symbols/{symbol}/bar",
    params(("symbol" = String, Path, description = "Ticker"), IntervalParams),
    responses(
        (status = 200, description = "JSON of a Bar: symbol, interval (s), window_start (ms), open, high, low, close, volume, vwap, trades, finality", body = Object),
        (status = 404, description = "No bar known", body = ErrorBody),
        (status = 400, description = "Bad parameter", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn latest_bar(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    query: Result<Query<IntervalParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query_params(query)?;
    let symbol = parse_symbol(&symbol)?;
    let interval = parse_interval(&state, params.interval.as_deref())?;
    let found = state.inner.store.latest_bar(&symbol, interval).await?;
    latest_response(
        &state,
        &headers,
        "bar",
        found,
        format!("no {interval} bar of {symbol}"),
    )
}

/// The latest quote of a symbol.
#[utoipa::path(
    get,
    path = "/v1/symbols/{symbol}/quote",
    params(("symbol" = String, Path, description = "Ticker")),
    responses(
        (status = 200, description = "JSON of a Quote: symbol, ts (ms), bid, bid_size, ask, ask_size", body = Object),
        (status = 404, description = "No quote known", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn latest_quote(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let symbol = parse_symbol(&symbol)?;
    let found = state.inner.store.latest_quote(&symbol).await?;
    latest_response(
        &state,
        &headers,
        "quote",
        found,
        format!("no quote of {symbol}"),
    )
}

/// The latest trade of a symbol.
#[utoipa::path(
    get,
    path = "/v1/symbols/{symbol}/trade",
    params(("symbol" = String, Path, description = "Ticker")),
    responses(
        (status = 200, description = "JSON of a Trade: symbol, ts (ms), price, size, exchange, trade_id, conditions", body = Object),
        (status = 404, description = "No trade known", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn latest_trade(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let symbol = parse_symbol(&symbol)?;
    let found = state.inner.store.latest_trade(&symbol).await?;
    latest_response(
        &state,
        &headers,
        "trade",
        found,
        format!("no trade of {symbol}"),
    )
}
