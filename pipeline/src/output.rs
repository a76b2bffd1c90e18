//! The output side: one async task that takes everything the dataflow
//! produces, writes it to ClickHouse, Redis and NATS, and works out how far
//! results are durable.
//!
//! Workers send [`WorkerOutput`]s over a bounded channel, in order. Besides
//! data they send [`WorkerOutput::Progress`]: "every result this worker will
//! ever produce for event-time watermarks below `frontier` has been sent".
//! At each flush the task takes the least frontier over all workers (as
//! received before the flush), flushes every ClickHouse table, and once all
//! are confirmed that frontier is *durable*: messages whose deadline is
//! below it may be acknowledged ([`crate::progress::AckTracker`]).
//!
//! When ClickHouse is down, the writers keep their batches and retry; the
//! task stops reading its channel while any writer is full, so the workers
//! and, behind them, the consumers stop too: back-pressure, never unbounded
//! memory. Redis and NATS carry only what can be rebuilt; a failure there is
//! logged, counted and retried at the next flush without holding up
//! acknowledgement.

use std::time::{Duration, Instant};

use insite_schemas::{
    Alert, Bar, Finality, LateEvent, Post, Quote, SentimentWindow, TimestampMs, Trade, Trending,
};
use insite_sinks::clickhouse::rows::{
    AlertRow, BarRow, LateEventRow, PostRow, QuoteRow, SentimentRow, TradeRow, TrendingRow,
};
use insite_sinks::clickhouse::{TableWriter, WriteError, WriterConfig};
use insite_sinks::nats::{Derived, DerivedPublisher};
use insite_sinks::redis::{HotUpdate, RedisSink};
use tokio::sync::mpsc;

use crate::resume::{ProgressStore, ResumeError};

/// Why the output task stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// A ClickHouse table refused its rows, or stayed unavailable.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The durable frontier could not be recorded.
    #[error(transparent)]
    Progress(#[from] ResumeError),
}

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

/// What the dataflow hands to the output task.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerOutput {
    /// Raw trades, for the `trades` table and the latest-trade key.
    Trades(Vec<Trade>),
    /// Raw quotes.
    Quotes(Vec<Quote>),
    /// Posts with their sentiment score (cashtags filled in).
    Posts(Vec<(Post, f64)>),
    /// Bars, provisional or final.
    Bars(Vec<Bar>),
    /// Sentiment windows, provisional or final.
    Sentiment(Vec<SentimentWindow>),
    /// Trending lists.
    Trending(Vec<Trending>),
    /// Alerts.
    Alerts(Vec<Alert>),
    /// Events that arrived after their window closed.
    Late(Vec<LateEvent>),
    /// Everything for watermarks below `frontier` from `worker` was sent.
    Progress {
        /// The worker's index.
        worker: usize,
        /// Its output frontier (event-time watermark, ms).
        frontier: TimestampMs,
    },
}

/// The ClickHouse writers, one per table.
struct Tables {
    /// `trades`.
    trades: TableWriter<TradeRow>,
    /// `quotes`.
    quotes: TableWriter<QuoteRow>,
    /// `posts`.
    posts: TableWriter<PostRow>,
    /// `bars`.
    bars: TableWriter<BarRow>,
    /// `sentiment`.
    sentiment: TableWriter<SentimentRow>,
    /// `trending`.
    trending: TableWriter<TrendingRow>,
    /// `alerts`.
    alerts: TableWriter<AlertRow>,
    /// `late_events`.
    late: TableWriter<LateEventRow>,
}

impl Tables {
    fn new(client: &clickhouse::Client, config: &WriterConfig) -> Self {
        Self {
            trades: TableWriter::new(client.clone(), "trades", config.clone()),
            quotes: TableWriter::new(client.clone(), "quotes", config.clone()),
            posts: TableWriter::new(client.clone(), "posts", config.clone()),
            bars: TableWriter::new(client.clone(), "bars", config.clone()),
            sentiment: TableWriter::new(client.clone(), "sentiment", config.clone()),
            trending: TableWriter::new(client.clone(), "trending", config.clone()),
            alerts: TableWriter::new(client.clone(), "alerts", config.clone()),
            late: TableWriter::new(client.clone(), "late_events", config.clone()),
        }
    }

    fn any_full(&self) -> bool {
        self.trades.is_full()
            || self.quotes.is_full()
            || self.posts.is_full()
            || self.bars.is_full()
            || self.sentiment.is_full()
            || self.trending.is_full()
            || self.alerts.is_full()
            || self.late.is_full()
    }

    fn is_empty(&self) -> bool {
        self.trades.pending()
            + self.quotes.pending()
            + self.posts.pending()
            + self.bars.pending()
            + self.sentiment.pending()
            + self.trending.pending()
            + self.alerts.pending()
            + self.late.pending()
            == 0
    }

    fn any_due(&self, now: Instant) -> bool {
        self.trades.should_flush(now)
            || self.quotes.should_flush(now)
            || self.posts.should_flush(now)
            || self.bars.should_flush(now)
            || self.sentiment.should_flush(now)
            || self.trending.should_flush(now)
            || self.alerts.should_flush(now)
            || self.late.should_flush(now)
    }

