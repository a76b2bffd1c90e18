//! The vendor's aggregates routes: custom bars over a range (any
//! multiplier and timespan, with `next_url` paging), the previous close,
//! one ticker's daily open/close, and the grouped daily bars of every
//! ticker on one day.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use insite_schemas::time::now_ms;
use insite_schemas::Symbol;

use super::body::{
    request_id, GroupedDailyResponse, OpenCloseResponse, VendorAgg, VendorAggsResponse,
};
use super::calendar::{civil_from_days, ny_day, ny_midnight, Bucketing, Timespan};
use super::params::{
    base_url, parse_adjusted, parse_bound, parse_day, parse_desc, parse_multiplier, AdjustedParams,
    AggsParams,
};
use super::read::{day_base, day_bucketing, durability, rolled, Rolled};
use super::rollup::{roll_up, Granule};
use crate::api::{json_response, Caching};
use crate::error::{encode_json, ApiError, ErrorBody};
use crate::store::{Durability, Source, Symbols};
use crate::AppState;

/// The path of the aggregates route.
type AggsPath = (String, String, String, String, String);

/// The query string's parameters, or 400.
fn query<T: Default>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad("query", e.body_text()))
}

/// A ticker.
pub(super) fn ticker(raw: &str) -> Result<Symbol, ApiError> {
    Symbol::new(raw).map_err(|e| ApiError::bad("ticker", e.reason))
}

/// How an answer may be cached.
fn caching(state: &AppState, durability: Durability) -> Caching {
    match durability {
        Durability::Durable => Caching::Immutable(state.inner.config.cache.immutable_max_age_s),
        Durability::Open => Caching::Live(state.inner.config.cache.live_max_age_s),
    }
}

/// The cached answer under `key` (a durable request's), counted as a cache
/// hit of `kind`, if there is one.
async fn cached(
    state: &AppState,
    headers: &HeaderMap,
    key: Option<&str>,
    kind: &'static str,
) -> Result<Option<Response>, ApiError> {
    let Some(key) = key else { return Ok(None) };
    let Some(body) = state.inner.store.cached_answer(key).await? else {
        return Ok(None);
    };
    state.inner.cache.record(kind, Source::Cache);
    Ok(Some(json_response(
        headers,
        body,
        caching(state, Durability::Durable),
        Source::Cache,
    )))
}

