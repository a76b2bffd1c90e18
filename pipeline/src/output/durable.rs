//! The durable side of the output: ClickHouse writes, and the durable
//! frontier they make true.
//!
//! [`Intake`] runs inside the output task: it turns every output of the
//! dataflow into rows for its table, and the workers' progress into the
//! least frontier over all of them, passed on whenever it moves. The
//! [`ClickHouseTask`], a task of its own so that slow inserts never hold up
//! the hot path, buffers the rows per table and flushes every table at once
//! on size or age; after a confirmed flush the last frontier it had received
//! before the flush (per stream) is *durable*: it records it ([`crate::resume`]) and
//! reports it, and the checkpoint task moves each stream's checkpoint past
//! the messages whose deadline it passes ([`crate::progress::CheckpointTracker`]).
//!
//! Every insert makes a part on the server, so this task inserts little and
//! often only where it must: each table at most once per flush (all tables
//! at once, every `clickhouse_writer.max_age_ms`, 1 s by default, or sooner
//! when one holds `max_rows`), and the frontiers and checkpoints of both
//! streams in one `INSERT` at most once per flush age as well.
//!
//! When ClickHouse is down, the writers keep their batches and retry; the
//! ClickHouse task stops reading while any writer is full, its bounded
//! channel fills, and the output task waits: back-pressure, never unbounded
//! memory.

use std::time::{Duration, Instant};

use insite_schemas::time::now_ms;
use insite_schemas::{Finality, TimestampMs};
use insite_sinks::clickhouse::rows::{
    millis, AlertRow, BarRow, LateEventRow, PostRow, QuoteRow, SentimentRow, TradeRow, TrendingRow,
};
use insite_sinks::clickhouse::{Batch, TableWriter, WriteError, WriterConfig};
use insite_sinks::retry::Backoff;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{OutputError, WorkerOutput, WritesReady};
use crate::progress::Checkpoints;
use crate::resume::{ProgressStore, Resume, ResumeError, StreamCheckpoint};
use crate::source::InputSource;

/// Defines [`Tables`] (one writer per table) and [`Rows`] (a batch for one
/// of them) from one list of `field: Variant(RowType)`; each writer writes
/// its row type's own table ([`insite_sinks::clickhouse::rows::Table`]).
macro_rules! tables {
    ($($field:ident: $variant:ident($row:ty)),* $(,)?) => {
        /// The ClickHouse writers, one per table.
        struct Tables {
            $($field: TableWriter<$row>,)*
        }

        /// Rows for one table, from the output task to the ClickHouse task.
        #[derive(Debug)]
        pub(super) enum Rows {
            $($variant(Vec<$row>),)*
        }

        /// One flush: every table's rows taken at one moment.
        struct Batches {
            $($field: Batch<$row>,)*
        }

        impl Batches {
            /// Writes every table's batch concurrently; returns the rows
            /// written.
            async fn write_each(self) -> Result<usize, WriteError> {
                let ($($field,)*) = futures::try_join!($(self.$field.write()),*)?;
                Ok(0 $(+ $field.rows)*)
            }
        }

        impl Tables {
            fn new(client: &clickhouse::Client, config: &WriterConfig) -> Self {
                Self {
                    $($field: TableWriter::for_table(client.clone(), config.clone()),)*
                }
            }

            /// Whether any writer holds its capacity.
            fn any_full(&self) -> bool {
                false $(|| self.$field.is_full())*
            }

            /// Rows buffered over all tables.
            fn pending(&self) -> usize {
                0 $(+ self.$field.pending())*
            }

            /// Whether any writer reached its size or age limit.
            fn any_due(&self, now: Instant) -> bool {
                false $(|| self.$field.should_flush(now))*
            }

            /// Takes every table's buffered rows out as one set of
            /// batches, to write while the writers take new rows.
            fn take(&mut self) -> Batches {
                Batches {
                    $($field: self.$field.take_batch(),)*
                }
            }

            fn push(&mut self, rows: Rows) {
                match rows {
                    $(Rows::$variant(rows) => rows.into_iter().for_each(|r| self.$field.push(r)),)*
                }
            }
        }
    };
}

