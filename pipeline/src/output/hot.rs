//! The hot side of the output: Redis hot state and the DERIVED publisher.
//!
//! Every result, provisional or final, is buffered for Redis (coalesced per
//! key, [`RedisSink`]); the output task flushes Redis every `hot_interval`,
//! whatever the input rate. The end-to-end latency of trades (event time to
//! Redis write) is measured here ([`LatencyRecorder`]).
//!
//! DERIVED publishing ([`DerivedPublisher`]: finals to the DERIVED stream,
//! provisional results on `insite.live.>`) runs in a **task of its own**,
//! fed by a bounded queue ([`DERIVED_QUEUE`] results) that the output task
//! fills with `try_send`: the output task never waits for NATS, so a slow,
//! full or missing DERIVED stream cannot hold up ClickHouse writes or acks.
//! When the queue is full, results are dropped rather than waited for:
//! - a provisional result is taken only while more than a quarter of the
//!   queue is free (that quarter is kept for finals) and is dropped
//!   otherwise; the next one, 100 ms later, supersedes it anyway;
//! - a final result is dropped only when the queue is full, and then
//!   counted and logged (at most every [`LOG_EVERY`]). ClickHouse is the
//!   system of record: a final missing from DERIVED is still in ClickHouse
//!   (and Redis), and `insite replay --hot` can publish it again.
//!
//! Every drop is counted in
//! `insite_pipeline_derived_dropped_total{kind, finality}` (`kind`: `bar`,
//! `sentiment`, `trending`, `alert`; `finality`: `provisional`, `final`);
//! `insite_pipeline_derived_queued` is the queue's length at each hot flush.
//! Failed publishes are counted in `insite_pipeline_nats_publish_errors_total`
//! and never retried. When the output ends, [`HotPath::finish`] gives the
//! task [`DERIVED_DRAIN`] to publish what is queued; what is left then is
//! dropped and counted.

use std::time::{Duration, Instant};

use insite_schemas::time::now_ms;
use insite_schemas::TimestampMs;
use insite_sinks::nats::{Derived, DerivedPublisher, PublishError};
use insite_sinks::redis::{HotUpdate, RedisSink};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::WorkerOutput;

/// Results waiting for the DERIVED task, at most: some seconds of the
/// provisional output of a few hundred symbols.
pub(super) const DERIVED_QUEUE: usize = 8_192;

/// How long [`HotPath::finish`] lets the DERIVED task publish what is queued.
pub(super) const DERIVED_DRAIN: Duration = Duration::from_secs(5);

/// Least time between two warnings about dropped finals or failed publishes.
pub(super) const LOG_EVERY: Duration = Duration::from_secs(10);

/// The metric counting results not published to DERIVED.
const DROPPED: &str = "insite_pipeline_derived_dropped_total";

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

/// The hot path: Redis, and the queue to the DERIVED task.
pub(super) struct HotPath {
    /// Redis hot state (`None` in a replay that leaves it alone).
    redis: Option<RedisSink>,
    /// DERIVED publishing (off in a replay that leaves it alone).
    derived: DerivedSide,
    /// Capacity of the queue to the DERIVED task.
    derived_capacity: usize,
    /// Event times of the trades buffered for Redis, for the end-to-end
    /// latency (event time to Redis write).
    trade_times: Vec<TimestampMs>,
    /// An optional in-process latency histogram (microseconds), for benches.
    latency: Option<LatencyRecorder>,
}

/// Where DERIVED publishing stands.
enum DerivedSide {
    /// No DERIVED publishing.
    Off,
    /// Not started yet: the task is spawned with the first result, inside
    /// the runtime.
    Idle(Box<DerivedPublisher>),
    /// The task runs.
    Running(DerivedQueue),
}

