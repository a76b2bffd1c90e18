//! The `/v1` HTTP handlers, their parameter checks and response shapes.
//!
//! Every parameter is validated before any backend is asked: symbols
//! against the ticker pattern, intervals against those served, ranges and
//! page sizes against the configured limits. A bad one gives 400 with a
//! JSON body naming the parameter ([`crate::error::ErrorBody`]).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use insite_schemas::{Bar, Interval, Symbol, TimestampMs};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use insite_schemas::time::now_ms;

use crate::store::{Bars, RangeAnswer, RangeKind, RangeRequest, Sentiments, Source};
use crate::AppState;

/// How long a response may be kept by browsers and CDNs.
#[derive(Debug, Clone, Copy)]
pub enum Caching {
    /// Never changes (every window closed): kept for `max_age` seconds.
    Immutable(u64),
    /// May change soon: kept for `max_age` seconds, then revalidated.
    Live(u64),
}

/// A JSON response with `ETag` (a hash of the body), `Cache-Control` and
/// `X-Insite-Source`; 304 when the client already holds this body.
pub fn json_response(
    request_headers: &HeaderMap,
    body: String,
    caching: Caching,
    source: Source,
) -> Response {
    let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(body.as_bytes()));
    let cache_control = match caching {
        Caching::Immutable(age) => format!("public, max-age={age}, immutable"),
        Caching::Live(age) => format!("public, max-age={age}, must-revalidate"),
    };
    let not_modified = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    headers.insert("x-insite-source", HeaderValue::from_static(source.as_str()));
    response
}

fn parse_symbol(raw: &str) -> Result<Symbol, ApiError> {
    Symbol::new(raw).map_err(|e| ApiError::bad("symbol", e.reason.clone()))
}

