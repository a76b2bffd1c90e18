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
//! - the **output task** ([`OutputTask`], this file) takes every output,
//!   hands it to the hot side (`hot.rs`: Redis, flushed every
//!   `hot_interval` whatever the input rate, and a bounded queue to the
//!   DERIVED task, never waited on) and passes rows for ClickHouse
//!   on to the durable side, followed by the least frontier over all
//!   workers whenever it moves;
//! - the **ClickHouse task** (`durable.rs`) buffers rows per table, flushes
//!   every table at once on size or age, and after a confirmed flush
//!   records and reports the durable frontier.
//!
//! When ClickHouse is down, back-pressure reaches the output task, and
//! behind it the workers and the consumers: never unbounded memory. Redis
//! and NATS carry only what can be rebuilt: a Redis failure is logged,
//! counted and retried at the next flush; a DERIVED result that fails or
//! finds the queue full is dropped and counted. Neither holds up
//! acknowledgement.

mod durable;
mod hot;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use insite_schemas::config::Connections;
use insite_schemas::{
    Alert, Bar, LateEvent, Post, Quote, SentimentWindow, TimestampMs, Trade, Trending,
};
use insite_sinks::clickhouse::{self as ch, WriteError, WriterConfig};
use insite_sinks::nats::DerivedPublisher;
use insite_sinks::redis::{RedisSink, RedisSinkError};
use tokio::sync::{mpsc, watch};

pub use hot::LatencyRecorder;

use crate::config::PipelineConfig;
use crate::progress::Checkpoints;
use crate::resume::{ProgressStore, Resume, ResumeError};
use crate::source::InputSource;
use durable::{ClickHouseTask, Intake};
use hot::HotPath;

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
    /// The database the rows go to could not be made ready
    /// ([`OutputTask::writing_after`]).
    #[error(transparent)]
    Migrate(#[from] ch::MigrateError),
}

/// What the ClickHouse task waits for before its first insert
/// ([`OutputTask::writing_after`]).
pub type WritesReady =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ch::MigrateError>> + Send>>;

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
    /// Everything of `source`'s dataflow for watermarks below `frontier`
    /// from `worker` was sent.
    Progress {
        /// The input stream whose dataflow it is.
        source: InputSource,
        /// The worker's index.
        worker: usize,
        /// Its output frontier (event-time watermark, ms).
        frontier: TimestampMs,
    },
}

/// The output side of a job: see the module docs.
pub struct OutputTask {
    /// Rows and frontiers for the ClickHouse task.
    intake: Intake,
    /// The ClickHouse side.
    clickhouse: ClickHouseTask,
    /// The hot side.
    hot: HotPath,
    /// How often to flush Redis and NATS (the provisional cadence).
    hot_interval: Duration,
    /// How often the ClickHouse task checks for an aged batch.
    check_every: Duration,
    /// What passes from the workers to both sides (`None`: everything).
    filter: Option<OutputFilter>,
    /// What the first ClickHouse insert waits for (`None`: nothing).
    ready: Option<WritesReady>,
}

/// A filter between the workers and both sides of the output: given one
/// output, it pushes what passes (possibly outputs held back earlier).
/// Called once more with `None` when the workers are done.
pub type OutputFilter = Box<dyn FnMut(Option<WorkerOutput>, &mut Vec<WorkerOutput>) + Send>;

