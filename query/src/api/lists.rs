//! Lists across symbols: the trending list of an interval, top N, and
//! recent alerts (of all symbols or of one), newest first.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::params::{
    parse_interval, parse_limit, parse_symbol, query_params, AlertParams, TrendingParams,
};
use super::response::{answer, Caching};
use crate::error::{encode_json, ApiError, ErrorBody};
use crate::AppState;

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
    Ok(answer(
        &state,
        &headers,
        "trending",
        encode_json(&t)?,
        Caching::live(&state),
        source,
    ))
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
    let body = encode_json(&AlertsResponse {
        status: "OK",
        results,
    })?;
    Ok(answer(
        &state,
        &headers,
        "alerts",
        body,
        Caching::live(&state),
        source,
    ))
}
