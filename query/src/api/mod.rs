//! The `/v1` HTTP API: its route table ([`routes`]), the OpenAPI document
//! of the same handlers ([`ApiDoc`]), and the handlers by concern.
//!
//! Every parameter is validated before any backend is asked: symbols
//! against the ticker pattern, intervals against those served, ranges and
//! page sizes against the configured limits. A bad one gives 400 with a
//! JSON body naming the parameter ([`crate::error::ErrorBody`]).
//!
//! - `params.rs`: path and query parameters, parsed and validated.
//! - `response.rs`: JSON answers with `ETag`/304, `Cache-Control`
//!   ([`Caching`]) and `X-Insite-Source`.
//! - `range.rs`: the one range handler over [`RangeRoute`] (bars for
//!   `aggs`, sentiment), `next_url` paging, cached durable-range answers.
//! - `latest.rs`: the current bar, latest quote and trade.
//! - `lists.rs`: trending and alerts.
//! - `openapi.rs`: the served OpenAPI document: the annotations completed
//!   with every parameter's constraints, every status, the security.

mod latest;
mod lists;
pub mod openapi;
pub mod params;
mod range;
mod response;

use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;

use crate::AppState;

pub use latest::{latest_bar, latest_quote, latest_trade};
pub use lists::{alerts, trending, AlertsResponse};
pub use params::{parse_limit, AlertParams, IntervalParams, PageParams, TrendingParams};
pub use range::{aggs, sentiment, Agg, AggsResponse, RangeRoute, SentimentResponse};
pub use response::{json_response, Caching};

/// The `/v1` JSON routes (without the WebSocket, auth and timeout, which
/// [`crate::app`] adds).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/symbols/{symbol}/bar", get(latest::latest_bar))
        .route("/v1/symbols/{symbol}/quote", get(latest::latest_quote))
        .route("/v1/symbols/{symbol}/trade", get(latest::latest_trade))
        .route(
            "/v1/aggs/{symbol}/range/{interval}/{from}/{to}",
            get(range::aggs),
        )
        .route(
            "/v1/sentiment/{symbol}/range/{interval}/{from}/{to}",
            get(range::sentiment),
        )
        .route("/v1/trending", get(lists::trending))
        .route("/v1/alerts", get(lists::alerts))
}

/// The OpenAPI document of `/v1`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "insite query API",
        description = "Bars, quotes, trades, sentiment, trending symbols and alerts computed by the insite pipeline, \
            under /v1 and, beside it, on the vendor-compatible (Polygon.io/Massive) routes under /v2 and /v1/open-close. \
            An API key is optional unless the service requires one; send it as X-API-Key, Authorization: Bearer or apiKey=. \
            Live updates: WebSocket /v1/stream, and the vendor's protocol at /stocks.",
    ),
    paths(
        latest::latest_bar,
        latest::latest_quote,
        latest::latest_trade,
        range::aggs,
        range::sentiment,
        lists::trending,
        lists::alerts,
        crate::vendor::aggs::aggs,
        crate::vendor::aggs::prev_close,
        crate::vendor::aggs::open_close,
        crate::vendor::aggs::grouped_daily,
        crate::vendor::last::last_trade,
        crate::vendor::last::last_quote,
        crate::vendor::snapshot::ticker_snapshot,
        crate::vendor::snapshot::all_snapshots,
        crate::vendor::snapshot::movers,
    ),
    components(schemas(
        crate::vendor::body::VendorAgg,
        crate::vendor::body::VendorAggsResponse,
        crate::vendor::body::GroupedDailyResponse,
        crate::vendor::body::OpenCloseResponse,
        crate::vendor::body::VendorTrade,
        crate::vendor::body::VendorQuote,
        crate::vendor::body::LastTradeResponse,
        crate::vendor::body::LastQuoteResponse,
        crate::vendor::body::SnapshotDay,
        crate::vendor::body::SnapshotMinute,
        crate::vendor::body::TickerSnapshot,
        crate::vendor::body::TickerSnapshotResponse,
        crate::vendor::body::SnapshotsResponse,
        range::Agg,
        range::AggsResponse,
        range::SentimentResponse,
        lists::AlertsResponse,
        crate::error::ErrorBody
    )),
    modifiers(&ApiKeyScheme)
)]
pub struct ApiDoc;

/// Adds the security schemes the annotations name (the served document,
/// [`openapi::document`], describes them fully).
struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("apiKey"))),
        );
    }
}