tables! {
    trades: Trades(TradeRow),
    quotes: Quotes(QuoteRow),
    posts: Posts(PostRow),
    bars: Bars(BarRow),
    sentiment: Sentiment(SentimentRow),
    trending: Trending(TrendingRow),
    alerts: Alerts(AlertRow),
    late: Late(LateEventRow),
}

impl Batches {
    /// Writes every table's batch, all at once; the rows are durable when
    /// this returns `Ok`.
    async fn write(self) -> Result<usize, WriteError> {
        let started = Instant::now();
        let rows = self.write_each().await?;
        metrics::histogram!("insite_pipeline_clickhouse_flush_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("insite_pipeline_clickhouse_flush_rows").record(rows as f64);
        Ok(rows)
    }
}

/// What the ClickHouse task receives, in order.
#[derive(Debug)]
pub(super) enum ToClickHouse {
    /// Rows for one table.
    Rows(Rows),
    /// Everything of this stream's dataflow stamped before this frontier
    /// has been sent.
    Frontier(InputSource, TimestampMs),
}

/// The output task's side of the durable path: rows for ClickHouse, and
/// per stream the least frontier over the workers.
#[derive(Debug)]
pub(super) struct Intake {
    /// Version stamped on result rows (the `ReplacingMergeTree` version).
    version: u64,
    /// Latest progress frontier per stream per worker.
    frontiers: [Vec<TimestampMs>; 2],
    /// The least of `frontiers` last passed on, per stream.
    sent_frontier: [TimestampMs; 2],
}

impl Intake {
    /// An intake for `workers` workers.
    pub(super) fn new(workers: usize) -> Self {
        // Rows written by a later run replace those of an earlier one; the
        // values are the same for the same input, so which wins is moot, but
        // a growing version keeps the newest visible before merges.
        let version = millis(now_ms()).max(1);
        let workers = workers.max(1);
        Self {
            version,
            frontiers: [
                vec![TimestampMs::MIN; workers],
                vec![TimestampMs::MIN; workers],
            ],
            sent_frontier: [TimestampMs::MIN; 2],
        }
    }

    /// Stamps result rows with `version` from now on (a backfill's, below
    /// every live version).
    pub(super) fn set_version(&mut self, version: u64) {
        self.version = version.max(1);
    }

    /// The workers' frontiers, per stream.
    pub(super) fn frontiers(&self) -> &[Vec<TimestampMs>; 2] {
        &self.frontiers
    }

    /// What `output` means for ClickHouse: rows for a table, a new least
    /// frontier, or nothing.
    pub(super) fn accept(&mut self, output: &WorkerOutput) -> Option<ToClickHouse> {
        let version = self.version;
        let rows = match output {
            WorkerOutput::Trades(trades) => {
                Rows::Trades(trades.iter().map(TradeRow::from).collect())
            }
            WorkerOutput::Quotes(quotes) => {
                Rows::Quotes(quotes.iter().map(QuoteRow::from).collect())
            }
            WorkerOutput::Posts(posts) => Rows::Posts(
                posts
                    .iter()
                    .map(|(p, score)| PostRow::from_post(p, *score))
                    .collect(),
            ),
            WorkerOutput::Bars(bars) => Rows::Bars(
                bars.iter()
                    .filter(|b| b.finality == Finality::Final)
                    .map(|b| BarRow::from_bar(b, version))
                    .collect(),
            ),
            WorkerOutput::Sentiment(windows) => Rows::Sentiment(
                windows
                    .iter()
                    .filter(|w| w.finality == Finality::Final)
                    .map(|w| SentimentRow::from_window(w, version))
                    .collect(),
            ),
            WorkerOutput::Trending(lists) => Rows::Trending(
                lists
                    .iter()
                    .filter(|t| t.finality == Finality::Final)
                    .flat_map(|t| TrendingRow::from_trending(t, version))
                    .collect(),
            ),
            WorkerOutput::Alerts(alerts) => Rows::Alerts(
                alerts
                    .iter()
                    .map(|a| AlertRow::from_alert(a, version))
                    .collect(),
            ),
            WorkerOutput::Late(late) => {
                let now = now_ms();
                metrics::counter!("insite_pipeline_late_events_total").increment(late.len() as u64);
                Rows::Late(
                    late.iter()
                        .map(|e| LateEventRow::from_late(e, now))
                        .collect(),
                )
            }
            WorkerOutput::Progress {
                source,
                worker,
                frontier,
            } => {
                return self
                    .advance(*source, *worker, *frontier)
                    .map(|least| ToClickHouse::Frontier(*source, least));
            }
        };
        Some(ToClickHouse::Rows(rows))
    }