/// Custom bars of a ticker over a range.
#[utoipa::path(
    get,
    path = "/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}",
    tag = "vendor",
    params(
        ("ticker" = String, Path, description = "Ticker", pattern = "^[A-Z0-9.\\-]{1,12}$"),
        ("multiplier" = u32, Path, description = "Units per bar", minimum = 1, maximum = 100000),
        ("timespan" = String, Path, description = "The unit",
            pattern = "^(second|minute|hour|day|week|month|quarter|year)$"),
        ("from" = String, Path, description = "Start: YYYY-MM-DD (a New York day) or ms since the epoch",
            pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{12,13})$"),
        ("to" = String, Path, description = "End, inclusive: YYYY-MM-DD (that whole New York day) or ms",
            pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{12,13})$"),
        AggsParams,
    ),
    responses(
        (status = 200, description = "Bars rolled up from stored bars", body = VendorAggsResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "A backing store is unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("api_key_query" = []))
)]
pub async fn aggs(
    State(state): State<AppState>,
    Path((symbol, multiplier, timespan, from, to)): Path<AggsPath>,
    params: Result<Query<AggsParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let symbol = ticker(&symbol)?;
    let multiplier = parse_multiplier(&multiplier)?;
    let timespan: Timespan = timespan.parse()?;
    let bucketing = Bucketing::new(multiplier, timespan)?;
    let from = parse_bound("from", &from, false)?;
    let to = parse_bound("to", &to, true)?;
    let adjusted = parse_adjusted(params.adjusted.as_deref())?;
    let desc = parse_desc(params.sort.as_deref())?;
    let limits = &state.inner.config.limits;
    let limit = crate::api::parse_limit(
        params.limit.as_deref(),
        limits.default_page,
        limits.max_page,
        "limit",
    )?;
    let max_days = if bucketing.fixed_ms().is_some() {
        limits.max_range_days
    } else {
        state.inner.config.vendor.max_range_days
    };
    let max_span = i64::from(max_days.max(1)) * 86_400_000;
    // A longer range is read in parts: this page covers the first (or, newest
    // first, the last) `max_days` of it, and `next_url` goes on.
    let (from_read, to_read) = if to - from <= max_span {
        (from, to)
    } else if desc {
        (to - max_span, to)
    } else {
        (from, from + max_span)
    };
    // As the vendor does, `from` snaps to the start of its bucket: the
    // buckets starting in [start(from), to], each read whole.
    let first = bucketing.start(from_read);
    let last = bucketing.start(to_read);
    let end = bucketing.next(last);
    let mut body = VendorAggsResponse {
        ticker: symbol.to_string(),
        adjusted: false,
        query_count: 0,
        results_count: 0,
        count: 0,
        results: Vec::new(),
        status: "OK",
        request_id: request_id(),
        next_url: None,
    };
    // `to` before `from`: an empty range.
    if to < from {
        return Ok(json_response(
            &headers,
            encode_json(&body)?,
            Caching::Live(state.inner.config.cache.live_max_age_s),
            Source::ClickHouse,
        ));
    }
    let read = Rolled {
        symbols: Symbols::One(&symbol),
        bucketing,
        from: first,
        to: end,
        desc,
        limit: Some(limit),
    };
    // A durable answer never changes: computed once, then served from
    // Redis (with the request id of the request that computed it).
    let store = &state.inner.store;
    let key = (durability(&state, &read).await? == Durability::Durable).then(|| {
        store.vendor_answer_key(
            &symbol,
            &format!(
                "aggs|{multiplier}|{timespan}|{from}|{to}|{desc}|{limit}|{adjusted}|{}",
                base_url(&headers)
            ),
        )
    });
    if let Some(response) = cached(&state, &headers, key.as_deref(), "vendor_aggs").await? {
        return Ok(response);
    }
    let answer = rolled(&state, &read).await?;
    state.inner.cache.record("vendor_aggs", Source::ClickHouse);
    let mut buckets: Vec<Granule> = answer.buckets.into_values().next().unwrap_or_default();
    if desc {
        buckets.reverse();
    }
    let more = buckets.len() > limit;
    buckets.truncate(limit);
    // The next page: after the last result when more follow in the part
    // read, else after the part read when the range goes on.
    let next = if more {
        buckets.last().map(|g| {
            if desc {
                (from, g.start - 1)
            } else {
                (bucketing.next(g.start), to)
            }
        })
    } else if desc && from_read > from {
        Some((from, first - 1))
    } else if !desc && to_read < to {
        Some((end, to))
    } else {
        None
    };
    body.next_url = next.map(|(next_from, next_to)| {
        format!(
            "{}/v2/aggs/ticker/{symbol}/range/{multiplier}/{timespan}/{next_from}/{next_to}?adjusted={adjusted}&sort={}&limit={limit}",
            base_url(&headers),
            if desc { "desc" } else { "asc" },
        )
    });
    body.query_count = answer.granules;
    body.results = buckets.iter().map(|g| VendorAgg::of(g, None)).collect();
    body.results_count = body.results.len();
    body.count = body.results.len();
    let text = encode_json(&body)?;
    if let (Some(key), Durability::Durable) = (key, answer.durability) {
        store.cache_answer(&key, &text).await?;
    }
    Ok(json_response(
        &headers,
        text,
        caching(&state, answer.durability),
        Source::ClickHouse,
    ))
}