fn parse_interval(state: &AppState, raw: Option<&str>) -> Result<Interval, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::bad("interval", "missing (e.g. interval=1m)"))?;
    let interval: Interval = raw
        .parse()
        .map_err(|e: insite_schemas::InvalidValue| ApiError::bad("interval", e.reason.clone()))?;
    if state.inner.intervals.contains(&interval) {
        Ok(interval)
    } else {
        Err(ApiError::bad(
            "interval",
            format!(
                "{interval} is not served; served intervals: {}",
                state
                    .inner
                    .intervals
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A range bound: milliseconds since the epoch, or a `YYYY-MM-DD` date
/// (UTC midnight; for `to`, the end of that day).
pub fn parse_time(
    field: &'static str,
    raw: &str,
    end_of_day: bool,
) -> Result<TimestampMs, ApiError> {
    if let Ok(ms) = raw.parse::<i64>() {
        return insite_schemas::time::check_event_time(field, ms)
            .map(|()| ms)
            .map_err(|e| ApiError::bad(field, e.reason.clone()));
    }
    let bad = || {
        ApiError::bad(
            field,
            format!("{raw:?} is neither milliseconds since the epoch nor a YYYY-MM-DD date"),
        )
    };
    let parts: Vec<&str> = raw.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if !(1..=days_in_month).contains(&d) {
        return Err(bad());
    }
    let day = days_from_civil(y, m, d) + i64::from(end_of_day);
    let ms = day * 86_400_000;
    insite_schemas::time::check_event_time(field, ms.min(insite_schemas::time::MAX_EVENT_TS_MS - 1))
        .map(|()| ms)
        .map_err(|e| ApiError::bad(field, e.reason.clone()))
}

/// Query parameters of range requests.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Most results in this page (default and maximum from config).
    pub limit: Option<String>,
}

fn parse_limit(
    raw: Option<&str>,
    default: usize,
    max: usize,
    field: &'static str,
) -> Result<usize, ApiError> {
    let Some(raw) = raw else { return Ok(default) };
    let n: usize = raw
        .parse()
        .map_err(|_| ApiError::bad(field, format!("{raw:?} is not a positive integer")))?;
    if n == 0 || n > max {
        return Err(ApiError::bad(field, format!("{n} is outside 1..={max}")));
    }
    Ok(n)
}

fn query_params<T: Default>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad("query", e.body_text()))
}

/// Validates a range request.
fn range_request(
    state: &AppState,
    symbol: &str,
    interval: &str,
    from: &str,
    to: &str,
    limit: Option<&str>,
) -> Result<RangeRequest, ApiError> {
    let limits = &state.inner.config.limits;
    let symbol = parse_symbol(symbol)?;
    let interval = parse_interval(state, Some(interval))?;
    let from = parse_time("from", from, false)?;
    let to = parse_time("to", to, true)?;
    if to <= from {
        return Err(ApiError::bad(
            "to",
            format!("{to} is not after from ({from})"),
        ));
    }
    let max_span = i64::from(limits.max_range_days) * 86_400_000;
    if to - from > max_span {
        return Err(ApiError::bad(
            "to",
            format!("the range spans more than {} days", limits.max_range_days),
        ));
    }
    let limit = parse_limit(limit, limits.default_page, limits.max_page, "limit")?;
    Ok(RangeRequest {
        symbol,
        interval,
        // Whole windows: the first one starting at or after `from`.
        from: interval.window_start(from + interval.millis() - 1),
        to,
        limit,
    })
}

fn caching_of(state: &AppState, r: &RangeRequest, now: TimestampMs) -> Caching {
    let cache = &state.inner.config.cache;
    if state.inner.store.is_closed(r.to, now) {
        Caching::Immutable(cache.immutable_max_age_s)
    } else {
        Caching::Live(cache.live_max_age_s)
    }
}

/// A cached answer, or what to do without one.
enum Cached {
    /// The cached response.
    Hit(Response),
    /// No cached answer: compute it, then cache it under `key` if `Some`.
    Miss {
        /// Where the answer is cached (closed ranges only).
        key: Option<String>,
        /// The answer's caching.
        caching: Caching,
    },
}

/// Looks up the cached answer of a closed range.
async fn cached_answer(
    state: &AppState,
    kind: &'static str,
    r: &RangeRequest,
    now: TimestampMs,
    headers: &HeaderMap,
) -> Result<Cached, ApiError> {
    let caching = caching_of(state, r, now);
    if !matches!(caching, Caching::Immutable(_)) {
        return Ok(Cached::Miss { key: None, caching });
    }
    let key = state.inner.store.answer_key(kind, r);
    if let Some(body) = state.inner.store.cached_answer(&key).await? {
        state.inner.cache.record(kind, Source::Cache);
        return Ok(Cached::Hit(json_response(
            headers,
            body,
            caching,
            Source::Cache,
        )));
    }
    Ok(Cached::Miss {
        key: Some(key),
        caching,
    })
}

/// Caches a closed range's answer, then answers.
async fn finish_range(
    state: &AppState,
    headers: &HeaderMap,
    key: Option<String>,
    body: String,
    caching: Caching,
    source: Source,
) -> Result<Response, ApiError> {
    if let Some(key) = key {
        state.inner.store.cache_answer(&key, &body).await?;
    }
    Ok(json_response(headers, body, caching, source))
}

fn next_url(
    base: &str,
    r: &RangeRequest,
    last_start: Option<TimestampMs>,
    more: bool,
) -> Option<String> {
    let next_from = last_start? + r.interval.millis();
    more.then(|| {
        format!(
            "/v1/{base}/{}/range/{}/{next_from}/{}?limit={}",
            r.symbol, r.interval, r.to, r.limit
        )
    })
}

/// One bar in Polygon's aggregates shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct Agg {
    /// Open.
    pub o: f64,
    /// High.
    pub h: f64,
    /// Low.
    pub l: f64,
    /// Close.
    pub c: f64,
    /// Volume.
    pub v: u64,
    /// Volume-weighted average price.
    pub vw: f64,
    /// Number of trades.
    pub n: u64,
    /// Window start, ms since the epoch.
    pub t: i64,
    /// Whether the bar is final (`false`: the window is still open).
    #[serde(rename = "final")]
    pub is_final: bool,
}

impl From<&Bar> for Agg {
    fn from(b: &Bar) -> Self {
        Self {
            o: b.open,
            h: b.high,
            l: b.low,
            c: b.close,
            v: b.volume,
            vw: b.vwap,
            n: b.trades,
            t: b.window_start,
            is_final: b.finality == insite_schemas::Finality::Final,
        }
    }
}