    /// Notes a worker's frontier of `source`; the new least over the
    /// workers, if it moved.
    fn advance(
        &mut self,
        source: InputSource,
        worker: usize,
        frontier: TimestampMs,
    ) -> Option<TimestampMs> {
        let index = source.index();
        if let Some(slot) = self.frontiers[index].get_mut(worker) {
            *slot = (*slot).max(frontier);
        }
        let least = self.frontiers[index]
            .iter()
            .copied()
            .min()
            .unwrap_or(TimestampMs::MIN);
        (least > self.sent_frontier[index]).then(|| {
            self.sent_frontier[index] = least;
            least
        })
    }
}

/// The least and the most time between two records of the durable
/// frontiers: they are recorded once per flush age (`max_age_ms`), within
/// these bounds.
const PROGRESS_EVERY: (Duration, Duration) = (Duration::from_millis(20), Duration::from_secs(5));

/// How long a stopping task waits for the checkpoints its last frontier
/// allows (the checkpoint task answers within milliseconds; they may also
/// not move at all).
const FINAL_CHECKPOINTS_WAIT: Duration = Duration::from_millis(500);

/// Row batches buffered between the output task and the ClickHouse task.
const CLICKHOUSE_CHANNEL: usize = 64;

/// Where the durable frontiers are recorded.
struct Recording {
    /// The store.
    store: ProgressStore,
    /// The pipeline's checkpoints, on process 0 (which records the
    /// pipeline's rows).
    checkpoints: Option<watch::Receiver<Checkpoints>>,
}

/// The flush in flight, and the frontiers it makes durable once
/// confirmed.
struct InFlight {
    write: std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, WriteError>> + Send>>,
    frontiers: [TimestampMs; 2],
}

/// The ClickHouse task: buffers rows, flushes, records and reports the
/// durable frontiers.
pub(super) struct ClickHouseTask {
    /// One writer per table.
    tables: Tables,
    /// Where frontiers are recorded (`None`: not recorded, e.g. a replay).
    recording: Option<Recording>,
    /// Per stream, the frontier an earlier run recorded: never report less.
    floor: [TimestampMs; 2],
    /// Per stream, the latest frontier received from the output task.
    frontier: [TimestampMs; 2],
    /// How often the durable frontiers are recorded (and, in a cluster, the
    /// least frontiers over the processes looked up): once per flush age.
    progress_every: Duration,
}

impl ClickHouseTask {
    /// A task writing through `client`.
    pub(super) fn new(client: &clickhouse::Client, writer: &WriterConfig) -> Self {
        Self {
            tables: Tables::new(client, writer),
            recording: None,
            floor: [TimestampMs::MIN; 2],
            frontier: [TimestampMs::MIN; 2],
            progress_every: Duration::from_millis(writer.max_age_ms)
                .clamp(PROGRESS_EVERY.0, PROGRESS_EVERY.1),
        }
    }

    /// Records frontiers in `store`, never below `resume`'s; records the
    /// pipeline's checkpoints from `checkpoints` (process 0).
    pub(super) fn record_in(
        &mut self,
        store: ProgressStore,
        resume: Resume,
        checkpoints: Option<watch::Receiver<Checkpoints>>,
    ) {
        self.floor = [resume.market.floor(), resume.social.floor()];
        self.recording = Some(Recording { store, checkpoints });
    }

