//! The output side: everything the dataflow produces goes to ClickHouse,
//! Redis and NATS, and the output side works out how far results are
//! durable.
//!
//! Workers send [`WorkerOutput`]s over a bounded channel, in order. Besides
//! data they send [`WorkerOutput::Progress`]: "every result this worker will
//! ever produce for event-time watermarks below `frontier` has been sent".
//!
//! Two tasks share the work, so that slow ClickHouse inserts never hold up
//! the hot path:
//! - the **output task** ([`OutputTask`]) takes every output, writes Redis
//!   and publishes to DERIVED every `hot_interval` (whatever the input
//!   rate), turns rows for ClickHouse into row batches and passes them on,
//!   followed by the least frontier over all workers whenever it moves;
//! - the **ClickHouse task** buffers rows per table, flushes every table at
//!   once on size or age, and after a confirmed flush knows that the last
//!   frontier it had received before the flush is *durable*: it records it
//!   ([`crate::resume`]) and reports it, and messages whose deadline it
//!   passes may be acknowledged ([`crate::progress::AckTracker`]).
//!
//! When ClickHouse is down, the writers keep their batches and retry; the
//! ClickHouse task stops reading while any writer is full, its bounded
//! channel fills, the output task waits, and behind it the workers and the
//! consumers: back-pressure, never unbounded memory. Redis and NATS carry
//! only what can be rebuilt; a failure there is logged, counted and retried
//! at the next flush without holding up acknowledgement.

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
use tokio::sync::{mpsc, watch};

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
    /// The ClickHouse task panicked (a bug).
    #[error("the ClickHouse task ended abnormally")]
    Crashed,
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

/// Applies `$body` to every table writer of `$tables` as `$w`.
macro_rules! each_table {
    ($tables:expr, |$w:ident| $body:expr) => {{
        let t = $tables;
        [
            {
                let $w = &t.trades;
                $body
            },
            {
                let $w = &t.quotes;
                $body
            },
            {
                let $w = &t.posts;
                $body
            },
            {
                let $w = &t.bars;
                $body
            },
            {
                let $w = &t.sentiment;
                $body
            },
            {
                let $w = &t.trending;
                $body
            },
            {
                let $w = &t.alerts;
                $body
            },
            {
                let $w = &t.late;
                $body
            },
        ]
    }};
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
        each_table!(self, |w| w.is_full()).into_iter().any(|b| b)
    }

    fn is_empty(&self) -> bool {
        each_table!(self, |w| w.pending())
            .into_iter()
            .sum::<usize>()
            == 0
    }

    fn any_due(&self, now: Instant) -> bool {
        each_table!(self, |w| w.should_flush(now))
            .into_iter()
            .any(|b| b)
    }

    /// Flushes every table, all at once; rows are durable when this returns
    /// `Ok`.
    async fn flush(&mut self) -> Result<usize, WriteError> {
        let started = Instant::now();
        let reports = futures::try_join!(
            self.trades.flush(),
            self.quotes.flush(),
            self.posts.flush(),
            self.bars.flush(),
            self.sentiment.flush(),
            self.trending.flush(),
            self.alerts.flush(),
            self.late.flush(),
        )?;
        let rows = reports.0.rows
            + reports.1.rows
            + reports.2.rows
            + reports.3.rows
            + reports.4.rows
            + reports.5.rows
            + reports.6.rows
            + reports.7.rows;
        metrics::histogram!("insite_pipeline_clickhouse_flush_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("insite_pipeline_clickhouse_flush_rows").record(rows as f64);
        Ok(rows)
    }

    fn push(&mut self, rows: Rows) {
        match rows {
            Rows::Trades(rows) => rows.into_iter().for_each(|r| self.trades.push(r)),
            Rows::Quotes(rows) => rows.into_iter().for_each(|r| self.quotes.push(r)),
            Rows::Posts(rows) => rows.into_iter().for_each(|r| self.posts.push(r)),
            Rows::Bars(rows) => rows.into_iter().for_each(|r| self.bars.push(r)),
            Rows::Sentiment(rows) => rows.into_iter().for_each(|r| self.sentiment.push(r)),
            Rows::Trending(rows) => rows.into_iter().for_each(|r| self.trending.push(r)),
            Rows::Alerts(rows) => rows.into_iter().for_each(|r| self.alerts.push(r)),
            Rows::Late(rows) => rows.into_iter().for_each(|r| self.late.push(r)),
        }
    }
}

