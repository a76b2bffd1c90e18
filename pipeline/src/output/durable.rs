//! The durable side of the output: ClickHouse writes, and the durable
//! frontier they make true.
//!
//! [`Intake`] runs inside the output task: it turns every output of the
//! dataflow into rows for its table, and the workers' progress into the
//! least frontier over all of them, passed on whenever it moves. The
//! [`ClickHouseTask`], a task of its own so that slow inserts never hold up
//! the hot path, buffers the rows per table and flushes every table at once
//! on size or age; after a confirmed flush the last frontier it had received
//! before the flush is *durable*: it records it ([`crate::resume`]) and
//! reports it, and messages whose deadline it passes may be acknowledged
//! ([`crate::progress::AckTracker`]).
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
use insite_sinks::clickhouse::{TableWriter, WriteError, WriterConfig};
use insite_sinks::retry::Backoff;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{OutputError, WorkerOutput};
use crate::resume::ProgressStore;

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

            /// Flushes every table concurrently; returns the rows written.
            async fn flush_each(&mut self) -> Result<usize, WriteError> {
                let ($($field,)*) = futures::try_join!($(self.$field.flush()),*)?;
                Ok(0 $(+ $field.rows)*)
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

impl Tables {
    /// Flushes every table, all at once; rows are durable when this returns
    /// `Ok`.
    async fn flush(&mut self) -> Result<usize, WriteError> {
        let started = Instant::now();
        let rows = self.flush_each().await?;
        metrics::histogram!("insite_pipeline_clickhouse_flush_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("insite_pipeline_clickhouse_flush_rows").record(rows as f64);
        Ok(rows)
    }
}

/// What the ClickHouse task receives, in order.
#[derive(Debug)]
pub(super) enum ToClickHouse {
    /// Rows to write.
    Rows(Rows),
    /// Every row for times before this was sent before it.
    Frontier(TimestampMs),
}

/// The output task's side of the durable path: rows for ClickHouse, and the
/// least frontier over the workers.
#[derive(Debug)]
pub(super) struct Intake {
    /// Version stamped on result rows (the `ReplacingMergeTree` version).
    version: u64,
    /// Latest progress frontier per worker.
    frontiers: Vec<TimestampMs>,
    /// The least of `frontiers` last passed on.
    sent_frontier: TimestampMs,
}

impl Intake {
    /// The intake of `workers` workers (indices 0 to `workers - 1`).
    pub(super) fn new(workers: usize) -> Self {
        // Rows written by a later run replace those of an earlier one; the
        // values are the same for the same input, so which wins is moot, but
        // a growing version keeps the newest visible before merges.
        let version = millis(now_ms()).max(1);
        Self {
            version,
            frontiers: vec![TimestampMs::MIN; workers.max(1)],
            sent_frontier: TimestampMs::MIN,
        }
    }

    /// The latest frontier of every worker.
    pub(super) fn frontiers(&self) -> &[TimestampMs] {
        &self.frontiers
    }

    /// What ClickHouse gets of one output of the dataflow: its rows (final
    /// results only), or the least frontier over the workers if it moved.
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
            WorkerOutput::Progress { worker, frontier } => {
                return self.advance(*worker, *frontier).map(ToClickHouse::Frontier);
            }
        };
        Some(ToClickHouse::Rows(rows))
    }

    /// Takes `worker`'s new frontier; returns the least over the workers if
    /// it moved.
    fn advance(&mut self, worker: usize, frontier: TimestampMs) -> Option<TimestampMs> {
        if let Some(slot) = self.frontiers.get_mut(worker) {
            *slot = (*slot).max(frontier);
        }
        let least = self
            .frontiers
            .iter()
            .copied()
            .min()
            .unwrap_or(TimestampMs::MIN);
        (least > self.sent_frontier).then(|| {
            self.sent_frontier = least;
            least
        })
    }
}

/// How often the durable frontier is recorded (and, in a cluster, the
/// least frontier over the processes looked up).
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Row batches buffered between the output task and the ClickHouse task.
const CLICKHOUSE_CHANNEL: usize = 64;

/// Failed attempts to record the durable frontier before the task gives up.
const PROGRESS_ATTEMPTS: u32 = 50;

/// The ClickHouse task: buffers rows, flushes, records and reports the
/// durable frontier.
pub(super) struct ClickHouseTask {
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
    /// Writers for every table on `client`, recording no frontier.
    pub(super) fn new(client: &clickhouse::Client, writer: &WriterConfig) -> Self {
        Self {
            tables: Tables::new(client, writer),
            progress: None,
            floor: TimestampMs::MIN,
            frontier: TimestampMs::MIN,
        }
    }

    /// Records every durable frontier in `progress`, and reports none below
    /// `floor`.
    pub(super) fn record_in(&mut self, progress: ProgressStore, floor: TimestampMs) {
        self.progress = Some(progress);
        self.floor = floor;
    }

    /// Starts the task: it takes rows and frontiers from the returned
    /// sender, checks for aged batches every `check_every` and sends each
    /// new durable frontier to `durable`, until the sender is dropped.
    pub(super) fn spawn(
        self,
        durable: watch::Sender<TimestampMs>,
        check_every: Duration,
    ) -> (
        mpsc::Sender<ToClickHouse>,
        JoinHandle<Result<(), OutputError>>,
    ) {
        let (tx, rx) = mpsc::channel(CLICKHOUSE_CHANNEL);
        (tx, tokio::spawn(self.run(rx, durable, check_every)))
    }

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
            let mut backoff = Backoff::standard();
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
                        if attempts >= PROGRESS_ATTEMPTS {
                            return Err(e.into());
                        }
                        tracing::warn!(error = %e, "recording the durable frontier failed; retrying");
                        backoff.wait().await;
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
            let empty = self.tables.pending() == 0;
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
