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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
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
        let counted = ROUTE.try_with(|route| route.cache(kind, source).increment(1));
        if counted.is_err() {
            metrics::counter!("insite_query_cache_total", "kind" => kind, "source" => source.as_str(), "route" => "background")
                .increment(1);
        }
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

/// Status classes, in the order of [`RouteMetrics::by_status`].
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The metric handles of one route, registered once and then reused by
/// every request of the route: a request increments atomics instead of
/// building label sets and looking them up in the registry.
#[derive(Debug)]
pub struct RouteMetrics {
    /// The matched route (`/v1/symbols/{symbol}/bar`), or `unmatched`.
    name: Arc<str>,
    /// Request latency and count per status class.
    by_status: [(metrics::Histogram, metrics::Counter); 5],
    /// `insite_query_cache_total` by kind and source.
    cache: RwLock<Vec<((&'static str, Source), metrics::Counter)>>,
}

impl RouteMetrics {
    /// The handles of `name`, registered now with the current recorder.
    fn register(name: &str) -> Self {
        let name: Arc<str> = name.into();
        let by_status = STATUS_CLASSES.map(|status| {
            (
                metrics::histogram!("insite_query_request_duration_seconds", "route" => name.to_string(), "status" => status),
                metrics::counter!("insite_query_requests_total", "route" => name.to_string(), "status" => status),
            )
        });
        Self {
            name,
            by_status,
            cache: RwLock::new(Vec::new()),
        }
    }

    /// The handles of the route `name`: registered at its first request,
    /// shared after. Routes are the router's, a fixed set.
    pub fn of(name: &str) -> Arc<Self> {
        static ROUTES: OnceLock<RwLock<HashMap<Arc<str>, Arc<RouteMetrics>>>> = OnceLock::new();
        let routes = ROUTES.get_or_init(RwLock::default);
        if let Some(found) = routes.read().ok().and_then(|r| r.get(name).cloned()) {
            return found;
        }
        let made = Arc::new(Self::register(name));
        match routes.write() {
            Ok(mut routes) => routes
                .entry(made.name.clone())
                .or_insert_with(|| made.clone())
                .clone(),
            Err(_) => made,
        }
    }

    /// The route's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cache counter of `kind` answered from `source`.
    fn cache(&self, kind: &'static str, source: Source) -> metrics::Counter {
        let wanted = (kind, source);
        if let Some(found) = self.cache.read().ok().and_then(|c| {
            c.iter()
                .find(|(key, _)| *key == wanted)
                .map(|(_, counter)| counter.clone())
        }) {
            return found;
        }
        let counter = metrics::counter!("insite_query_cache_total", "kind" => kind, "source" => source.as_str(), "route" => self.name.to_string());
        if let Ok(mut cache) = self.cache.write() {
            if !cache.iter().any(|(key, _)| *key == wanted) {
                cache.push((wanted, counter.clone()));
            }
        }
        counter
    }

    /// Records one answered request of `status` that took `seconds`.
    fn answered(&self, status: u16, seconds: f64) {
        let class = usize::from((status / 100).clamp(1, 5) - 1);
        let (duration, count) = &self.by_status[class];
        duration.record(seconds);
        count.increment(1);
    }
}

tokio::task_local! {
    /// The matched route of the request being served, for metrics recorded
    /// below the handlers (ClickHouse query times, cache answers).
    static ROUTE: Arc<RouteMetrics>;
}

/// The route of the request this task serves (`background` outside one:
/// warm-up, frontier reads).
pub fn current_route() -> String {
    ROUTE
        .try_with(|r| r.name().to_owned())
        .unwrap_or_else(|_| "background".to_owned())
}

/// Runs `fut` as serving `route` (what [`current_route`] answers inside).
pub async fn with_route<F: std::future::Future>(route: Arc<RouteMetrics>, fut: F) -> F::Output {
    ROUTE.scope(route, fut).await
}

/// Middleware: request latency and count by route and status class.
pub async fn track(request: Request, next: Next) -> Response {
    let route = RouteMetrics::of(
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str),
    );
    let start = Instant::now();
    let response = with_route(route.clone(), next.run(request)).await;
    route.answered(response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}
