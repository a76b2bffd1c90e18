//! The vendor's last trade (`/v2/last/trade/{ticker}`) and last quote
//! (`/v2/last/nbbo/{ticker}`), from the latest trade and quote the store
//! holds (Redis, else ClickHouse).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use insite_schemas::{Quote, Symbol, Trade};

use super::aggs::ticker;
use super::body::{request_id, LastQuoteResponse, LastTradeResponse, VendorQuote, VendorTrade};
use crate::api::{json_response, Caching};
use crate::error::{encode_json, ApiError, ErrorBody};
use crate::AppState;

/// The latest trade of `symbol`, decoded.
pub(super) async fn trade_of(state: &AppState, symbol: &Symbol) -> Result<Option<Trade>, ApiError> {
    let found = state.inner.store.latest_trade(symbol).await?;
    found
        .map(|(json, _)| {
            serde_json::from_str(&json)
                .map_err(|e| ApiError::Internal(format!("stored trade: {e}")))
        })
        .transpose()
}

/// The latest quote of `symbol`, decoded.
pub(super) async fn quote_of(state: &AppState, symbol: &Symbol) -> Result<Option<Quote>, ApiError> {
    let found = state.inner.store.latest_quote(symbol).await?;
    found
        .map(|(json, _)| {
            serde_json::from_str(&json)
                .map_err(|e| ApiError::Internal(format!("stored quote: {e}")))
        })
        .transpose()
}

/// The last trade of a ticker.
#[utoipa::path(
    get,
    path = "/v2/last/trade/{ticker}",
    tag = "vendor",
    params(("ticker" = String, Path, description = "Ticker", pattern = "^[A-Z0-9.\\-]{1,12}$")),
    responses(
        (status = 200, description = "The last trade", body = LastTradeResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No trade known", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "A backing store is unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("api_key_query" = []))
)]
pub async fn last_trade(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let symbol = ticker(&symbol)?;
    let trade = trade_of(&state, &symbol)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no trade of {symbol}")))?;
    let body = LastTradeResponse {
        status: "OK",
        request_id: request_id(),
        results: VendorTrade::of(&trade, true),
    };
    Ok(json_response(
        &headers,
        encode_json(&body)?,
        Caching::Live(state.inner.config.cache.live_max_age_s),
        crate::store::Source::Redis,
    ))
}

/// The last quote (NBBO) of a ticker.
#[utoipa::path(
    get,
    path = "/v2/last/nbbo/{ticker}",
    tag = "vendor",
    params(("ticker" = String, Path, description = "Ticker", pattern = "^[A-Z0-9.\\-]{1,12}$")),
    responses(
        (status = 200, description = "The last quote", body = LastQuoteResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No quote known", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "A backing store is unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("api_key_query" = []))
)]
pub async fn last_quote(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let symbol = ticker(&symbol)?;
    let quote = quote_of(&state, &symbol)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no quote of {symbol}")))?;
    let body = LastQuoteResponse {
        status: "OK",
        request_id: request_id(),
        results: VendorQuote::of(&quote, true),
    };
    Ok(json_response(
        &headers,
        encode_json(&body)?,
        Caching::Live(state.inner.config.cache.live_max_age_s),
        crate::store::Source::Redis,
    ))
}
