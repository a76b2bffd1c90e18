//! # insite-query
//!
//! The query service: a thin, stateless HTTP and WebSocket front over what
//! the pipeline writes. Hot reads come from Redis, history from ClickHouse
//! (with the answer written back to Redis), live results from NATS. Many
//! instances can run behind a load balancer; none holds state of its own.
//!
//! ## Routes
//! | route | what |
//! |---|---|
//! | `GET /v1/symbols/{symbol}/bar?interval=1m` | current bar (Redis) |
//! | `GET /v1/symbols/{symbol}/quote`, `.../trade` | latest quote, trade (Redis) |
//! | `GET /v1/aggs/{symbol}/range/{interval}/{from}/{to}?limit=` | bars, Polygon aggregates shape, `next_url` paging |
//! | `GET /v1/sentiment/{symbol}/range/{interval}/{from}/{to}?limit=` | sentiment windows |
//! | `GET /v1/trending?interval=1m&limit=10` | trending now |
//! | `GET /v1/alerts?symbol=&limit=` | recent alerts |
//! | `GET /v1/stream` | WebSocket push ([`stream`]) |
//! | `GET /v2/...`, `/v1/open-close/...` | the vendor-compatible REST API ([`vendor`]) |
//! | `GET <vendor.ws_prefix>/stocks` | the vendor's WebSocket protocol ([`vendor::ws`]) |
//! | `GET /v1/openapi.json` | the OpenAPI document |
//! | `GET /healthz`, `/readyz`, `/metrics` | liveness, readiness (Redis, ClickHouse, NATS feed), Prometheus |
//! | `GET /` | the live chart page |
//!
//! ## Layout
//! - [`config`]: the `[query]` section ([`QueryConfig`]).
//! - [`api`] (`api/`): the `/v1` route table and OpenAPI document
//!   (`mod.rs`); parameter parsing and validation (`params.rs`); JSON
//!   answers with `ETag` and `Cache-Control` (`response.rs`); the one
//!   range handler behind `aggs` and `sentiment`, with paging
//!   (`range.rs`); the current bar, quote and trade (`latest.rs`);
//!   trending and alerts (`lists.rs`).
//! - [`store`] (`store/`): [`store::Store`] (`mod.rs`); Redis connections,
//!   `GET`, write-back and read-through (`pool.rs`); stored rows and JSON
//!   back into schema types (`stored.rs`); the pipeline's durable frontier
//!   and when a range is durable (`frontier.rs`); ranges, Redis first then
//!   ClickHouse, and cached durable-range answers (`range.rs`); latest
//!   state (`latest.rs`); trending and alerts (`lists.rs`); warm-up at
//!   start (`warm.rs`).
//! - [`stream`]: the WebSocket [`stream::Hub`] and its NATS feed.
//! - [`vendor`] (`vendor/`): the vendor-compatible (Polygon.io/Massive)
//!   REST routes and WebSocket protocol.
//! - [`auth`]: API keys and per-key rate limits.
//! - [`telemetry`]: metrics and the `/metrics` recorder.
//! - [`web`]: the live chart page and its vendored charting library.
//! - [`error`]: [`ApiError`] (JSON error answers) and [`QueryError`] (start-up).
//!
//! [`app`] builds the router from an [`AppState`] (so tests can call
//! `app(state).oneshot(request)`); [`serve`] connects, warms Redis, feeds
//! the hub from NATS and serves on a listener until a shutdown signal.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod vendor;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{middleware, Json, Router};
use insite_schemas::config::{ClickHouseConfig, Connections, RedisConfig};
use insite_schemas::Interval;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tower_http::cors::CorsLayer;
use tower_http::timeout::TimeoutLayer;

pub use api::ApiDoc;
pub use config::QueryConfig;
pub use error::{ApiError, QueryError};

/// Everything [`serve`] needs.
#[derive(Debug, Clone, Default)]
pub struct ServeConfig {
    /// The `[query]` section.
    pub query: QueryConfig,
    /// NATS (the WebSocket feed), Redis (hot state), ClickHouse (history).
    pub connections: Connections,
}

/// Shared state of every request: cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The shared part.
    pub inner: Arc<Inner>,
}

/// What [`AppState`] shares.
#[derive(Debug)]
pub struct Inner {
    /// Settings.
    pub config: QueryConfig,
    /// Intervals served, parsed from the config.
    pub intervals: Vec<Interval>,
    /// Redis and ClickHouse.
    pub store: store::Store,
    /// API keys and limiters.
    pub limits: auth::Limits,
    /// WebSocket fan-out.
    pub hub: Arc<stream::Hub>,
    /// Cache hit counters.
    pub cache: telemetry::CacheCounters,
    /// The metrics recorder's handle.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

impl AppState {
    /// State over the configured Redis and ClickHouse. Connections open
    /// lazily, so this works (and `/readyz` reports it) while they are
    /// down. Must be called within a Tokio runtime.
    pub fn new(
        config: QueryConfig,
        redis: &RedisConfig,
        clickhouse: &ClickHouseConfig,
    ) -> Result<Self, QueryError> {
        let intervals = config
            .intervals
            .iter()
            .map(|s| s.parse::<Interval>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueryError::Config(format!("intervals: {e}")))?;
        if config.limits.max_page == 0 || config.limits.default_page > config.limits.max_page {
            return Err(QueryError::Config(
                "limits: default_page must be within 1..=max_page".into(),
            ));
        }
        let prefix = &config.vendor.ws_prefix;
        if !prefix.is_empty() && (!prefix.starts_with('/') || prefix.ends_with('/')) {
            return Err(QueryError::Config(format!(
                "vendor.ws_prefix: {prefix:?} must be empty or start with / and not end with /"
            )));
        }
        // Installed before anything looks a metric up (the hub keeps its
        // histogram's handle).
        let metrics = telemetry::handle();
        let pool = store::RedisPool::lazy(redis, config.redis_connections)?;
        let store = store::Store::new(
            pool,
            insite_sinks::clickhouse::connect(clickhouse),
            redis,
            config.cache.clone(),
            &config.pipeline,
            Duration::from_millis(config.slow_query_ms),
            config.hot.clone(),
        )
        .with_aggregate_reads(config.vendor.max_concurrent_reads);
        let limits = auth::Limits::new(&config.auth)?;
        let hub = Arc::new(
            stream::Hub::new(config.stream.clone(), intervals.clone()).with_hot(store.hot.clone()),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                intervals,
                store,
                limits,
                hub,
                cache: telemetry::CacheCounters::default(),
                metrics,
            }),
        })
    }
}