/// Bars over a range, in Polygon's aggregates shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct AggsResponse {
    /// The symbol.
    pub ticker: String,
    /// `"OK"`.
    pub status: &'static str,
    /// Always false: prices are as traded.
    pub adjusted: bool,
    /// The interval, e.g. `1m`.
    pub interval: String,
    /// Bars in the range (before paging).
    #[serde(rename = "queryCount")]
    pub query_count: usize,
    /// Bars in this page.
    #[serde(rename = "resultsCount")]
    pub results_count: usize,
    /// The bars, oldest first.
    pub results: Vec<Agg>,
    /// The next page, when the range holds more than `limit` bars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_url: Option<String>,
}

/// Sentiment windows over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentimentResponse {
    /// The symbol.
    pub ticker: String,
    /// `"OK"`.
    pub status: &'static str,
    /// The interval.
    pub interval: String,
    /// Windows in this page.
    #[serde(rename = "resultsCount")]
    pub results_count: usize,
    /// The windows, oldest first (JSON of `SentimentWindow`).
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<insite_schemas::SentimentWindow>,
    /// The next page, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_url: Option<String>,
}

fn encode<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| ApiError::Internal(format!("encoding: {e}")))
}

/// Bars of a symbol over a range and interval.
#[utoipa::path(
    get,
    path = "/v1/aggs/{symbol}/range/{interval}/{from}/{to}",
    params(
        ("symbol" = String, Path, description = "Ticker, [A-Z0-9.-]{1,12}"),
        ("interval" = String, Path, description = "A served interval, e.g. 1m"),
        ("from" = String, Path, description = "Start: ms since the epoch or YYYY-MM-DD (inclusive)"),
        ("to" = String, Path, description = "End: ms since the epoch (exclusive) or YYYY-MM-DD (that whole day)"),
        PageParams,
    ),
    responses(
        (status = 200, description = "Bars; immutable when every window has closed", body = AggsResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn aggs(
    State(state): State<AppState>,
    Path((symbol, interval, from, to)): Path<(String, String, String, String)>,
    query: Result<Query<PageParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query_params(query)?;
    let r = range_request(
        &state,
        &symbol,
        &interval,
        &from,
        &to,
        params.limit.as_deref(),
    )?;
    let now = now_ms();
    let cached = cached_answer(&state, Bars::NAME, &r, now, &headers).await?;
    let (key, caching) = match cached {
        Cached::Hit(response) => return Ok(response),
        Cached::Miss { key, caching } => (key, caching),
    };
    let answer: RangeAnswer<Bar> = state.inner.store.range::<Bars>(&r, now).await?;
    state.inner.cache.record(Bars::NAME, answer.source);
    let results: Vec<Agg> = answer.items.iter().map(Agg::from).collect();
    let body = AggsResponse {
        ticker: r.symbol.to_string(),
        status: "OK",
        adjusted: false,
        interval: r.interval.to_string(),
        query_count: results.len(),
        results_count: results.len(),
        next_url: next_url("aggs", &r, results.last().map(|a| a.t), answer.more),
        results,
    };
    finish_range(
        &state,
        &headers,
        key,
        encode(&body)?,
        caching,
        answer.source,
    )
    .await
}

/// Sentiment of a symbol over a range and interval.
#[utoipa::path(
    get,
    path = "/v1/sentiment/{symbol}/range/{interval}/{from}/{to}",
    params(
        ("symbol" = String, Path, description = "Ticker"),
        ("interval" = String, Path, description = "A served interval"),
        ("from" = String, Path, description = "Start: ms or YYYY-MM-DD"),
        ("to" = String, Path, description = "End: ms (exclusive) or YYYY-MM-DD"),
        PageParams,
    ),
    responses(
        (status = 200, description = "Sentiment windows", body = SentimentResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn sentiment(
    State(state): State<AppState>,
    Path((symbol, interval, from, to)): Path<(String, String, String, String)>,
    query: Result<Query<PageParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query_params(query)?;
    let r = range_request(
        &state,
        &symbol,
        &interval,
        &from,
        &to,
        params.limit.as_deref(),
    )?;
    let now = now_ms();
    let (key, caching) = match cached_answer(&state, Sentiments::NAME, &r, now, &headers).await? {
        Cached::Hit(response) => return Ok(response),
        Cached::Miss { key, caching } => (key, caching),
    };
    let answer = state.inner.store.range::<Sentiments>(&r, now).await?;
    state.inner.cache.record(Sentiments::NAME, answer.source);
    let body = SentimentResponse {
        ticker: r.symbol.to_string(),
        status: "OK",
        interval: r.interval.to_string(),
        results_count: answer.items.len(),
        next_url: next_url(
            "sentiment",
            &r,
            answer.items.last().map(|w| w.window_start),
            answer.more,
        ),
        results: answer.items,
    };
    finish_range(
        &state,
        &headers,
        key,
        encode(&body)?,
        caching,
        answer.source,
    )
    .await
}

/// Query parameters of the current bar.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IntervalParams {
    /// A served interval, e.g. `1m`.
    pub interval: Option<String>,
}

fn latest_response(
    state: &AppState,
    headers: &HeaderMap,
    kind: &'static str,
    found: Option<(String, Source)>,
    what: String,
) -> Result<Response, ApiError> {
    let (json, source) = found.ok_or(ApiError::NotFound(what))?;
    state.inner.cache.record(kind, source);
    Ok(json_response(
        headers,
        json,
        Caching::Live(state.inner.config.cache.live_max_age_s),
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

/// Query parameters of the trending list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrendingParams {
    /// A served interval, e.g. `1m`.
    pub interval: Option<String>,
    /// Top N (default 10).
    pub limit: Option<String>,
}

/// The symbols trending now.
#[utoipa::path(
    get,
    path = "/v1/trending",
    params(TrendingParams),
    responses(
        (status = 200, description = "JSON of a Trending list: interval, window_start, entries [{symbol, mentions, zscore}], finality", body = Object),
        (status = 404, description = "No trending list yet", body = ErrorBody),
        (status = 400, description = "Bad parameter", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn trending(
    State(state): State<AppState>,
    query: Result<Query<TrendingParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query_params(query)?;
    let interval = parse_interval(&state, params.interval.as_deref())?;
    let limit = parse_limit(
        params.limit.as_deref(),
        10,
        state.inner.config.limits.max_list,
        "limit",
    )?;
    let (t, source) = state
        .inner
        .store
        .trending(interval, limit)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no {interval} trending list yet")))?;
    state.inner.cache.record("trending", source);
    Ok(json_response(
        &headers,
        encode(&t)?,
        Caching::Live(state.inner.config.cache.live_max_age_s),
        source,
    ))
}

/// Query parameters of recent alerts.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// Only this symbol's alerts.
    pub symbol: Option<String>,
    /// Most alerts (default 50).
    pub limit: Option<String>,
}

/// Recent alerts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsResponse {
    /// `"OK"`.
    pub status: &'static str,
    /// Alerts, newest first (JSON of `Alert`: symbol, kind, interval, window_start, value, threshold, message).
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<insite_schemas::Alert>,
}

/// Recent alerts, of all symbols or of one.
#[utoipa::path(
    get,
    path = "/v1/alerts",
    params(AlertParams),
    responses(
        (status = 200, description = "Alerts, newest first", body = AlertsResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn alerts(
    State(state): State<AppState>,
    query: Result<Query<AlertParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query_params(query)?;
    let symbol = params.symbol.as_deref().map(parse_symbol).transpose()?;
    let limit = parse_limit(
        params.limit.as_deref(),
        50,
        state.inner.config.limits.max_list,
        "limit",
    )?;
    let (results, source) = state.inner.store.alerts(symbol.as_ref(), limit).await?;
    state.inner.cache.record("alerts", source);
    Ok(json_response(
        &headers,
        encode(&AlertsResponse {
            status: "OK",
            results,
        })?,
        Caching::Live(state.inner.config.cache.live_max_age_s),
        source,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_millis() {
        assert_eq!(
            parse_time("from", "2023-11-14", false).unwrap(),
            1_699_920_000_000
        );
        assert_eq!(
            parse_time("to", "2023-11-14", true).unwrap(),
            1_700_006_400_000
        );
        assert_eq!(
            parse_time("from", "2024-02-29", false).unwrap(),
            1_709_164_800_000
        );
        assert_eq!(
            parse_time("from", "1700000000000", false).unwrap(),
            1_700_000_000_000
        );
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "23-01-01",
            "yesterday",
            "12",
            "2023-1-01",
        ] {
            assert!(parse_time("from", bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None, 5, 10, "limit").unwrap(), 5);
        assert_eq!(parse_limit(Some("10"), 5, 10, "limit").unwrap(), 10);
        for bad in ["0", "11", "-1", "x"] {
            assert!(parse_limit(Some(bad), 5, 10, "limit").is_err(), "{bad}");
        }
    }
}
