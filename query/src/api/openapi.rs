//! The OpenAPI document as served (`/v1/openapi.json`): the annotations
//! beside the handlers ([`super::ApiDoc`]), completed with what holds for
//! every route and what depends on the configuration, so that a request the
//! document allows is one the service accepts:
//!
//! - every parameter's constraints: tickers `^[A-Z0-9.\-]{1,12}$`, the
//!   served intervals as an enum (and `interval` required), `limit` as an
//!   integer within `1..=max_page` (`max_list` for trending and alerts),
//!   range bounds as a valid date of 2000..2099 or 12–13 digits of
//!   milliseconds, dates as valid dates;
//! - the statuses every route can return: 400 (a bad parameter), 401 (a
//!   missing or unknown key), 429 (rate limited), 503 (a backend down or
//!   the request timed out), and 404 where nothing may be known;
//! - the security: a key is optional (`{}`) unless `[query.auth]
//!   require_key` is set, and goes as `X-API-Key`, `Authorization: Bearer`
//!   or the `apiKey` query parameter.

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::ApiDoc;
use crate::error::{encode_json, ApiError};
use crate::AppState;

/// A ticker.
const TICKER: &str = r"^[A-Z0-9.\-]{1,12}$";

/// A valid calendar date of 2000..2099 (leap days included).
const DATE: &str = "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])\
    |20[0-9]{2}-(0[13-9]|1[0-2])-(29|30)\
    |20[0-9]{2}-(0[13578]|1[02])-31\
    |20([02468][048]|[13579][26])-02-29";

/// Statuses an operation may return beyond its own, with their meaning.
const COMMON: [(&str, &str); 4] = [
    ("400", "A bad parameter (the body names it)"),
    (
        "401",
        "A missing (when keys are required) or unknown API key",
    ),
    ("429", "The key's rate limit is exhausted (see Retry-After)"),
    (
        "503",
        "A backing store is unavailable, or the request timed out",
    ),
];

/// Routes that answer 404 when nothing is known.
const MAY_BE_MISSING: [&str; 8] = [
    "/v1/symbols/{symbol}/bar",
    "/v1/symbols/{symbol}/quote",
    "/v1/symbols/{symbol}/trade",
    "/v1/trending",
    "/v1/open-close/{ticker}/{date}",
    "/v2/last/trade/{ticker}",
    "/v2/last/nbbo/{ticker}",
    "/v2/snapshot/locale/us/markets/stocks/tickers/{ticker}",
];

/// The document as served by `state`'s configuration.
pub fn document(state: &AppState) -> Result<String, ApiError> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())
        .map_err(|e| ApiError::Internal(format!("the OpenAPI document: {e}")))?;
    let served: Vec<Value> = state
        .inner
        .intervals
        .iter()
        .map(|iv| Value::String(iv.to_string()))
        .collect();
    let limits = &state.inner.config.limits;
    let error_ref = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}});
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                let max_limit = if path == "/v1/trending" || path == "/v1/alerts" {
                    limits.max_list
                } else {
                    limits.max_page
                };
                for p in op
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    constrain(p, &served, max_limit);
                }
                let responses = op
                    .entry("responses")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(responses) = responses.as_object_mut() {
                    let mut extra: Vec<(&str, &str)> = COMMON.to_vec();
                    if MAY_BE_MISSING.contains(&path.as_str()) {
                        extra.push(("404", "Nothing is known for this request"));
                    }
                    for (status, description) in extra {
                        responses.entry(status).or_insert_with(|| {
                            let mut r = error_ref.clone();
                            r["description"] = Value::String(description.into());
                            r
                        });
                    }
                }
                op.insert(
                    "security".into(),
                    json!([{}, {"api_key": []}, {"bearer": []}, {"api_key_query": []}]),
                );
            }
        }
    }
    doc["components"]["securitySchemes"] = json!({
        "api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key",
            "description": "Optional unless [query.auth] require_key is set; an unknown key is refused."},
        "bearer": {"type": "http", "scheme": "bearer",
            "description": "The same keys, as the vendor's clients send them."},
        "api_key_query": {"type": "apiKey", "in": "query", "name": "apiKey",
            "description": "The same keys, as a query parameter."},
    });
    encode_json(&doc)
}

/// Sets the constraints of one parameter by its name.
fn constrain(p: &mut Value, served: &[Value], max_limit: usize) {
    let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
    let schema = match name {
        "symbol" | "ticker" => json!({"type": "string", "pattern": TICKER}),
        "interval" => {
            p["required"] = Value::Bool(true);
            json!({"type": "string", "enum": served})
        }
        "limit" => json!({"type": "integer", "minimum": 1, "maximum": max_limit}),
        "from" | "to" => {
            json!({"type": "string", "pattern": format!("^(?:{DATE}|[0-9]{{12,13}})$")})
        }
        "date" => json!({"type": "string", "pattern": format!("^(?:{DATE})$")}),
        _ => return,
    };
    p["schema"] = schema;
}
