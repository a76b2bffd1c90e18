//! Prometheus metrics of the query service, rendered at `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `insite_query_request_duration_seconds` | histogram | `route`, `status` (class: 2xx, 4xx, ...) |
//! | `insite_query_requests_total` | counter | `route`, `status` |
//! | `insite_query_cache_total` | counter | `kind`, `source` (`memory`, `redis`, `cache`, `clickhouse`), `route` |
//! | `insite_query_cache_hit_ratio` | gauge | — (answers not from ClickHouse / all answers) |
//! | `insite_query_clickhouse_seconds` | histogram | `route` (`background` outside a request): every ClickHouse query |
//! | `insite_query_clickhouse_slow_total` | counter | `route`: queries over `[query] slow_query_ms`, each also logged with its statement's shape |
//! | `insite_query_refused_total` | counter | `reason` (`unauthorized`, `rate_limited`) |
//! | `insite_query_hot_keys` | gauge | — (keys of the latest state held in memory, at the last sweep) |
//! | `insite_query_hot_sweep_errors_total` | counter | — (sweeps whose Redis read failed) |
//! | `insite_query_ws_clients` | gauge | — |
//! | `insite_query_ws_dropped_slow_total` | counter | — |
//! | `insite_query_ws_delivery_seconds` | histogram | — (hub hand-over to written on the client's socket) |
//! | `insite_query_ws_messages_total` | counter | `kind` (messages fanned out to clients) |
//! | `insite_query_feed_messages_total` | counter | `kind` (messages from NATS) |
//! | `insite_query_feed_errors_total` | counter | — (undecodable messages, sent to `insite.dlq.query`) |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::Source;

/// The process-wide recorder's handle. The first call installs the
/// recorder; if another recorder was installed first (an embedding
/// program's), metrics go there and `/metrics` renders this empty one.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("insite_query_request_duration_seconds".into()),
                    &[
                        0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                        1.0, 2.5, 10.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("insite_query_clickhouse_seconds".into()),
                        &[
                            0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                            10.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("insite_query_ws_delivery_seconds".into()),
                        &[
                            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        ],
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; /metrics shows only its own"
                );
            }
            handle
        })
        .clone()
}

/// Cache hit counters behind the hit-ratio gauge.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Answers from Redis (hot state or cached ClickHouse answers).
    hits: AtomicU64,
    /// Answers that needed ClickHouse.
    misses: AtomicU64,
}

impl CacheCounters {
    /// Counts one answer of `kind` from `source`.
    pub fn record(&self, kind: &'static str, source: Source) {
        metrics::counter!("insite_query_cache_total", "kind" => kind, "source" => source.as_str(), "route" => current_route())
            .increment(1);
        match source {
            Source::ClickHouse => self.misses.fetch_add(1, Ordering::Relaxed),
            Source::Redis | Source::Memory | Source::Cache => {
                self.hits.fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    /// Hits over all answers (1 before the first answer).
    pub fn ratio(&self) -> f64 {
        let hits = self.hits.load(Ordering::Relaxed) as f64;
        let all = hits + self.misses.load(Ordering::Relaxed) as f64;
        if all == 0.0 {
            1.0
        } else {
            hits / all
        }
    }
}

tokio::task_local! {
    /// The matched route of the request being served, for metrics recorded
    /// below the handlers (ClickHouse query times, cache answers).
    static ROUTE: Arc<str>;
}

/// The route of the request this task serves (`background` outside one:
/// warm-up, frontier reads).
pub fn current_route() -> String {
    ROUTE
        .try_with(|r| r.to_string())
        .unwrap_or_else(|_| "background".to_owned())
}

/// Runs `fut` as serving `route` (what [`current_route`] answers inside).
pub async fn with_route<F: std::future::Future>(route: Arc<str>, fut: F) -> F::Output {
    ROUTE.scope(route, fut).await
}

/// Middleware: request latency and count by route and status class.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let start = Instant::now();
    let response = with_route(route.as_str().into(), next.run(request)).await;
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::histogram!("insite_query_request_duration_seconds", "route" => route.clone(), "status" => status)
        .record(start.elapsed().as_secs_f64());
    metrics::counter!("insite_query_requests_total", "route" => route, "status" => status)
        .increment(1);
    response
}
