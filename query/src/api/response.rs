//! How every `/v1` JSON answer is sent: `ETag` (a hash of the body) and
//! `304 Not Modified`, `Cache-Control` ([`Caching`]), `X-Insite-Source`,
//! and the cache counters behind the hit ratio.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::store::Source;
use crate::AppState;

/// How long a response may be kept by browsers and CDNs.
#[derive(Debug, Clone, Copy)]
pub enum Caching {
    /// Never changes (every window final and durable): kept for `max_age`
    /// seconds.
    Immutable(u64),
    /// May change soon: kept for `max_age` seconds, then revalidated.
    Live(u64),
}

impl Caching {
    /// The configured caching of answers that may still change.
    pub(super) fn live(state: &AppState) -> Self {
        Self::Live(state.inner.config.cache.live_max_age_s)
    }
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
    // From the `String`s themselves: no copy.
    if let Ok(v) = HeaderValue::try_from(etag) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::try_from(cache_control) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    headers.insert("x-insite-source", HeaderValue::from_static(source.as_str()));
    response
}

/// Counts an answer of `kind` from `source` (cache metrics), then sends it
/// as [`json_response`] does.
pub(super) fn answer(
    state: &AppState,
    request_headers: &HeaderMap,
    kind: &'static str,
    body: String,
    caching: Caching,
    source: Source,
) -> Response {
    state.inner.cache.record(kind, source);
    json_response(request_headers, body, caching, source)
}