impl HotPath {
    /// A hot path to `redis` and `nats`, either of which may be left out.
    pub(super) fn new(redis: Option<RedisSink>, nats: Option<DerivedPublisher>) -> Self {
        Self {
            redis,
            derived: nats.map_or(DerivedSide::Off, |p| DerivedSide::Idle(Box::new(p))),
            derived_capacity: DERIVED_QUEUE,
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

    /// Queues `result` for the DERIVED task, or drops it (never waits).
    fn derived(&mut self, result: Derived) {
        if let DerivedSide::Idle(_) = self.derived {
            let DerivedSide::Idle(publisher) =
                std::mem::replace(&mut self.derived, DerivedSide::Off)
            else {
                return;
            };
            self.derived =
                DerivedSide::Running(DerivedQueue::spawn(*publisher, self.derived_capacity));
        }
        if let DerivedSide::Running(queue) = &mut self.derived {
            queue.offer(result);
        }
    }

    /// Takes one output of the dataflow: raw trades and quotes and every
    /// result are buffered for the next Redis flush, results are queued for
    /// DERIVED; posts, late events and progress have no hot state. Never
    /// waits for Redis or NATS.
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
                    self.derived(Derived::Bar(b));
                }
            }
            WorkerOutput::Sentiment(windows) => {
                for w in windows {
                    self.hot(HotUpdate::Sentiment(w.clone()));
                    self.derived(Derived::Sentiment(w));
                }
            }
            WorkerOutput::Trending(lists) => {
                for t in lists {
                    self.hot(HotUpdate::Trending(t.clone()));
                    self.derived(Derived::Trending(t));
                }
            }
            WorkerOutput::Alerts(alerts) => {
                for a in alerts {
                    self.hot(HotUpdate::Alert(a.clone()));
                    self.derived(Derived::Alert(a));
                }
            }
            WorkerOutput::Posts(_) | WorkerOutput::Late(_) | WorkerOutput::Progress { .. } => {}
        }
    }

    /// Flushes Redis (best effort: it holds nothing that cannot be rebuilt,
    /// and a failure is retried at the next flush). DERIVED is not waited
    /// for: its task publishes on its own.
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
        if let DerivedSide::Running(queue) = &self.derived {
            metrics::gauge!("insite_pipeline_derived_queued").set(queue.len() as f64);
        }
    }

    /// The last flush when the output ends: Redis, then up to
    /// [`DERIVED_DRAIN`] for the DERIVED task to publish what is queued
    /// (what is left after that is dropped and counted).
    pub(super) async fn finish(&mut self) {
        self.flush().await;
        if let DerivedSide::Running(queue) = std::mem::replace(&mut self.derived, DerivedSide::Off)
        {
            queue.close(DERIVED_DRAIN).await;
        }
    }
}

/// The output task's end of the DERIVED task: a bounded queue, never waited
/// on.
struct DerivedQueue {
    /// Results for the task.
    tx: mpsc::Sender<Derived>,
    /// Free slots a provisional result leaves for finals.
    reserve: usize,
    /// The task.
    task: JoinHandle<()>,
    /// Cancelled to make the task stop where it is.
    stop: CancellationToken,
    /// Finals dropped since the last warning.
    dropped_finals: Throttled,
}

impl DerivedQueue {
    /// Spawns the DERIVED task with a queue of `capacity` results.
    fn spawn(publisher: DerivedPublisher, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stop = CancellationToken::new();
        let task = tokio::spawn(publish_derived(publisher, rx, stop.clone()));
        Self::new(tx, task, stop)
    }

    fn new(tx: mpsc::Sender<Derived>, task: JoinHandle<()>, stop: CancellationToken) -> Self {
        Self {
            reserve: tx.max_capacity() / 4,
            tx,
            task,
            stop,
            dropped_finals: Throttled::new(LOG_EVERY),
        }
    }

    /// Results queued now.
    fn len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues `result` if there is room for it, else drops and counts it.
    fn offer(&mut self, result: Derived) {
        let is_final = result.is_final();
        if !is_final && self.tx.capacity() <= self.reserve {
            count_dropped(&result);
            return;
        }
        match self.tx.try_send(result) {
            Ok(()) => {}
            Err(TrySendError::Full(result) | TrySendError::Closed(result)) => {
                count_dropped(&result);
                if is_final {
                    if let Some(dropped) = self.dropped_finals.hit() {
                        tracing::warn!(
                            dropped,
                            queued = self.len(),
                            "DERIVED is not keeping up: final results dropped from DERIVED \
                             (they are in ClickHouse; insite_pipeline_derived_dropped_total)"
                        );
                    }
                }
            }
        }
    }

    /// Closes the queue and waits up to `drain` for the task to publish
    /// what is in it; then stops the task, which counts what is left.
    async fn close(self, drain: Duration) {
        let Self {
            tx, mut task, stop, ..
        } = self;
        drop(tx);
        let ended = match tokio::time::timeout(drain, &mut task).await {
            Ok(ended) => ended,
            Err(_) => {
                tracing::warn!(
                    drain_s = drain.as_secs_f64(),
                    "DERIVED did not take the last results in time; dropping what is queued"
                );
                stop.cancel();
                task.await
            }
        };
        if let Err(e) = ended {
            tracing::error!(error = %e, "the DERIVED task ended abnormally");
        }
    }
}

/// The DERIVED task: publishes queued results in order until the queue is
/// closed and empty, or `stop`. Acks are confirmed whenever the queue runs
/// empty; a failed publish is counted and logged, not retried. Results
/// still queued at `stop` are dropped and counted.
async fn publish_derived(
    mut publisher: DerivedPublisher,
    mut rx: mpsc::Receiver<Derived>,
    stop: CancellationToken,
) {
    let mut errors = Throttled::new(LOG_EVERY);
    let mut report = |published: Result<(), PublishError>| {
        if let Err(e) = published {
            metrics::counter!("insite_pipeline_nats_publish_errors_total").increment(1);
            if let Some(failed) = errors.hit() {
                tracing::warn!(error = %e, failed, "publishing to DERIVED failed");
            }
        }
    };
    loop {
        let next = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            next = rx.recv() => next,
        };
        let Some(result) = next else {
            // Closed and empty: confirm what is out, then end.
            tokio::select! {
                biased;
                () = stop.cancelled() => {}
                () = confirm_all(&mut publisher, &mut report) => {}
            }
            break;
        };
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                count_dropped(&result);
                break;
            }
            published = publisher.publish(&result) => report(published),
        }
        if rx.is_empty() {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = confirm_all(&mut publisher, &mut report) => {}
            }
        }
    }
    rx.close();
    while let Ok(result) = rx.try_recv() {
        count_dropped(&result);
    }
}