    /// Flushes every table; rows are durable when this returns `Ok`.
    async fn flush(&mut self) -> Result<usize, WriteError> {
        let started = Instant::now();
        let mut rows = 0;
        rows += self.trades.flush().await?.rows;
        rows += self.quotes.flush().await?.rows;
        rows += self.posts.flush().await?.rows;
        rows += self.bars.flush().await?.rows;
        rows += self.sentiment.flush().await?.rows;
        rows += self.trending.flush().await?.rows;
        rows += self.alerts.flush().await?.rows;
        rows += self.late.flush().await?.rows;
        metrics::histogram!("insite_pipeline_clickhouse_flush_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("insite_pipeline_clickhouse_flush_rows").record(rows as f64);
        Ok(rows)
    }
}

/// How often the durable frontier is recorded (and, in a cluster, the
/// least frontier over the processes looked up).
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// The output task's state.
pub struct OutputTask {
    /// ClickHouse writers.
    tables: Tables,
    /// Redis hot state (`None` in a replay that leaves it alone).
    redis: Option<RedisSink>,
    /// NATS DERIVED publisher (`None` in a replay that leaves it alone).
    nats: Option<DerivedPublisher>,
    /// Where the durable frontier is recorded before anything is
    /// acknowledged on its strength (`None`: not recorded).
    progress: Option<ProgressStore>,
    /// The durable frontier recorded by an earlier run: reported frontiers
    /// never go below it.
    floor: TimestampMs,
    /// Event times of the trades buffered for Redis, for the end-to-end
    /// latency (event time to Redis write).
    trade_times: Vec<TimestampMs>,
    /// An optional in-process latency histogram (microseconds), for benches.
    latency: Option<LatencyRecorder>,
    /// Latest progress frontier per worker.
    frontiers: Vec<TimestampMs>,
    /// Version stamped on result rows (the `ReplacingMergeTree` version).
    version: u64,
    /// How often to flush Redis and NATS (the provisional cadence).
    hot_interval: Duration,
}

impl std::fmt::Debug for OutputTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputTask")
            .field("frontiers", &self.frontiers)
            .finish()
    }
}

impl OutputTask {
    /// An output task for `workers` workers (their indices in
    /// [`WorkerOutput::Progress`] run from 0 to `workers - 1`).
    pub fn new(
        clickhouse: &clickhouse::Client,
        writer: &WriterConfig,
        redis: Option<RedisSink>,
        nats: Option<DerivedPublisher>,
        workers: usize,
        hot_interval: Duration,
    ) -> Self {
        // Rows written by a later run replace those of an earlier one; the
        // values are the same for the same input, so which wins is moot, but
        // a growing version keeps the newest visible before merges.
        let version = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        Self {
            tables: Tables::new(clickhouse, writer),
            redis,
            nats,
            progress: None,
            floor: TimestampMs::MIN,
            trade_times: Vec::new(),
            latency: None,
            frontiers: vec![TimestampMs::MIN; workers.max(1)],
            version,
            hot_interval,
        }
    }

    /// Records every new durable frontier in `progress` before reporting
    /// it, and never reports one below `floor` (the frontier an earlier run
    /// recorded: its windows are complete in ClickHouse).
    pub fn with_progress(mut self, progress: ProgressStore, floor: TimestampMs) -> Self {
        self.progress = Some(progress);
        self.floor = floor;
        self
    }

    /// Also records the end-to-end latency (event time to Redis write) of
    /// every trade into `latency`.
    pub fn with_latency(mut self, latency: LatencyRecorder) -> Self {
        self.latency = Some(latency);
        self
    }

    /// The least frontier over all workers.
    fn frontier(&self) -> TimestampMs {
        self.frontiers
            .iter()
            .copied()
            .min()
            .unwrap_or(TimestampMs::MIN)
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

    /// Takes one output of the dataflow.
    pub async fn accept(&mut self, output: WorkerOutput) {
        let version = self.version;
        match output {
            WorkerOutput::Trades(trades) => {
                for t in trades {
                    self.tables.trades.push(TradeRow::from(&t));
                    self.hot(HotUpdate::Trade(t));
                }
            }
            WorkerOutput::Quotes(quotes) => {
                for q in quotes {
                    self.tables.quotes.push(QuoteRow::from(&q));
                    self.hot(HotUpdate::Quote(q));
                }
            }
            WorkerOutput::Posts(posts) => {
                for (p, score) in posts {
                    self.tables.posts.push(PostRow::from_post(&p, score));
                }
            }
            WorkerOutput::Bars(bars) => {
                for b in bars {
                    if b.finality == Finality::Final {
                        self.tables.bars.push(BarRow::from_bar(&b, version));
                    }
                    self.hot(HotUpdate::Bar(b.clone()));
                    self.derived(Derived::Bar(b)).await;
                }
            }
            WorkerOutput::Sentiment(windows) => {
                for w in windows {
                    if w.finality == Finality::Final {
                        self.tables
                            .sentiment
                            .push(SentimentRow::from_window(&w, version));
                    }
                    self.hot(HotUpdate::Sentiment(w.clone()));
                    self.derived(Derived::Sentiment(w)).await;
                }
            }
            WorkerOutput::Trending(lists) => {
                for t in lists {
                    if t.finality == Finality::Final {
                        for row in TrendingRow::from_trending(&t, version) {
                            self.tables.trending.push(row);
                        }
                    }
                    self.hot(HotUpdate::Trending(t.clone()));
                    self.derived(Derived::Trending(t)).await;
                }
            }
            WorkerOutput::Alerts(alerts) => {
                for a in alerts {
                    self.tables.alerts.push(AlertRow::from_alert(&a, version));
                    self.hot(HotUpdate::Alert(a.clone()));
                    self.derived(Derived::Alert(a)).await;
                }
            }
            WorkerOutput::Late(late) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or_default();
                metrics::counter!("insite_pipeline_late_events_total").increment(late.len() as u64);
                for e in late {
                    self.tables.late.push(LateEventRow::from_late(&e, now));
                }
            }
            WorkerOutput::Progress { worker, frontier } => {
                if let Some(slot) = self.frontiers.get_mut(worker) {
                    *slot = (*slot).max(frontier);
                }
            }
        }
    }