/// Rows for one table, from the output task to the ClickHouse task.
#[derive(Debug)]
enum Rows {
    Trades(Vec<TradeRow>),
    Quotes(Vec<QuoteRow>),
    Posts(Vec<PostRow>),
    Bars(Vec<BarRow>),
    Sentiment(Vec<SentimentRow>),
    Trending(Vec<TrendingRow>),
    Alerts(Vec<AlertRow>),
    Late(Vec<LateEventRow>),
}

/// What the ClickHouse task receives, in order.
#[derive(Debug)]
enum ToClickHouse {
    /// Rows to write.
    Rows(Rows),
    /// Every row for times before this was sent before it.
    Frontier(TimestampMs),
}

/// How often the durable frontier is recorded (and, in a cluster, the
/// least frontier over the processes looked up).
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Row batches buffered between the output task and the ClickHouse task.
const CLICKHOUSE_CHANNEL: usize = 64;

/// The ClickHouse task: buffers rows, flushes, records and reports the
/// durable frontier.
struct ClickHouseTask {
    /// The writers.
    tables: Tables,
    /// Where the durable frontier is recorded (`None`: not recorded).
    progress: Option<ProgressStore>,
    /// The durable frontier of an earlier run: nothing reported goes below.
    floor: TimestampMs,
    /// The last frontier received.
    frontier: TimestampMs,
}