/// Waits for every outstanding ack of `publisher`, reporting each failure.
async fn confirm_all(
    publisher: &mut DerivedPublisher,
    report: &mut impl FnMut(Result<(), PublishError>),
) {
    while publisher.in_flight() > 0 {
        report(publisher.flush().await);
    }
}

/// Counts one result that was not published to DERIVED.
fn count_dropped(result: &Derived) {
    let finality = if result.is_final() {
        "final"
    } else {
        "provisional"
    };
    metrics::counter!(DROPPED, "kind" => result.kind(), "finality" => finality).increment(1);
}

/// Counts events and lets one through to the log at most every `every`.
#[derive(Debug)]
struct Throttled {
    /// Least time between two that are let through.
    every: Duration,
    /// When one was last let through.
    last: Option<Instant>,
    /// Events since then.
    pending: u64,
}

impl Throttled {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            pending: 0,
        }
    }

    /// Counts one event; `Some(events since the last one let through)` if
    /// this one is let through.
    fn hit(&mut self) -> Option<u64> {
        self.pending += 1;
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use insite_schemas::{Bar, Finality, Interval, Symbol};
    use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

    use super::*;

    /// Counters by `name{label=value,...}`, for one thread.
    #[derive(Default)]
    struct Counters(Mutex<HashMap<String, Arc<AtomicU64>>>);

    impl Counters {
        fn get(&self, key: &str) -> u64 {
            self.0
                .lock()
                .unwrap()
                .get(key)
                .map_or(0, |c| c.load(Ordering::Acquire))
        }
    }

    impl metrics::Recorder for Counters {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            Counter::from_arc(self.0.lock().unwrap().entry(name).or_default().clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    fn bar(window_start: TimestampMs, finality: Finality) -> Derived {
        Derived::Bar(Bar {
            symbol: Symbol::new("AAPL").unwrap(),
            interval: Interval::SECOND,
            window_start,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 1,
            vwap: 1.0,
            trades: 1,
            finality,
        })
    }

    #[tokio::test]
    async fn a_full_queue_drops_provisional_results_first_and_never_waits() {
        let counters = Counters::default();
        let _guard = metrics::set_default_local_recorder(&counters);
        // Nobody reads the queue: DERIVED has stopped taking results.
        let (tx, mut rx) = mpsc::channel(8);
        let mut queue = DerivedQueue::new(tx, tokio::spawn(async {}), CancellationToken::new());
        assert_eq!(queue.reserve, 2);

        for i in 0..10 {
            queue.offer(bar(i, Finality::Provisional));
        }
        // Provisional results stop at the reserve kept for finals...
        assert_eq!(queue.len(), 6);
        for i in 0..3 {
            queue.offer(bar(100 + i, Finality::Final));
        }
        // ...which finals may use, up to a full queue.
        assert_eq!(queue.len(), 8);

        let provisional = "insite_pipeline_derived_dropped_total{kind=bar,finality=provisional}";
        let fin = "insite_pipeline_derived_dropped_total{kind=bar,finality=final}";
        assert_eq!(counters.get(provisional), 4);
        assert_eq!(counters.get(fin), 1);

        // What was queued stays in order.
        let mut starts = Vec::new();
        while let Ok(Derived::Bar(b)) = rx.try_recv() {
            starts.push((b.window_start, b.finality));
        }
        let mut want: Vec<_> = (0..6).map(|i| (i, Finality::Provisional)).collect();
        want.extend([(100, Finality::Final), (101, Finality::Final)]);
        assert_eq!(starts, want);
    }

    #[tokio::test]
    async fn a_closed_queue_counts_every_result_as_dropped() {
        let counters = Counters::default();
        let _guard = metrics::set_default_local_recorder(&counters);
        let (tx, rx) = mpsc::channel(8);
        drop(rx);
        let mut queue = DerivedQueue::new(tx, tokio::spawn(async {}), CancellationToken::new());
        queue.offer(bar(0, Finality::Final));
        queue.offer(bar(1, Finality::Final));
        assert_eq!(
            counters.get("insite_pipeline_derived_dropped_total{kind=bar,finality=final}"),
            2
        );
        queue.close(Duration::from_secs(1)).await;
    }

    #[test]
    fn warnings_are_throttled_and_say_how_many_were_held_back() {
        let mut always = Throttled::new(Duration::ZERO);
        assert_eq!(always.hit(), Some(1));
        assert_eq!(always.hit(), Some(1));
        let mut hourly = Throttled::new(Duration::from_secs(3_600));
        assert_eq!(hourly.hit(), Some(1));
        assert_eq!(hourly.hit(), None);
        assert_eq!(hourly.hit(), None);
        hourly.last = None;
        assert_eq!(hourly.hit(), Some(3));
    }
}