    /// Flushes Redis and NATS (best effort: they hold nothing that cannot
    /// be rebuilt, and a failure is retried at the next flush).
    pub async fn flush_hot(&mut self) {
        if let Some(redis) = self.redis.as_mut() {
            match redis.flush().await {
                Ok(_) => {
                    let now = crate::progress::wall_clock_ms();
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

    /// Flushes ClickHouse and returns the durable frontier: every result
    /// for watermarks below it is now in ClickHouse.
    pub async fn flush_durable(&mut self) -> Result<TimestampMs, OutputError> {
        let frontier = self.frontier().max(self.floor);
        self.tables.flush().await?;
        Ok(frontier)
    }

    /// Records `frontier` (retrying while ClickHouse is unavailable), then
    /// reports the durable frontier (in a cluster, the least over all
    /// processes) to the ack task.
    async fn make_durable(
        &mut self,
        frontier: TimestampMs,
        durable: &tokio::sync::watch::Sender<TimestampMs>,
        record: bool,
    ) -> Result<(), OutputError> {
        let mut global = Some(frontier);
        if let Some(progress) = &self.progress {
            let mut delay = Duration::from_millis(100);
            let mut attempts = 0u32;
            loop {
                let saved = if record {
                    progress.save(frontier).await
                } else {
                    Ok(())
                };
                let recorded = match saved {
                    Ok(()) => progress.global(frontier).await,
                    Err(e) => Err(e),
                };
                match recorded {
                    Ok(least) => {
                        global = least;
                        break;
                    }
                    Err(e) => {
                        attempts += 1;
                        if attempts >= 50 {
                            return Err(e.into());
                        }
                        tracing::warn!(error = %e, "recording the durable frontier failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        if let Some(global) = global {
            durable.send_if_modified(|current| {
                let advanced = global > *current;
                if advanced {
                    *current = global;
                }
                advanced
            });
        }
        Ok(())
    }

    /// Runs until `input` closes: accepts outputs, flushes on size, age and
    /// the hot cadence, and sends each new durable frontier to `durable`.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<WorkerOutput>,
        durable: tokio::sync::watch::Sender<TimestampMs>,
    ) -> Result<(), OutputError> {
        let mut hot_tick = tokio::time::interval(self.hot_interval);
        hot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_durable = TimestampMs::MIN;
        let mut last_progress = Instant::now() - PROGRESS_EVERY;
        loop {
            let reading = !self.tables.any_full();
            let mut hot_due = false;
            tokio::select! {
                biased;
                next = input.recv(), if reading => match next {
                    Some(output) => self.accept(output).await,
                    None => break,
                },
                _ = hot_tick.tick() => hot_due = true,
            }
            if hot_due {
                self.flush_hot().await;
            }
            // ClickHouse is flushed on size or age (or when a writer is
            // full); with nothing buffered the frontier is durable at once.
            let now = Instant::now();
            if self.tables.any_due(now)
                || self.tables.any_full()
                || (hot_due && self.tables.is_empty())
            {
                let frontier = self.flush_durable().await?;
                // The frontier is recorded at most every PROGRESS_EVERY (it
                // moves with the watermark, every few milliseconds); in a
                // cluster the least frontier over the processes is looked up
                // again while it lags this one's.
                if last_progress.elapsed() >= PROGRESS_EVERY {
                    if frontier > last_durable {
                        last_durable = frontier;
                        self.make_durable(frontier, &durable, true).await?;
                        last_progress = Instant::now();
                    } else if *durable.borrow() < last_durable {
                        self.make_durable(last_durable, &durable, false).await?;
                        last_progress = Instant::now();
                    }
                }
            }
        }
        self.flush_hot().await;
        let frontier = self.flush_durable().await?;
        if frontier > last_durable {
            self.make_durable(frontier, &durable, true).await?;
        }
        Ok(())
    }
}
