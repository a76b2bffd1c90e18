//! The hot side of the output: Redis hot state and the DERIVED publisher.
//!
//! Every result, provisional or final, is buffered for Redis (coalesced per
//! key, [`RedisSink`]) and published to DERIVED ([`DerivedPublisher`]); the
//! output task flushes both every `hot_interval`, whatever the input rate.
//! Both carry only what can be rebuilt: a failure is logged, counted and
//! retried at the next flush, and never holds up acknowledgement. The
//! end-to-end latency of trades (event time to Redis write) is measured
//! here ([`LatencyRecorder`]).

use insite_schemas::time::now_ms;
use insite_schemas::TimestampMs;
use insite_sinks::nats::{Derived, DerivedPublisher};
use insite_sinks::redis::{HotUpdate, RedisSink};

use super::WorkerOutput;

/// An in-process histogram of end-to-end latencies, in microseconds
/// (benchmarks read it; `/metrics` has the same figures as a Prometheus
/// histogram).
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    /// The histogram.
    histogram: std::sync::Arc<std::sync::Mutex<hdrhistogram::Histogram<u64>>>,
}

impl LatencyRecorder {
    /// An empty recorder (1 µs to 1 h, 3 significant digits).
    pub fn new() -> Result<Self, hdrhistogram::CreationError> {
        let histogram = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)?;
        Ok(Self {
            histogram: std::sync::Arc::new(std::sync::Mutex::new(histogram)),
        })
    }

    /// Records one latency in milliseconds.
    pub fn record_ms(&self, latency_ms: i64) {
        if let Ok(mut h) = self.histogram.lock() {
            h.saturating_record((latency_ms.max(0) as u64).saturating_mul(1_000).max(1));
        }
    }

    /// A copy of the histogram so far.
    pub fn snapshot(&self) -> hdrhistogram::Histogram<u64> {
        self.histogram
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Forgets everything recorded so far.
    pub fn reset(&self) {
        if let Ok(mut h) = self.histogram.lock() {
            h.reset();
        }
    }
}

/// The hot path: Redis and DERIVED.
pub(super) struct HotPath {
    /// Redis hot state (`None` in a replay that leaves it alone).
    redis: Option<RedisSink>,
    /// NATS DERIVED publisher (`None` in a replay that leaves it alone).
    nats: Option<DerivedPublisher>,
    /// Event times of the trades buffered for Redis, for the end-to-end
    /// latency (event time to Redis write).
    trade_times: Vec<TimestampMs>,
    /// An optional in-process latency histogram (microseconds), for benches.
    latency: Option<LatencyRecorder>,
}

impl HotPath {
    /// A hot path to `redis` and `nats`, either of which may be left out.
    pub(super) fn new(redis: Option<RedisSink>, nats: Option<DerivedPublisher>) -> Self {
        Self {
            redis,
            nats,
            trade_times: Vec::new(),
            latency: None,
        }
    }

    /// Also records every trade's end-to-end latency into `latency`.
    pub(super) fn record_latency(&mut self, latency: LatencyRecorder) {
        self.latency = Some(latency);
    }

    fn hot(&mut self, update: HotUpdate) {
        let Some(redis) = self.redis.as_mut() else {
            return;
        };
        if let HotUpdate::Trade(trade) = &update {
            self.trade_times.push(trade.ts);
        }
        if let Err(e) = redis.push(update) {
            tracing::error!(error = %e, "encoding a Redis value failed");
        }
    }

    async fn derived(&mut self, result: Derived) {
        let Some(nats) = self.nats.as_mut() else {
            return;
        };
        if let Err(e) = nats.publish(&result).await {
            metrics::counter!("insite_pipeline_nats_publish_errors_total").increment(1);
            tracing::warn!(error = %e, "publishing a derived result failed");
        }
    }

    /// Takes one output of the dataflow: raw trades and quotes and every
    /// result are buffered for the next Redis flush, results are published
    /// to DERIVED; posts, late events and progress have no hot state.
    pub(super) async fn accept(&mut self, output: WorkerOutput) {
        match output {
            WorkerOutput::Trades(trades) => {
                for t in trades {
                    self.hot(HotUpdate::Trade(t));
                }
            }
            WorkerOutput::Quotes(quotes) => {
                for q in quotes {
                    self.hot(HotUpdate::Quote(q));
                }
            }
            WorkerOutput::Bars(bars) => {
                for b in bars {
                    self.hot(HotUpdate::Bar(b.clone()));
                    self.derived(Derived::Bar(b)).await;
                }
            }
            WorkerOutput::Sentiment(windows) => {
                for w in windows {
                    self.hot(HotUpdate::Sentiment(w.clone()));
                    self.derived(Derived::Sentiment(w)).await;
                }
            }
            WorkerOutput::Trending(lists) => {
                for t in lists {
                    self.hot(HotUpdate::Trending(t.clone()));
                    self.derived(Derived::Trending(t)).await;
                }
            }
            WorkerOutput::Alerts(alerts) => {
                for a in alerts {
                    self.hot(HotUpdate::Alert(a.clone()));
                    self.derived(Derived::Alert(a)).await;
                }
            }
            WorkerOutput::Posts(_) | WorkerOutput::Late(_) | WorkerOutput::Progress { .. } => {}
        }
    }

    /// Flushes Redis and NATS (best effort: they hold nothing that cannot
    /// be rebuilt, and a failure is retried at the next flush).
    pub(super) async fn flush(&mut self) {
        if let Some(redis) = self.redis.as_mut() {
            match redis.flush().await {
                Ok(_) => {
                    let now = now_ms();
                    let histogram = metrics::histogram!("insite_pipeline_event_to_redis_seconds");
                    for ts in self.trade_times.drain(..) {
                        let latency_ms = (now - ts).max(0);
                        histogram.record(latency_ms as f64 / 1_000.0);
                        if let Some(latency) = &self.latency {
                            latency.record_ms(latency_ms);
                        }
                    }
                }
                Err(e) => {
                    metrics::counter!("insite_pipeline_redis_errors_total").increment(1);
                    tracing::warn!(error = %e, pending = redis.pending(), "Redis flush failed; will retry");
                }
            }
        }
        if let Some(nats) = self.nats.as_mut() {
            if let Err(e) = nats.flush().await {
                metrics::counter!("insite_pipeline_nats_publish_errors_total").increment(1);
                tracing::warn!(error = %e, "NATS flush failed");
            }
        }
    }
}
