//! Errors: [`ApiError`] answers a request with a JSON body and the right
//! status; [`QueryError`] is what starting the service can fail with.
//! [`encode_json`] is the one JSON encoder of answers and write-backs.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Why a request failed. Sorted as the rest of insite sorts errors: bad
/// input (4xx, the client must change the request), retryable (503, a
/// backing server is unreachable) and internal (500, a bug).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A parameter is missing or wrong.
    #[error("{field}: {message}")]
    BadRequest {
        /// The parameter.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Nothing is known for this request.
    #[error("{0}")]
    NotFound(String),
    /// No API key, or an unknown one.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The key's rate limit is exhausted.
    #[error("rate limit exceeded; retry after {retry_after_s} s")]
    RateLimited {
        /// Seconds until a request will be accepted.
        retry_after_s: u64,
    },
    /// Redis or ClickHouse could not answer (retryable).
    #[error("{backend} unavailable: {message}")]
    Unavailable {
        /// `redis` or `clickhouse`.
        backend: &'static str,
        /// The client's error.
        message: String,
    },
    /// A bug: stored data that does not decode, and the like.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `"ERROR"`, as Polygon-style clients expect.
    pub status: &'static str,
    /// A stable machine-readable code (`bad_request`, `not_found`, ...).
    pub code: &'static str,
    /// The parameter at fault, for `bad_request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// A sentence saying what is wrong.
    pub error: String,
}

impl ApiError {
    /// A bad parameter.
    pub fn bad(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            field,
            message: message.into(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "bad_request",
            Self::NotFound(_) => "not_found",
            Self::Unauthorized(_) => "unauthorized",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        Self::Unavailable {
            backend: "redis",
            message: e.to_string(),
        }
    }
}

impl From<clickhouse::error::Error> for ApiError {
    fn from(e: clickhouse::error::Error) -> Self {
        Self::Unavailable {
            backend: "clickhouse",
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Unavailable { .. } | Self::Internal(_) => {
                tracing::warn!(error = %self, "request failed");
            }
            _ => tracing::debug!(error = %self, "request refused"),
        }
        let body = ErrorBody {
            status: "ERROR",
            code: self.code(),
            field: match &self {
                Self::BadRequest { field, .. } => Some(field),
                _ => None,
            },
            error: self.to_string(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::RateLimited { retry_after_s } = self {
            if let Ok(value) = HeaderValue::from_str(&retry_after_s.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Encodes `value` as JSON (a response body, or a value written back to
/// Redis). Failing is a bug: [`ApiError::Internal`].
pub fn encode_json<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| ApiError::Internal(format!("encoding: {e}")))
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// A setting is wrong.
    #[error("invalid [query] config: {0}")]
    Config(String),
    /// Redis could not be reached (retryable).
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// NATS could not be reached (retryable).
    #[error("NATS: {0}")]
    Nats(String),
    /// The listener failed.
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
}