/// The newest New York day with bars of `symbol` (or of any symbol)
/// before day `before`.
async fn newest_day_before(
    state: &AppState,
    symbol: Option<&Symbol>,
    before: i64,
) -> Result<Option<i64>, ApiError> {
    let base = day_base(state)?;
    let newest = state
        .inner
        .store
        .newest_bar_before(symbol, base, ny_midnight(before))
        .await?;
    Ok(newest.map(ny_day))
}

/// The day bucket of `symbol` on New York day `day`.
pub(super) async fn day_of(
    state: &AppState,
    symbol: &Symbol,
    day: i64,
) -> Result<Option<Granule>, ApiError> {
    let answer = rolled(
        state,
        &Rolled {
            symbols: Symbols::One(symbol),
            bucketing: day_bucketing(),
            from: ny_midnight(day),
            to: ny_midnight(day + 1),
            desc: false,
            limit: None,
        },
    )
    .await?;
    Ok(answer
        .buckets
        .into_values()
        .next()
        .and_then(|b| b.into_iter().next()))
}

/// The previous day's bar of a ticker: the newest New York day with bars
/// before today.
#[utoipa::path(
    get,
    path = "/v2/aggs/ticker/{ticker}/prev",
    tag = "vendor",
    params(
        ("ticker" = String, Path, description = "Ticker", pattern = "^[A-Z0-9.\\-]{1,12}$"),
        AdjustedParams,
    ),
    responses(
        (status = 200, description = "The previous day's bar (no results when none)", body = VendorAggsResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "A backing store is unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("api_key_query" = []))
)]
pub async fn prev_close(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    params: Result<Query<AdjustedParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    parse_adjusted(params.adjusted.as_deref())?;
    let symbol = ticker(&symbol)?;
    let today = ny_day(now_ms());
    let day = newest_day_before(&state, Some(&symbol), today).await?;
    let bar = match day {
        Some(day) => day_of(&state, &symbol, day).await?,
        None => None,
    };
    let results: Vec<VendorAgg> = bar
        .iter()
        .map(|g| VendorAgg::of(g, Some(symbol.as_str())))
        .collect();
    let body = VendorAggsResponse {
        ticker: symbol.to_string(),
        adjusted: false,
        query_count: results.len(),
        results_count: results.len(),
        count: results.len(),
        results,
        status: "OK",
        request_id: request_id(),
        next_url: None,
    };
    Ok(json_response(
        &headers,
        encode_json(&body)?,
        Caching::Live(state.inner.config.cache.live_max_age_s),
        Source::ClickHouse,
    ))
}