impl std::fmt::Debug for OutputTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputTask")
            .field("frontiers", &self.intake.frontiers())
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
        Self {
            intake: Intake::new(workers),
            clickhouse: ClickHouseTask::new(clickhouse, writer),
            hot: HotPath::new(redis, nats),
            hot_interval,
            check_every: Duration::from_millis((writer.max_age_ms / 4).clamp(5, 50)),
            filter: None,
            ready: None,
        }
    }

    /// Passes every output of the workers through `filter` first (a
    /// replay's edges, `crate::replay`).
    pub fn with_filter(mut self, filter: OutputFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// The output task of a job with `config`'s settings: ClickHouse on
    /// `services`, and, if `hot`, Redis and DERIVED (on `js`) too.
    pub async fn connect(
        services: &Connections,
        config: &PipelineConfig,
        js: &jetstream::Context,
        hot: bool,
    ) -> Result<Self, RedisSinkError> {
        let clickhouse = ch::connect_for_writes(&services.clickhouse);
        let (redis, nats) = if hot {
            let redis = RedisSink::connect(&services.redis, config.redis_sink.clone()).await?;
            let nats = DerivedPublisher::new(
                js.clone(),
                services.nats.streams.clone(),
                config.derived_max_in_flight,
            );
            (Some(redis), Some(nats))
        } else {
            (None, None)
        };
        Ok(Self::with_settings(&clickhouse, config, redis, nats))
    }

    /// The output task of a job with `config`'s settings that writes
    /// ClickHouse through `clickhouse` and nothing else (a backfill).
    pub fn durable_only(clickhouse: &clickhouse::Client, config: &PipelineConfig) -> Self {
        Self::with_settings(clickhouse, config, None, None)
    }

    /// [`OutputTask::new`] with `config`'s writer, worker count and hot
    /// cadence.
    fn with_settings(
        clickhouse: &clickhouse::Client,
        config: &PipelineConfig,
        redis: Option<RedisSink>,
        nats: Option<DerivedPublisher>,
    ) -> Self {
        Self::new(
            clickhouse,
            &config.clickhouse_writer,
            redis,
            nats,
            config.workers.max(1),
            Duration::from_millis(config.hot_flush_ms.max(1)),
        )
    }

    /// Records every new durable frontier in `progress` before reporting
    /// it, never reports one below the frontiers of `resume` (an earlier
    /// run's: their windows are complete in ClickHouse), and, on process 0,
    /// records the pipeline's checkpoints as `checkpoints` last reported
    /// them.
    pub fn with_progress(
        mut self,
        progress: ProgressStore,
        resume: Resume,
        checkpoints: Option<watch::Receiver<Checkpoints>>,
    ) -> Self {
        self.clickhouse.record_in(progress, resume, checkpoints);
        self
    }

    /// Stamps result rows with `version` instead of the start time in ms
    /// (a backfill: see [`insite_sinks::clickhouse::rows::LIVE_VERSION_FLOOR`]).
    pub fn with_version(mut self, version: u64) -> Self {
        self.intake.set_version(version);
        self
    }

    /// Holds every ClickHouse insert until `ready` (a database being
    /// migrated) completes, taking rows meanwhile up to the writers'
    /// capacity, so that the operators run while it is prepared (a
    /// backfill into a new database). If `ready` fails, the task ends with
    /// its error and writes nothing.
    pub fn writing_after(mut self, ready: WritesReady) -> Self {
        self.ready = Some(ready);
        self
    }

    /// Also records the end-to-end latency (event time to Redis write) of
    /// every trade into `latency`.
    pub fn with_latency(mut self, latency: LatencyRecorder) -> Self {
        self.hot.record_latency(latency);
        self
    }

    /// Runs until `input` closes: hot flushes every `hot_interval`, rows and
    /// frontiers to the ClickHouse task, each new durable frontier to
    /// `durable`. Ends once the ClickHouse task has written everything.
    pub async fn run(
        self,
        mut input: mpsc::Receiver<WorkerOutput>,
        durable: watch::Sender<[TimestampMs; 2]>,
    ) -> Result<(), OutputError> {
        let Self {
            mut intake,
            clickhouse,
            mut hot,
            hot_interval,
            check_every,
            mut filter,
            ready,
        } = self;
        let (to_clickhouse, mut writer) = clickhouse.spawn(durable, check_every, ready);

        let mut hot_tick = tokio::time::interval(hot_interval);
        hot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_hot = Instant::now();
        let mut failed = None;
        let mut passed = Vec::new();
        let mut ended_input = false;
        while !ended_input {
            tokio::select! {
                next = input.recv() => {
                    ended_input = next.is_none();
                    match (&mut filter, next) {
                        (Some(filter), next) => filter(next, &mut passed),
                        (None, Some(output)) => passed.push(output),
                        (None, None) => {}
                    }
                    for output in passed.drain(..) {
                        let rows = intake.accept(&output);
                        hot.accept(output).await;
                        if let Some(rows) = rows {
                            // A full channel waits: back-pressure from ClickHouse.
                            tokio::select! {
                                sent = to_clickhouse.send(rows) => {
                                    if sent.is_err() {
                                        ended_input = true;
                                        break;
                                    }
                                }
                                ended = &mut writer => {
                                    failed = Some(ended);
                                    ended_input = true;
                                    break;
                                }
                            }
                        }
                    }
                },
                _ = hot_tick.tick() => {}
                ended = &mut writer => {
                    failed = Some(ended);
                    break;
                }
            }
            if failed.is_some() {
                break;
            }
            // Hot state goes out on time, however busy the input is.
            if last_hot.elapsed() >= hot_interval {
                hot.flush().await;
                last_hot = Instant::now();
            }
        }
        hot.finish().await;
        drop(to_clickhouse);
        let ended = match failed {
            Some(ended) => ended,
            None => writer.await,
        };
        ended.map_err(|_| OutputError::Crashed)?
    }
}
