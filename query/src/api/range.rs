//! Results over a range: one generic handler ([`range`]) over
//! [`RangeRoute`], which bars and sentiment implement; the aggs and
//! sentiment routes are its two instantiations. It pages with `next_url`,
//! marks answers immutable only when every window in them is final and
//! durable (the pipeline's durable frontier is past the last one, see
//! [`crate::store::frontier`]) and caches those in Redis.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use insite_schemas::{Bar, SentimentWindow, TimestampMs};
use serde::Serialize;
use utoipa::ToSchema;

use super::params::{query_params, range_request, PageParams};
use super::response::{answer, json_response, Caching};
use crate::error::{encode_json, ApiError, ErrorBody};
use crate::store::{Bars, Durability, RangeKind, RangeRequest, Sentiments, Source};
use crate::AppState;

/// The path of a range route: symbol, interval, from, to.
type RangePath = (String, String, String, String);

/// A windowed result served over a range: the store's [`RangeKind`], plus
/// its route and response shape.
pub trait RangeRoute: RangeKind {
    /// The route's first segment: `/v1/<ROUTE>/{symbol}/range/...`.
    const ROUTE: &'static str;
    /// The response body.
    type Body: Serialize;
    /// The body of one page: `items` oldest first, `next_url` when more
    /// follow.
    fn body(r: &RangeRequest, items: Vec<Self::Item>, next_url: Option<String>) -> Self::Body;
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

impl RangeRoute for Bars {
    const ROUTE: &'static str = "aggs";
    type Body = AggsResponse;
    fn body(r: &RangeRequest, items: Vec<Bar>, next_url: Option<String>) -> AggsResponse {
        let results: Vec<Agg> = items.iter().map(Agg::from).collect();
        AggsResponse {
            ticker: r.symbol.to_string(),
            status: "OK",
            adjusted: false,
            interval: r.interval.to_string(),
            query_count: results.len(),
            results_count: results.len(),
            results,
            next_url,
        }
    }
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
    pub results: Vec<SentimentWindow>,
    /// The next page, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_url: Option<String>,
}

impl RangeRoute for Sentiments {
    const ROUTE: &'static str = "sentiment";
    type Body = SentimentResponse;
    fn body(
        r: &RangeRequest,
        items: Vec<SentimentWindow>,
        next_url: Option<String>,
    ) -> SentimentResponse {
        SentimentResponse {
            ticker: r.symbol.to_string(),
            status: "OK",
            interval: r.interval.to_string(),
            results_count: items.len(),
            results: items,
            next_url,
        }
    }
}

/// Immutable when every window of the range is final and durable, else
/// live.
fn caching_of(state: &AppState, durability: Durability) -> Caching {
    match durability {
        Durability::Durable => Caching::Immutable(state.inner.config.cache.immutable_max_age_s),
        Durability::Open => Caching::live(state),
    }
}

/// The next page's URL: after the last result (starting at
/// `last_start`) when more follow in the range read, else from the end of
/// the range read when the client asked for more (`end`).
fn next_url(
    route: &str,
    r: &RangeRequest,
    end: TimestampMs,
    last_start: Option<TimestampMs>,
    more: bool,
) -> Option<String> {
    let next_from = if more {
        last_start? + r.interval.millis()
    } else if r.to < end {
        r.to
    } else {
        return None;
    };
    Some(format!(
        "/v1/{route}/{}/range/{}/{next_from}/{end}?limit={}",
        r.symbol, r.interval, r.limit
    ))
}

/// The handler of every range route: validates, asks whether the range is
/// durable, answers a durable range from its cached answer when there is
/// one, else reads the store, pages and (for a durable range) caches the
/// answer.
async fn range<K: RangeRoute>(
    state: &AppState,
    (symbol, interval, from, to): RangePath,
    query: Result<Query<PageParams>, QueryRejection>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let params = query_params(query)?;
    let ranged = range_request(
        state,
        &symbol,
        &interval,
        &from,
        &to,
        params.limit.as_deref(),
    )?;
    let (r, end) = (ranged.request, ranged.end);
    let store = &state.inner.store;
    // Before the results: a durable verdict covers every result read after.
    let durability = store.durability::<K>(&r).await;
    let caching = caching_of(state, durability);
    // Only an answer that can never change is cached.
    // The key names the end asked for when it is past the range read (the
    // body's next_url depends on it).
    let kind = if end > r.to {
        format!("{}~{end}", K::NAME)
    } else {
        K::NAME.to_owned()
    };
    let key = matches!(caching, Caching::Immutable(_)).then(|| store.answer_key(&kind, &r));
    if let Some(key) = &key {
        if let Some(body) = store.cached_answer(key).await? {
            return Ok(answer(
                state,
                headers,
                K::NAME,
                body,
                caching,
                Source::Cache,
            ));
        }
    }
    let page = store.range::<K>(&r, durability).await?;
    state.inner.cache.record(K::NAME, page.source);
    let next_url = next_url(
        K::ROUTE,
        &r,
        end,
        page.items.last().map(K::window_start),
        page.more,
    );
    let body = encode_json(&K::body(&r, page.items, next_url))?;
    if let Some(key) = key {
        store.cache_answer(&key, &body).await?;
    }
    Ok(json_response(headers, body, caching, page.source))
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
        (status = 200, description = "Bars; immutable when every window is final and durable", body = AggsResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn aggs(
    State(state): State<AppState>,
    Path(path): Path<RangePath>,
    query: Result<Query<PageParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    range::<Bars>(&state, path, query, &headers).await
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
        (status = 200, description = "Sentiment windows; immutable when every window is final and durable", body = SentimentResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn sentiment(
    State(state): State<AppState>,
    Path(path): Path<RangePath>,
    query: Result<Query<PageParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    range::<Sentiments>(&state, path, query, &headers).await
}