    /// Starts the task: it takes rows and frontiers from the returned
    /// sender, checks for aged batches every `check_every` and sends each
    /// new durable frontier to `durable`, until the sender is dropped. No
    /// insert starts before `ready` (if any) completes.
    pub(super) fn spawn(
        self,
        durable: watch::Sender<[TimestampMs; 2]>,
        check_every: Duration,
        ready: Option<WritesReady>,
    ) -> (
        mpsc::Sender<ToClickHouse>,
        JoinHandle<Result<(), OutputError>>,
    ) {
        let (tx, rx) = mpsc::channel(CLICKHOUSE_CHANNEL);
        (tx, tokio::spawn(self.run(rx, durable, check_every, ready)))
    }

    /// Records `frontiers` (this process's) and, on process 0, the
    /// pipeline's rows, retrying while ClickHouse is unavailable (an outage
    /// is back-pressure: the task takes no new rows meanwhile), then
    /// reports the durable frontiers (in a cluster, the least over the
    /// processes).
    async fn make_durable(
        &self,
        frontiers: [TimestampMs; 2],
        durable: &watch::Sender<[TimestampMs; 2]>,
    ) -> Result<(), OutputError> {
        let mut global = frontiers.map(Some);
        if let Some(recording) = &self.recording {
            // The one ClickHouse policy: retryable errors (an outage) are
            // retried forever, which is back-pressure; anything else stops
            // the task with the error.
            let recorded = insite_sinks::retry::retry_forever(
                "progress",
                Backoff::standard(),
                ResumeError::is_retryable,
                || Self::record(recording, frontiers),
            )
            .await?;
            global = recorded.value;
        }
        durable.send_if_modified(|current| {
            let mut advanced = false;
            for (slot, global) in current.iter_mut().zip(global) {
                if let Some(global) = global {
                    if global > *slot {
                        *slot = global;
                        advanced = true;
                    }
                }
            }
            advanced
        });
        Ok(())
    }

    /// One attempt at recording: the least frontier over the processes,
    /// then this process's rows and (process 0) the pipeline's rows, of
    /// both streams, in one `INSERT` (one part on the server). The order
    /// within it does not matter: the least frontier takes this process's
    /// own frontiers as they are, not as recorded.
    async fn record(
        recording: &Recording,
        frontiers: [TimestampMs; 2],
    ) -> Result<[Option<TimestampMs>; 2], ResumeError> {
        let store = &recording.store;
        let mut least = [None, None];
        let mut rows = Vec::with_capacity(4);
        for source in [InputSource::Market, InputSource::Social] {
            let own = frontiers[source.index()];
            rows.push(store.process_row(source, own));
            least[source.index()] = store.global(source, own).await?;
        }
        if let Some(checkpoints) = &recording.checkpoints {
            let checkpoints = *checkpoints.borrow();
            for source in [InputSource::Market, InputSource::Social] {
                let Some(durable_ms) = least[source.index()] else {
                    continue;
                };
                let (resume_seq, max_ts) = checkpoints[source.index()];
                rows.push(store.pipeline_row(
                    source,
                    StreamCheckpoint {
                        durable_ms: Some(durable_ms),
                        resume_seq,
                        max_ts,
                    },
                ));
            }
        }
        store.write_rows(&rows).await?;
        Ok(least)
    }