async fn openapi(State(state): State<AppState>) -> Response {
    match api::openapi::document(&state) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

#[derive(Serialize)]
struct Readiness {
    redis: String,
    clickhouse: String,
    stream: &'static str,
}

async fn readyz(State(state): State<AppState>) -> Response {
    let timeout = Duration::from_secs(2);
    let check = |r: Result<Result<(), ApiError>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    let (redis, clickhouse) = tokio::join!(
        tokio::time::timeout(timeout, state.inner.store.ping_redis()),
        tokio::time::timeout(timeout, state.inner.store.ping_clickhouse()),
    );
    let body = Readiness {
        redis: check(redis),
        clickhouse: check(clickhouse),
        stream: if state.inner.hub.feed_ready() {
            "ok"
        } else {
            "not subscribed"
        },
    };
    let status = if body.redis == "ok" && body.clickhouse == "ok" && body.stream == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    metrics::gauge!("insite_query_cache_hit_ratio").set(state.inner.cache.ratio());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.inner.metrics.render(),
    )
        .into_response()
}

async fn ws(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let hub = state.inner.hub.clone();
    // Small buffers: clients send little, and writes are flushed per batch;
    // this keeps ten thousand clients within a few hundred MiB.
    upgrade
        .max_message_size(64 * 1024)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .on_upgrade(move |socket| hub.serve_client(socket))
}

async fn vendor_ws(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .max_message_size(64 * 1024)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .on_upgrade(move |socket| vendor::ws::serve(state, socket))
}

/// The router of the whole service.
pub fn app(state: AppState) -> Router {
    let timeout = Duration::from_millis(state.inner.config.request_timeout_ms.max(1));
    let v1 = api::routes()
        .merge(vendor::routes())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .route("/v1/stream", get(ws))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require));
    // The vendor's WebSocket authenticates in the protocol (an `auth`
    // action), not in the upgrade request.
    let vendor_ws_path = format!("{}/stocks", state.inner.config.vendor.ws_prefix);
    Router::new()
        .merge(v1)
        .route(&vendor_ws_path, get(vendor_ws))
        .route("/v1/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .merge(web::routes())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(middleware::from_fn(telemetry::track))
        .layer(CorsLayer::permissive())
        .with_state(state)
}

/// Runs the service on `listener` until `shutdown` is cancelled: warms
/// Redis from ClickHouse (bounded in time; a failure is logged, not fatal),
/// feeds the WebSocket hub from NATS, serves HTTP.
pub async fn serve(
    config: ServeConfig,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<(), QueryError> {
    let connections = &config.connections;
    let state = AppState::new(
        config.query.clone(),
        &connections.redis,
        &connections.clickhouse,
    )?;
    let intervals = state.inner.intervals.clone();
    let warm = state
        .inner
        .store
        .warm(&intervals, insite_schemas::time::now_ms());
    match tokio::time::timeout(Duration::from_secs(30), warm).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "warming Redis failed; serving cold"),
        Err(_) => tracing::warn!("warming Redis took over 30 s; serving cold"),
    }
    let nats = insite_sinks::nats::connect(&connections.nats, "insite-query")
        .await
        .map_err(|e| QueryError::Nats(e.to_string()))?;
    let stop = shutdown.child_token();
    let feed = tokio::spawn(stream::feed(
        state.inner.hub.clone(),
        nats,
        connections.nats.streams.clone(),
        config.query.stream.quotes,
        config.query.vendor.trades,
        stop.clone(),
    ));
    let sweeps = tokio::spawn(
        state
            .inner
            .store
            .hot
            .clone()
            .run_sweeps(state.inner.store.redis.clone(), stop.clone()),
    );
    let hub = state.inner.hub.clone();
    let stop_all = stop.clone();
    tracing::info!(addr = ?listener.local_addr().ok(), "query service listening");
    // No Nagle delay: answers and WebSocket frames are written whole.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY");
        }
    });
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            stop_all.cancelled().await;
            hub.close_all();
        })
        .await;
    stop.cancel();
    let _ = sweeps.await;
    match feed.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "NATS feed ended with an error"),
        Err(e) => tracing::warn!(error = %e, "NATS feed task failed"),
        Ok(Ok(())) => {}
    }
    served.map_err(QueryError::Io)
}

#[cfg(test)]
mod app_tests;