impl ClickHouseTask {
    /// Records `frontier` (retrying while ClickHouse is unavailable) if
    /// `record`, then reports the durable frontier (in a cluster, the least
    /// over all processes).
    async fn make_durable(
        &self,
        frontier: TimestampMs,
        durable: &watch::Sender<TimestampMs>,
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

    /// Runs until `input` closes, then flushes what is left.
    async fn run(
        mut self,
        mut input: mpsc::Receiver<ToClickHouse>,
        durable: watch::Sender<TimestampMs>,
        check_every: Duration,
    ) -> Result<(), OutputError> {
        let mut tick = tokio::time::interval(check_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_durable = TimestampMs::MIN;
        let mut last_progress = Instant::now() - PROGRESS_EVERY;
        let mut open = true;
        while open {
            let reading = !self.tables.any_full();
            tokio::select! {
                next = input.recv(), if reading => match next {
                    Some(ToClickHouse::Rows(rows)) => self.tables.push(rows),
                    Some(ToClickHouse::Frontier(frontier)) => {
                        self.frontier = self.frontier.max(frontier);
                    }
                    None => open = false,
                },
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let empty = self.tables.is_empty();
            if !(empty || self.tables.any_due(now) || self.tables.any_full() || !open) {
                continue;
            }
            // Everything received before this flush is durable after it.
            let frontier = self.frontier.max(self.floor);
            if !empty {
                self.tables.flush().await?;
            }
            // The frontier moves with the watermark, every few milliseconds:
            // it is recorded at most every PROGRESS_EVERY (and at the end);
            // in a cluster the least frontier over the processes is looked
            // up again while it lags this one's.
            if last_progress.elapsed() >= PROGRESS_EVERY || !open {
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
        Ok(())
    }
}

/// The hot path: Redis, DERIVED, and what goes on to ClickHouse.
struct HotPath {
    /// Redis hot state (`None` in a replay that leaves it alone).
    redis: Option<RedisSink>,
    /// NATS DERIVED publisher (`None` in a replay that leaves it alone).
    nats: Option<DerivedPublisher>,
    /// Event times of the trades buffered for Redis, for the end-to-end
    /// latency (event time to Redis write).
    trade_times: Vec<TimestampMs>,
    /// An optional in-process latency histogram (microseconds), for benches.
    latency: Option<LatencyRecorder>,
    /// Latest progress frontier per worker.
    frontiers: Vec<TimestampMs>,
    /// The least of `frontiers` last passed on.
    sent_frontier: TimestampMs,
    /// Version stamped on result rows (the `ReplacingMergeTree` version).
    version: u64,
}

impl HotPath {
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

    /// Takes one output of the dataflow: hot state is buffered for the next
    /// hot flush; what ClickHouse gets is returned as rows (or a new
    /// frontier).
    async fn accept(&mut self, output: WorkerOutput) -> Option<ToClickHouse> {
        let version = self.version;
        let rows = match output {
            WorkerOutput::Trades(trades) => {
                let rows = trades.iter().map(TradeRow::from).collect();
                for t in trades {
                    self.hot(HotUpdate::Trade(t));
                }
                Rows::Trades(rows)
            }
            WorkerOutput::Quotes(quotes) => {
                let rows = quotes.iter().map(QuoteRow::from).collect();
                for q in quotes {
                    self.hot(HotUpdate::Quote(q));
                }
                Rows::Quotes(rows)
            }
            WorkerOutput::Posts(posts) => Rows::Posts(
                posts
                    .iter()
                    .map(|(p, score)| PostRow::from_post(p, *score))
                    .collect(),
            ),
            WorkerOutput::Bars(bars) => {
                let rows = bars
                    .iter()
                    .filter(|b| b.finality == Finality::Final)
                    .map(|b| BarRow::from_bar(b, version))
                    .collect();
                for b in bars {
                    self.hot(HotUpdate::Bar(b.clone()));
                    self.derived(Derived::Bar(b)).await;
                }
                Rows::Bars(rows)
            }
            WorkerOutput::Sentiment(windows) => {
                let rows = windows
                    .iter()
                    .filter(|w| w.finality == Finality::Final)
                    .map(|w| SentimentRow::from_window(w, version))
                    .collect();
                for w in windows {
                    self.hot(HotUpdate::Sentiment(w.clone()));
                    self.derived(Derived::Sentiment(w)).await;
                }
                Rows::Sentiment(rows)
            }
            WorkerOutput::Trending(lists) => {
                let rows = lists
                    .iter()
                    .filter(|t| t.finality == Finality::Final)
                    .flat_map(|t| TrendingRow::from_trending(t, version))
                    .collect();
                for t in lists {
                    self.hot(HotUpdate::Trending(t.clone()));
                    self.derived(Derived::Trending(t)).await;
                }
                Rows::Trending(rows)
            }
            WorkerOutput::Alerts(alerts) => {
                let rows = alerts
                    .iter()
                    .map(|a| AlertRow::from_alert(a, version))
                    .collect();
                for a in alerts {
                    self.hot(HotUpdate::Alert(a.clone()));
                    self.derived(Derived::Alert(a)).await;
                }
                Rows::Alerts(rows)
            }
            WorkerOutput::Late(late) => {
                let now = crate::progress::wall_clock_ms();
                metrics::counter!("insite_pipeline_late_events_total").increment(late.len() as u64);
                Rows::Late(
                    late.iter()
                        .map(|e| LateEventRow::from_late(e, now))
                        .collect(),
                )
            }
            WorkerOutput::Progress { worker, frontier } => {
                if let Some(slot) = self.frontiers.get_mut(worker) {
                    *slot = (*slot).max(frontier);
                }
                let least = self
                    .frontiers
                    .iter()
                    .copied()
                    .min()
                    .unwrap_or(TimestampMs::MIN);
                if least > self.sent_frontier {
                    self.sent_frontier = least;
                    return Some(ToClickHouse::Frontier(least));
                }
                return None;
            }
        };
        Some(ToClickHouse::Rows(rows))
    }

    /// Flushes Redis and NATS (best effort: they hold nothing that cannot
    /// be rebuilt, and a failure is retried at the next flush).
    async fn flush_hot(&mut self) {
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
}

/// The output side of a job: see the module docs.
pub struct OutputTask {
    /// The ClickHouse side.
    clickhouse: ClickHouseTask,
    /// The hot side.
    hot: HotPath,
    /// How often to flush Redis and NATS (the provisional cadence).
    hot_interval: Duration,
    /// How often the ClickHouse task checks for an aged batch.
    check_every: Duration,
}

impl std::fmt::Debug for OutputTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputTask")
            .field("frontiers", &self.hot.frontiers)
            .field("hot_interval", &self.hot_interval)
            .finish_non_exhaustive()
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
            clickhouse: ClickHouseTask {
                tables: Tables::new(clickhouse, writer),
                progress: None,
                floor: TimestampMs::MIN,
                frontier: TimestampMs::MIN,
            },
            hot: HotPath {
                redis,
                nats,
                trade_times: Vec::new(),
                latency: None,
                frontiers: vec![TimestampMs::MIN; workers.max(1)],
                sent_frontier: TimestampMs::MIN,
                version,
            },
            hot_interval,
            check_every: Duration::from_millis((writer.max_age_ms / 4).clamp(5, 50)),
        }
    }

    /// Records every new durable frontier in `progress` before reporting
    /// it, and never reports one below `floor` (the frontier an earlier run
    /// recorded: its windows are complete in ClickHouse).
    pub fn with_progress(mut self, progress: ProgressStore, floor: TimestampMs) -> Self {
        self.clickhouse.progress = Some(progress);
        self.clickhouse.floor = floor;
        self
    }

    /// Also records the end-to-end latency (event time to Redis write) of
    /// every trade into `latency`.
    pub fn with_latency(mut self, latency: LatencyRecorder) -> Self {
        self.hot.latency = Some(latency);
        self
    }

    /// Runs until `input` closes: hot flushes every `hot_interval`, rows and
    /// frontiers to the ClickHouse task, each new durable frontier to
    /// `durable`. Ends once the ClickHouse task has written everything.
    pub async fn run(
        self,
        mut input: mpsc::Receiver<WorkerOutput>,
        durable: watch::Sender<TimestampMs>,
    ) -> Result<(), OutputError> {
        let Self {
            clickhouse,
            mut hot,
            hot_interval,
            check_every,
        } = self;
        let (to_clickhouse, clickhouse_rx) = mpsc::channel(CLICKHOUSE_CHANNEL);
        let mut writer = tokio::spawn(clickhouse.run(clickhouse_rx, durable, check_every));

        let mut hot_tick = tokio::time::interval(hot_interval);
        hot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_hot = Instant::now();
        let mut failed = None;
        loop {
            tokio::select! {
                next = input.recv() => match next {
                    Some(output) => {
                        if let Some(rows) = hot.accept(output).await {
                            // A full channel waits: back-pressure from ClickHouse.
                            tokio::select! {
                                sent = to_clickhouse.send(rows) => {
                                    if sent.is_err() {
                                        break;
                                    }
                                }
                                ended = &mut writer => {
                                    failed = Some(ended);
                                    break;
                                }
                            }
                        }
                    }
                    None => break,
                },
                _ = hot_tick.tick() => {}
                ended = &mut writer => {
                    failed = Some(ended);
                    break;
                }
            }
            // Hot state goes out on time, however busy the input is.
            if last_hot.elapsed() >= hot_interval {
                hot.flush_hot().await;
                last_hot = Instant::now();
            }
        }
        hot.flush_hot().await;
        drop(to_clickhouse);
        let ended = match failed {
            Some(ended) => ended,
            None => writer.await,
        };
        ended.map_err(|_| OutputError::Crashed)?
    }
}
