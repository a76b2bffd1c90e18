//! The vendor-compatible surface: the REST paths, parameters, field names,
//! status strings and paging of Polygon.io (now Massive), so that clients
//! written for it (such as its official Python client) work unchanged
//! against insite, beside insite's own `/v1`.
//!
//! | route | what |
//! |---|---|
//! | `GET /v2/aggs/ticker/{T}/range/{multiplier}/{timespan}/{from}/{to}` | bars of any size, rolled up from stored bars, `next_url` paging |
//! | `GET /v2/aggs/ticker/{T}/prev` | the previous day's bar |
//! | `GET /v1/open-close/{T}/{date}` | one day's open, close, pre-market and after-hours |
//! | `GET /v2/aggs/grouped/locale/us/market/stocks/{date}` | every ticker's bar of one day |
//! | `GET /v2/last/trade/{T}`, `/v2/last/nbbo/{T}` | the last trade, the last quote |
//! | `GET /v2/snapshot/locale/us/markets/stocks/tickers[/{T}]` | snapshots |
//! | `GET /v2/snapshot/locale/us/markets/stocks/{gainers,losers}` | the top movers |
//!
//! Keys and rate limits are those of `/v1` ([`crate::auth`]); a key may
//! also come as `Authorization: Bearer …` or `apiKey=…`, as the vendor's
//! clients send it.
//!
//! - `calendar.rs`: timespans and New York calendar buckets.
//! - `rollup.rs`: exact roll-ups of stored bars.
//! - `read.rs`: reading buckets (ClickHouse granules, Redis's newest bars).
//! - `params.rs`: the vendor's parameters.
//! - `body.rs`: the vendor's JSON shapes.
//! - `aggs.rs`: aggregates, previous close, open/close, grouped daily.
//! - `last.rs`: last trade and quote.
//! - `snapshot.rs`: snapshots, gainers and losers.
//! - `ws.rs`: the vendor's WebSocket protocol (`<ws_prefix>/stocks`) over
//!   the same hub as `/v1/stream`.

pub mod aggs;
pub mod body;
pub mod calendar;
pub mod last;
pub mod params;
mod read;
pub mod rollup;
pub mod snapshot;
pub mod ws;

use axum::routing::get;
use axum::Router;

use crate::AppState;

pub use aggs::{aggs, grouped_daily, open_close, prev_close};
pub use last::{last_quote, last_trade};
pub use params::{AdjustedParams, AggsParams, TickersParams};
pub use snapshot::{all_snapshots, movers, ticker_snapshot};

/// The vendor-compatible JSON routes (without auth and timeout, which
/// [`crate::app`] adds).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}",
            get(aggs::aggs),
        )
        .route("/v2/aggs/ticker/{ticker}/prev", get(aggs::prev_close))
        .route("/v1/open-close/{ticker}/{date}", get(aggs::open_close))
        .route(
            "/v2/aggs/grouped/locale/us/market/stocks/{date}",
            get(aggs::grouped_daily),
        )
        .route("/v2/last/trade/{ticker}", get(last::last_trade))
        .route("/v2/last/nbbo/{ticker}", get(last::last_quote))
        .route(
            "/v2/snapshot/locale/us/markets/stocks/tickers",
            get(snapshot::all_snapshots),
        )
        .route(
            "/v2/snapshot/locale/us/markets/stocks/tickers/{ticker}",
            get(snapshot::ticker_snapshot),
        )
        .route(
            "/v2/snapshot/locale/us/markets/stocks/{direction}",
            get(snapshot::movers),
        )
}