/// `YYYY-MM-DD` of day `days` since 1970-01-01.
fn date_text(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A ticker's open, high, low, close, volume, pre-market open and
/// after-hours close on one New York day.
#[utoipa::path(
    get,
    path = "/v1/open-close/{ticker}/{date}",
    tag = "vendor",
    params(
        ("ticker" = String, Path, description = "Ticker", pattern = "^[A-Z0-9.\\-]{1,12}$"),
        ("date" = String, Path, description = "A New York day, YYYY-MM-DD", pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
        AdjustedParams,
    ),
    responses(
        (status = 200, description = "The day", body = OpenCloseResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No bars that day", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "A backing store is unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("api_key_query" = []))
)]
pub async fn open_close(
    State(state): State<AppState>,
    Path((symbol, date)): Path<(String, String)>,
    params: Result<Query<AdjustedParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    parse_adjusted(params.adjusted.as_deref())?;
    let symbol = ticker(&symbol)?;
    let day = parse_day("date", &date)?;
    // Half-hour buckets: the regular session is 09:30..16:00 New York.
    let half_hour = Bucketing::new(30, Timespan::Minute)?;
    let midnight = ny_midnight(day);
    let answer = rolled(
        &state,
        &Rolled {
            symbols: Symbols::One(&symbol),
            bucketing: half_hour,
            from: midnight,
            to: ny_midnight(day + 1),
            desc: false,
            limit: None,
        },
    )
    .await?;
    let halves = answer.buckets.into_values().next().unwrap_or_default();
    let Some(whole) = roll_up(&halves, day_bucketing()).into_iter().next() else {
        return Err(ApiError::NotFound(format!(
            "no bars of {symbol} on {}",
            date_text(day)
        )));
    };
    let open_at = midnight + 9 * 3_600_000 + 1_800_000;
    let close_at = midnight + 16 * 3_600_000;
    let body = OpenCloseResponse {
        status: "OK",
        from: date_text(day),
        symbol: symbol.to_string(),
        open: whole.open,
        high: whole.high,
        low: whole.low,
        close: whole.close,
        volume: whole.volume as f64,
        pre_market: halves.first().filter(|g| g.start < open_at).map(|g| g.open),
        after_hours: halves
            .iter()
            .rev()
            .find(|g| g.start >= close_at)
            .map(|g| g.close),
    };
    Ok(json_response(
        &headers,
        encode_json(&body)?,
        caching(&state, answer.durability),
        Source::ClickHouse,
    ))
}

/// The daily bar of every ticker on one New York day.
#[utoipa::path(
    get,
    path = "/v2/aggs/grouped/locale/us/market/stocks/{date}",
    tag = "vendor",
    params(
        ("date" = String, Path, description = "A New York day, YYYY-MM-DD", pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
        AdjustedParams,
    ),
    responses(
        (status = 200, description = "One bar per ticker with bars that day", body = GroupedDailyResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "A backing store is unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("api_key_query" = []))
)]
pub async fn grouped_daily(
    State(state): State<AppState>,
    Path(date): Path<String>,
    params: Result<Query<AdjustedParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    parse_adjusted(params.adjusted.as_deref())?;
    let day = parse_day("date", &date)?;
    let read = Rolled {
        symbols: Symbols::All,
        bucketing: day_bucketing(),
        from: ny_midnight(day),
        to: ny_midnight(day + 1),
        desc: false,
        limit: None,
    };
    // A day the durable frontier has passed never changes: its answer is
    // computed once, then served from Redis.
    let store = &state.inner.store;
    let key = (durability(&state, &read).await? == Durability::Durable)
        .then(|| store.vendor_all_answer_key(&format!("grouped|{date}")));
    if let Some(response) = cached(&state, &headers, key.as_deref(), "vendor_grouped").await? {
        return Ok(response);
    }
    let answer = rolled(&state, &read).await?;
    state
        .inner
        .cache
        .record("vendor_grouped", Source::ClickHouse);
    let results: Vec<VendorAgg> = answer
        .buckets
        .iter()
        .filter_map(|(s, b)| b.first().map(|g| VendorAgg::of(g, Some(s.as_str()))))
        .collect();
    let body = GroupedDailyResponse {
        adjusted: false,
        query_count: results.len(),
        results_count: results.len(),
        results,
        status: "OK",
        request_id: request_id(),
    };
    let text = encode_json(&body)?;
    if let (Some(key), Durability::Durable) = (key, answer.durability) {
        store.cache_answer(&key, &text).await?;
    }
    Ok(json_response(
        &headers,
        text,
        caching(&state, answer.durability),
        Source::ClickHouse,
    ))
}

/// Day buckets of several symbols over New York days `[first, end)`.
pub(super) async fn days_of(
    state: &AppState,
    symbols: Symbols<'_>,
    first: i64,
    end: i64,
) -> Result<std::collections::BTreeMap<Symbol, Vec<Granule>>, ApiError> {
    let answer = rolled(
        state,
        &Rolled {
            symbols,
            bucketing: day_bucketing(),
            from: ny_midnight(first),
            to: ny_midnight(end),
            desc: false,
            limit: None,
        },
    )
    .await?;
    Ok(answer.buckets)
}
