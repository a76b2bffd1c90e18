//! Router tests without servers: `app(state).oneshot(request)` against a
//! state whose Redis and ClickHouse are unreachable, for everything that is
//! decided before a backend is asked.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use insite_schemas::config::{ClickHouseConfig, RedisConfig};
use tower::ServiceExt;

use crate::config::{ApiKey, AuthConfig, QueryConfig};
use crate::{app, AppState};

fn state(config: QueryConfig) -> AppState {
    // Nothing listens on port 1: every backend call fails fast.
    let redis = RedisConfig {
        url: "redis://127.0.0.1:1/0".into(),
        ..RedisConfig::default()
    };
    let clickhouse = ClickHouseConfig {
        url: "http://127.0.0.1:1".into(),
        ..ClickHouseConfig::default()
    };
    AppState::new(config, &redis, &clickhouse).unwrap()
}

async fn get(
    state: &AppState,
    uri: &str,
    key: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::get(uri);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = app(state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn bad_input_gets_400_naming_the_parameter() {
    let s = state(QueryConfig::default());
    let cases = [
        ("/v1/symbols/aapl/bar?interval=1m", "symbol"),
        ("/v1/symbols/AAPL;DROP/quote", "symbol"),
        ("/v1/symbols/AAPL/bar", "interval"),
        ("/v1/symbols/AAPL/bar?interval=7x", "interval"),
        ("/v1/symbols/AAPL/bar?interval=1h", "interval"),
        ("/v1/aggs/AAPL/range/1m/yesterday/2024-01-02", "from"),
        ("/v1/aggs/AAPL/range/1m/2024-01-02/1999-12-31", "to"),
        (
            "/v1/aggs/AAPL/range/1m/2024-01-01/2024-01-02?limit=0",
            "limit",
        ),
        (
            "/v1/aggs/AAPL/range/1m/2024-01-01/2024-01-02?limit=50001",
            "limit",
        ),
        ("/v1/aggs/AAPL/range/1m/12/2024-01-02", "from"),
        (
            "/v1/sentiment/A%27B/range/1m/2024-01-01/2024-01-02",
            "symbol",
        ),
        ("/v1/trending?interval=1m&limit=501", "limit"),
        ("/v1/alerts?symbol=$$", "symbol"),
    ];
    for (uri, field) in cases {
        let (status, _, body) = get(&s, uri, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let v = json(&body);
        assert_eq!(v["field"], field, "{uri}: {body}");
        assert_eq!(v["code"], "bad_request");
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn unreachable_backends_give_503_and_readyz_says_which() {
    let s = state(QueryConfig::default());
    let (status, _, body) = get(&s, "/v1/symbols/AAPL/bar?interval=1m", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(json(&body)["code"], "unavailable");
    let (status, _, body) = get(&s, "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let v = json(&body);
    assert_ne!(v["redis"], "ok");
    assert_ne!(v["clickhouse"], "ok");
    let (status, _, body) = get(&s, "/healthz", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn keys_are_required_and_rate_limited_with_retry_after() {
    let s = state(QueryConfig {
        auth: AuthConfig {
            require_key: true,
            keys: vec![ApiKey {
                key: "k-0123456789".into(),
                name: "test".into(),
                per_second: 1,
                burst: 1,
            }],
            ..AuthConfig::default()
        },
        ..QueryConfig::default()
    });
    let uri = "/v1/aggs/aapl/range/1m/2024-01-01/2024-01-02";
    let (status, _, body) = get(&s, uri, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, _) = get(&s, uri, Some("wrong-key-0000")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The first request passes the limiter (and fails validation: lower-case symbol).
    let (status, _, _) = get(&s, uri, Some("k-0123456789")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, headers, body) = get(&s, uri, Some("k-0123456789")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(json(&body)["code"], "rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    // Health, metrics, the page and the OpenAPI document need no key.
    for uri in ["/healthz", "/metrics", "/", "/v1/openapi.json"] {
        let (status, _, _) = get(&s, uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn openapi_documents_every_v1_route() {
    let s = state(QueryConfig::default());
    let (status, _, body) = get(&s, "/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let v = json(&body);
    let paths: Vec<&str> = v["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for route in [
        "/v1/symbols/{symbol}/bar",
        "/v1/symbols/{symbol}/quote",
        "/v1/symbols/{symbol}/trade",
        "/v1/aggs/{symbol}/range/{interval}/{from}/{to}",
        "/v1/sentiment/{symbol}/range/{interval}/{from}/{to}",
        "/v1/trending",
        "/v1/alerts",
    ] {
        assert!(paths.contains(&route), "{route} missing from {paths:?}");
    }
    assert_eq!(
        v["components"]["securitySchemes"]["api_key"]["name"],
        "X-API-Key"
    );
}

#[tokio::test]
async fn page_and_vendored_library_are_served_without_cdn() {
    let s = state(QueryConfig::default());
    let (status, headers, html) = get(&s, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(html.contains("/vendor/lightweight-charts.js"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external links"
    );
    let (status, _, js) = get(&s, "/vendor/lightweight-charts.js", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(js.contains("Lightweight Charts"));
    let (status, _, js) = get(&s, "/app.js", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(js.contains("/v1/stream"));
    let (status, _, body) = get(&s, "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(&body)["code"], "not_found");
}

#[tokio::test]
async fn metrics_show_latency_by_route() {
    let s = state(QueryConfig::default());
    let _ = get(&s, "/v1/symbols/aapl/bar?interval=1m", None).await;
    let (status, _, text) = get(&s, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("insite_query_request_duration_seconds_bucket{route=\"/v1/symbols/{symbol}/bar\",status=\"4xx\""),
        "{text}"
    );
    assert!(text.contains("insite_query_cache_hit_ratio"), "{text}");
}

#[test]
fn bad_config_is_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let redis = RedisConfig::default();
        let ch = ClickHouseConfig::default();
        let bad_interval = QueryConfig {
            intervals: vec!["1q".into()],
            ..QueryConfig::default()
        };
        assert!(AppState::new(bad_interval, &redis, &ch).is_err());
        let mut bad_page = QueryConfig::default();
        bad_page.limits.default_page = bad_page.limits.max_page + 1;
        assert!(AppState::new(bad_page, &redis, &ch).is_err());
    });
}