    /// Runs until `input` closes, then flushes what is left.
    ///
    /// One flush is in flight at a time, and the task keeps taking rows
    /// meanwhile (up to the writers' capacity), so the dataflow never waits
    /// for an insert it need not: the next batch fills while the last one
    /// is written. Flushes complete in the order they started, and a
    /// flush's frontiers (those received before it took its rows) become
    /// durable only once it is confirmed.
    ///
    /// Before `ready` completes, rows are taken (up to the writers'
    /// capacity) and nothing is written or reported durable; if it fails,
    /// the task ends with its error.
    async fn run(
        mut self,
        mut input: mpsc::Receiver<ToClickHouse>,
        durable: watch::Sender<[TimestampMs; 2]>,
        check_every: Duration,
        mut ready: Option<WritesReady>,
    ) -> Result<(), OutputError> {
        let mut tick = tokio::time::interval(check_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_recorded = [TimestampMs::MIN; 2];
        let mut last_checkpoints = None;
        let progress_every = self.progress_every;
        let mut last_progress = Instant::now()
            .checked_sub(progress_every)
            .unwrap_or_else(Instant::now);
        let mut open = true;
        let mut in_flight: Option<InFlight> = None;
        // The latest frontiers known durable and not yet recorded.
        let mut confirmed: Option<[TimestampMs; 2]> = None;
        loop {
            let reading = open && !self.tables.any_full();
            let flushing = futures::future::OptionFuture::from(
                in_flight.as_mut().map(|flush| flush.write.as_mut()),
            );
            let preparing = futures::future::OptionFuture::from(ready.as_mut());
            tokio::select! {
                next = input.recv(), if reading => match next {
                    Some(ToClickHouse::Rows(rows)) => self.tables.push(rows),
                    Some(ToClickHouse::Frontier(source, frontier)) => {
                        let slot = &mut self.frontier[source.index()];
                        *slot = (*slot).max(frontier);
                    }
                    None => open = false,
                },
                Some(written) = flushing => {
                    written?;
                    confirmed = in_flight.take().map(|flush| flush.frontiers);
                }
                Some(prepared) = preparing => {
                    prepared?;
                    ready = None;
                }
                _ = tick.tick() => {}
            }
            // Nothing is written, nor reported durable, before the
            // database is ready.
            if in_flight.is_none() && ready.is_none() {
                // Everything received before this moment is in the writers.
                let frontiers = [
                    self.frontier[0].max(self.floor[0]),
                    self.frontier[1].max(self.floor[1]),
                ];
                if self.tables.pending() == 0 {
                    // Nothing buffered and nothing in flight: all of it is
                    // durable.
                    confirmed = Some(frontiers);
                } else if self.tables.any_due(Instant::now()) || self.tables.any_full() || !open {
                    in_flight = Some(InFlight {
                        write: Box::pin(self.tables.take().write()),
                        frontiers,
                    });
                }
            }
            let done =
                !open && ready.is_none() && in_flight.is_none() && self.tables.pending() == 0;
            // The frontiers move with the watermarks, every few
            // milliseconds: they are recorded at most once per flush age
            // (and at the end), and again while the pipeline's record lags
            // (a cluster's other processes, or checkpoints that moved).
            if let Some(frontiers) = confirmed {
                if last_progress.elapsed() >= progress_every || done {
                    let checkpoints = self
                        .recording
                        .as_ref()
                        .and_then(|r| r.checkpoints.as_ref())
                        .map(|c| *c.borrow());
                    let lagging = *durable.borrow() != frontiers;
                    if frontiers != last_recorded || checkpoints != last_checkpoints || lagging {
                        last_recorded = frontiers;
                        last_checkpoints = checkpoints;
                        self.make_durable(frontiers, &durable).await?;
                        last_progress = Instant::now();
                    }
                    confirmed = None;
                }
            }
            if done {
                break;
            }
        }
        // The checkpoints a frontier allows are worked out (by the
        // checkpoint task) only once that frontier is reported, so the last
        // record carries the checkpoints of the one before. Give the task a
        // moment to catch up with the last frontier and record them too, so
        // a restart after a clean stop reads nothing again it need not.
        let Some(checkpoints) = self.recording.as_ref().and_then(|r| r.checkpoints.clone()) else {
            return Ok(());
        };
        let caught_up = tokio::time::timeout(FINAL_CHECKPOINTS_WAIT, async {
            while Some(*checkpoints.borrow()) == last_checkpoints {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        if caught_up.is_ok() {
            self.make_durable(last_recorded, &durable).await?;
        }
        Ok(())
    }
}
