//! API keys and per-key rate limits (`governor`).
//!
//! A key travels in the `X-API-Key` header or, as the vendor's clients
//! send it, `Authorization: Bearer <key>`; or (for the WebSocket and the
//! page, which browsers cannot give headers, and the vendor's clients) the
//! `api_key` or `apiKey` query parameter. Each configured key has its own token bucket; requests
//! without a key share the anonymous bucket unless keys are required. A
//! request over its limit gets 429 with `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::AuthConfig;
use crate::error::{ApiError, QueryError};
use crate::AppState;

/// The header carrying an API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// One key's limiter.
#[derive(Debug)]
struct KeyLimit {
    /// The key's name (for logs; never the key itself).
    name: String,
    /// Its token bucket.
    limiter: DefaultDirectRateLimiter,
}

/// Known keys and their limiters.
#[derive(Debug)]
pub struct Limits {
    /// Keys required?
    require_key: bool,
    /// Limiter per key.
    keys: HashMap<String, KeyLimit>,
    /// Shared limiter of requests without a key (`None`: unlimited).
    anonymous: Option<DefaultDirectRateLimiter>,
}

fn quota(per_second: u32, burst: u32, field: &str) -> Result<Quota, QueryError> {
    let rate = NonZeroU32::new(per_second)
        .ok_or_else(|| QueryError::Config(format!("{field}: per_second must be positive")))?;
    Ok(Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate)))
}

impl Limits {
    /// Limiters for the configured keys.
    pub fn new(config: &AuthConfig) -> Result<Self, QueryError> {
        let mut keys = HashMap::new();
        for (i, key) in config.keys.iter().enumerate() {
            if key.key.len() < 8 {
                return Err(QueryError::Config(format!(
                    "auth.keys[{i}]: a key must have at least 8 characters"
                )));
            }
            let per_second = if key.per_second == 0 {
                config.per_second
            } else {
                key.per_second
            };
            let burst = if key.burst == 0 {
                config.burst
            } else {
                key.burst
            };
            let q = quota(per_second, burst, "auth")?;
            let name = if key.name.is_empty() {
                format!("key{i}")
            } else {
                key.name.clone()
            };
            keys.insert(
                key.key.clone(),
                KeyLimit {
                    name,
                    limiter: RateLimiter::direct(q),
                },
            );
        }
        let anonymous = if config.anonymous_per_second == 0 {
            None
        } else {
            Some(RateLimiter::direct(quota(
                config.anonymous_per_second,
                config.anonymous_burst,
                "auth.anonymous",
            )?))
        };
        Ok(Self {
            require_key: config.require_key,
            keys,
            anonymous,
        })
    }

    /// Admits or refuses one request carrying `key`.
    pub fn check(&self, key: Option<&str>) -> Result<(), ApiError> {
        let limiter = match key {
            Some(key) => {
                let known = self
                    .keys
                    .get(key)
                    .ok_or(ApiError::Unauthorized("unknown API key"))?;
                tracing::trace!(key = %known.name, "request");
                Some(&known.limiter)
            }
            None if self.require_key => {
                return Err(ApiError::Unauthorized(
                    "an API key is required (header X-API-Key or Authorization: Bearer)",
                ))
            }
            None => self.anonymous.as_ref(),
        };
        if let Some(limiter) = limiter {
            if let Err(not_until) = limiter.check() {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let retry_after_s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return Err(ApiError::RateLimited {
                    retry_after_s: retry_after_s.max(1),
                });
            }
        }
        Ok(())
    }
}

/// The key of a request: the `X-API-Key` header, else a bearer token in
/// `Authorization`, else the `api_key` or `apiKey` query parameter.
pub fn request_key<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    if let Some(value) = headers.get(API_KEY_HEADER) {
        return value.to_str().ok();
    }
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    query?.split('&').find_map(|pair| {
        pair.strip_prefix("api_key=")
            .or_else(|| pair.strip_prefix("apiKey="))
    })
}

/// Middleware: checks the key and its limit before the handler runs.
pub async fn require(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = request_key(request.headers(), request.uri().query());
    match state.inner.limits.check(key) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            metrics::counter!("insite_query_refused_total", "reason" => refusal(&e)).increment(1);
            e.into_response()
        }
    }
}

fn refusal(e: &ApiError) -> &'static str {
    match e {
        ApiError::RateLimited { .. } => "rate_limited",
        _ => "unauthorized",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKey;

    #[test]
    fn keys_limits_and_anonymous() {
        let config = AuthConfig {
            require_key: true,
            keys: vec![ApiKey {
                key: "secret-key-1".into(),
                name: "one".into(),
                per_second: 1,
                burst: 2,
            }],
            ..AuthConfig::default()
        };
        let limits = Limits::new(&config).unwrap();
        assert!(matches!(limits.check(None), Err(ApiError::Unauthorized(_))));
        assert!(matches!(
            limits.check(Some("wrong")),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(limits.check(Some("secret-key-1")).is_ok());
        assert!(limits.check(Some("secret-key-1")).is_ok());
        match limits.check(Some("secret-key-1")) {
            Err(ApiError::RateLimited { retry_after_s }) => assert_eq!(retry_after_s, 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }

    #[test]
    fn short_keys_are_refused_at_start() {
        let config = AuthConfig {
            keys: vec![ApiKey {
                key: "short".into(),
                name: String::new(),
                per_second: 0,
                burst: 0,
            }],
            ..AuthConfig::default()
        };
        assert!(Limits::new(&config).is_err());
    }

    #[test]
    fn key_from_header_or_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(request_key(&headers, Some("a=1&api_key=k2")), Some("k2"));
        assert_eq!(request_key(&headers, Some("x=1&apiKey=k3")), Some("k3"));
        headers.insert("authorization", "Bearer k4".parse().unwrap());
        assert_eq!(request_key(&headers, Some("api_key=k2")), Some("k4"));
        headers.insert(API_KEY_HEADER, "k1".parse().unwrap());
        assert_eq!(request_key(&headers, Some("api_key=k2")), Some("k1"));
        let mut basic = HeaderMap::new();
        basic.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(request_key(&basic, None), None);
    }
}
