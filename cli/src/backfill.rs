//! `insite backfill`: history from files, through the pipeline's operators,
//! into ClickHouse, safely next to the live pipeline.
//!
//! The files are read with `insite-ingest`'s reader and batched exactly as
//! `insite ingest files` publishes them, so a backfill gives the tables a
//! fresh pipeline would give over the published files. The messages go
//! straight to `insite-pipeline`'s bounded dataflow
//! ([`insite_pipeline::backfill`]), which stages, checks and copies the
//! rows. Bad lines are listed with their line numbers and dead-lettered to
//! `insite.dlq.ingest`; the rest of the file still lands.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use insite_ingest::files::{FileReader, Rejected};
use insite_ingest::{BatchConfig, Batcher, Event, EventBatch, Publisher, PublisherConfig};
use insite_pipeline::backfill::{BackfillMode, BackfillSender};
use insite_schemas::config::StreamsConfig;
use insite_schemas::Inbound;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::InsiteConfig;

/// `insite backfill`
#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    files: crate::ingest::InputFiles,
    /// The vendor's minute-aggregates flat file (`ticker, volume, open,
    /// close, high, low, window_start, transactions`, nanoseconds; plain or
    /// gzip): written as final 1-minute bars and rolled up exactly into the
    /// longer bar intervals. Instead of `--trades`, which would make the
    /// same bars.
    #[arg(long, conflicts_with = "trades")]
    minute_aggs: Option<PathBuf>,
    /// Instead of files: this much synthetic history (e.g. 3h, 90m) from the
    /// seeded simulator of `insite ingest synthetic`, ending at the start of
    /// the current 5-minute window, so that a live feed starting now writes
    /// no window it holds (what the demo opens on).
    #[arg(long, value_parser = crate::ingest::parse_duration, conflicts_with_all = ["trades", "quotes", "posts"])]
    synthetic: Option<Duration>,
    /// Market events per second of the synthetic history.
    #[arg(long, default_value_t = 100.0)]
    synthetic_rate: f64,
    /// Posts per second of the synthetic history.
    #[arg(long, default_value_t = 5.0)]
    synthetic_posts_per_s: f64,
    /// Seed of the synthetic history.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Write into this ClickHouse database instead of the live one (created
    /// and migrated if missing).
    #[arg(long)]
    database: Option<String>,
    /// Most trades or quotes of one symbol per message, as `ingest files`
    /// batches them [default: 1024].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Event-time slice after which open batches are cut, ms, as `ingest
    /// files` cuts them [default: 1000].
    #[arg(long)]
    batch_ms: Option<i64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Most rejected lines listed in the summary (all are dead-lettered).
const REJECTS_LISTED: usize = 20;

/// What the file reader fed to the dataflow.
#[derive(Debug, Default)]
struct FeedReport {
    trades: u64,
    quotes: u64,
    posts: u64,
    messages: u64,
    /// Every rejected line, counted.
    rejected: u64,
    /// The first few, with their `file:line`.
    listed: Vec<(String, String)>,
    /// Stopped by a signal before the files ended.
    interrupted: bool,
}

impl FeedReport {
    fn events(&self) -> u64 {
        self.trades + self.quotes + self.posts
    }
}

/// Runs `insite backfill`.
pub fn run(config: &InsiteConfig, args: BackfillArgs) -> anyhow::Result<()> {
    let mut connections = config.connections();
    if let Some(database) = &args.database {
        connections.clickhouse.database = database.clone();
    }
    let mut pipeline = config.pipeline.clone();
    pipeline
        .operators
        .validate()
        .context("invalid [pipeline.operators] settings")?;
    // A bounded run is one pass over the input, with no reader waiting on
    // it: hand ClickHouse big batches, as it prefers.
    let writer = &mut pipeline.clickhouse_writer;
    writer.max_rows = writer.max_rows.max(250_000);
    writer.capacity_rows = writer.capacity_rows.max(4 * writer.max_rows);
    writer.max_age_ms = writer.max_age_ms.max(1_000);
    let defaults = BatchConfig::for_files();
    let batch = BatchConfig {
        max_events: args.batch_size.unwrap_or(defaults.max_events),
        slice_ms: args.batch_ms.unwrap_or(defaults.slice_ms),
        ..defaults
    };
    let (bars, agg_rejects) = match &args.minute_aggs {
        Some(path) => minute_bars(path, &pipeline.operators.bar_intervals)?,
        None => (Vec::new(), Vec::new()),
    };
    let files = match args.synthetic {
        Some(span) => History::synthetic(span, &args)?,
        None if args.files.is_empty() => {
            anyhow::ensure!(
                args.minute_aggs.is_some(),
                "backfill needs --trades, --quotes, --posts, --minute-aggs or --synthetic"
            );
            History::Nothing
        }
        None => History::Files(FileReader::open(
            args.files.trades.as_deref(),
            args.files.quotes.as_deref(),
            args.files.posts.as_deref(),
        )?),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let started = Instant::now();
        let streams = connections.nats.streams.clone();
        let js = insite_ingest::connect(&connections.nats).await?;
        insite_sinks::streams::ensure_streams(&js, &streams).await?;
        let shutdown = crate::signal::shutdown_on_signal();
        let (sender, input) = insite_pipeline::backfill::channels(&pipeline);
        let (rejects_tx, rejects_rx) = mpsc::unbounded_channel();
        let agg_listed: Vec<(String, String)> = agg_rejects
            .iter()
            .map(|r| (r.origin.clone(), r.reason.clone()))
            .collect();
        for reject in agg_rejects {
            let _ = rejects_tx.send(reject);
        }
        let bar = (!args.quiet).then(|| progress_bar(files.progress().1, args.synthetic.is_some()));
        let feeder = {
            let (stop, bar) = (shutdown.clone(), bar.clone());
            tokio::task::spawn_blocking(move || feed(files, batch, sender, rejects_tx, bar, stop))
        };
        let dead_letters = tokio::spawn(dead_letter_all(
            Publisher::new(js, streams, PublisherConfig::default(), "backfill"),
            rejects_rx,
        ));
        let result = insite_pipeline::backfill::backfill(&connections, &pipeline, input, bars, &shutdown)
                .await;
        let (mut fed, _open_input) = feeder.await.context("the file reader panicked")??;
        fed.rejected += agg_listed.len() as u64;
        fed.listed.splice(0..0, agg_listed.into_iter().take(REJECTS_LISTED));
        fed.listed.truncate(REJECTS_LISTED);
        let dead_lettered = dead_letters.await.context("the dead-letter task panicked")?;
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        print_rejects(&fed);
        if let Err(e) = dead_lettered {
            tracing::error!(error = %e, "could not dead-letter every rejected line");
        }
        let report = result?;
        let seconds = started.elapsed().as_secs_f64().max(1e-9);
        println!(
            "backfilled {} events ({} trades, {} quotes, {} posts; {} messages) into database {:?} in {seconds:.2} s ({:.0} events/s)",
            fed.events(),
            fed.trades,
            fed.quotes,
            fed.posts,
            fed.messages,
            connections.clickhouse.database,
            fed.events() as f64 / seconds,
        );
        println!(
            "  {}: {}",
            match report.mode {
                BackfillMode::Staged => "rows copied in (staged, no overlap with live windows)",
                BackfillMode::Direct => "rows now in the database (written directly: it held no results)",
            },
            report
                .rows
                .iter()
                .map(|(table, n)| format!("{table} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  late events: {}; rejected lines: {}; result version {}",
            report.rows_of("late_events"),
            fed.rejected,
            report.version
        );
        Ok(())
    })
}

fn progress_bar(total: u64, counts_events: bool) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let template = if counts_events {
        "{elapsed_precise} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta}) {msg}"
    } else {
        "{elapsed_precise} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}"
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Synthetic history ends where the current 5-minute window (the longest
/// default window) starts.
fn history_end_ms(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(300_000)
}

/// The minute bars of a vendor aggregates file, rolled up into
/// `intervals`, and its bad lines.
fn minute_bars(
    path: &std::path::Path,
    intervals: &[insite_schemas::Interval],
) -> anyhow::Result<(Vec<insite_schemas::Bar>, Vec<Rejected>)> {
    let (aggs, rejects) = insite_ingest::files::read_minute_aggs(path)?;
    for reject in &rejects {
        tracing::warn!(origin = %reject.origin, reason = %reject.reason, "rejected line");
    }
    let minutes = aggs
        .into_iter()
        .map(|a| insite_schemas::Bar {
            symbol: a.symbol,
            interval: insite_schemas::Interval::MINUTE,
            window_start: a.window_start,
            open: a.open,
            high: a.high,
            low: a.low,
            close: a.close,
            volume: a.volume,
            // The vendor's minute files carry no VWAP: the typical price
            // stands in (documented), unless the file has a vwap column.
            vwap: a.vwap.unwrap_or((a.high + a.low + a.close) / 3.0),
            trades: a.transactions,
            finality: insite_schemas::Finality::Final,
        })
        .collect();
    Ok((
        insite_pipeline::backfill::roll_up_minutes(minutes, intervals),
        rejects,
    ))
}

/// Where the history comes from.
enum History {
    /// No events (only aggregates).
    Nothing,
    /// Files, merged by event time.
    Files(FileReader),
    /// The seeded simulator, over a span of event time ending now.
    Synthetic {
        /// The simulator.
        simulator: Box<insite_ingest::synthetic::Simulator>,
        /// Events generated so far.
        generated: u64,
        /// Events it will generate (about).
        expected: u64,
    },
}

impl History {
    fn synthetic(span: Duration, args: &BackfillArgs) -> anyhow::Result<Self> {
        let span_ms = i64::try_from(span.as_millis()).context("--synthetic is too long")?;
        let config = insite_ingest::SyntheticConfig {
            seed: args.seed,
            rate: args.synthetic_rate,
            posts_per_s: args.synthetic_posts_per_s,
            max_speed: true,
            start_ms: history_end_ms(insite_schemas::time::now_ms()) - span_ms,
            duration: Some(span),
            ..insite_ingest::SyntheticConfig::default()
        };
        let expected =
            (span.as_secs_f64() * (args.synthetic_rate + args.synthetic_posts_per_s)) as u64;
        Ok(Self::Synthetic {
            simulator: Box::new(insite_ingest::synthetic::Simulator::new(config)?),
            generated: 0,
            expected: expected.max(1),
        })
    }

    /// The next event (bad lines of a file go to `rejects`).
    fn next_event(&mut self, rejects: &mut Vec<Rejected>) -> anyhow::Result<Option<Event>> {
        match self {
            Self::Nothing => Ok(None),
            Self::Files(files) => Ok(files.next_event(rejects)?),
            Self::Synthetic {
                simulator,
                generated,
                ..
            } => {
                *generated += 1;
                Ok(simulator.next())
            }
        }
    }

    /// Progress so far and its total (bytes of files, or events).
    fn progress(&self) -> (u64, u64) {
        match self {
            Self::Nothing => (0, 0),
            Self::Files(files) => files.progress(),
            Self::Synthetic {
                generated,
                expected,
                ..
            } => ((*generated).min(*expected), *expected),
        }
    }
}

/// Reads the history to its end (or until `stop`), batching like `ingest
/// files` and sending each batch to the dataflow.
/// Events read between two checks for a cancellation.
const CANCEL_CHECK_EVERY: u64 = 1024;

fn feed(
    mut files: History,
    batch: BatchConfig,
    mut sender: BackfillSender,
    rejects_tx: mpsc::UnboundedSender<Rejected>,
    bar: Option<indicatif::ProgressBar>,
    stop: CancellationToken,
) -> anyhow::Result<(FeedReport, Option<BackfillSender>)> {
    let mut batcher = Batcher::new(batch, StreamsConfig::default());
    let mut report = FeedReport::default();
    let (mut rejects, mut done) = (Vec::new(), Vec::new());
    let started = Instant::now();
    let mut send = |done: &mut Vec<EventBatch>, report: &mut FeedReport| -> bool {
        for batch in done.drain(..) {
            let events = match batch {
                EventBatch::Trades(v) => Inbound::Trades(v),
                EventBatch::Quotes(v) => Inbound::Quotes(v),
                EventBatch::Posts(v) => Inbound::Posts(v),
                EventBatch::Single(Event::Trade(t)) => Inbound::Trades(vec![t]),
                EventBatch::Single(Event::Quote(q)) => Inbound::Quotes(vec![q]),
                EventBatch::Single(Event::Post(p)) => Inbound::Posts(vec![p]),
            };
            match &events {
                Inbound::Trades(v) => report.trades += v.len() as u64,
                Inbound::Quotes(v) => report.quotes += v.len() as u64,
                Inbound::Posts(v) => report.posts += v.len() as u64,
            }
            report.messages += 1;
            if !sender.blocking_send(events) {
                return false;
            }
        }
        true
    };
    let mut read = 0u64;
    loop {
        // A cancellation check is a few atomics: once per read-ahead chunk.
        if read.is_multiple_of(CANCEL_CHECK_EVERY) && stop.is_cancelled() {
            report.interrupted = true;
            break;
        }
        read += 1;
        let next = files.next_event(&mut rejects)?;
        for reject in rejects.drain(..) {
            report.rejected += 1;
            if report.listed.len() < REJECTS_LISTED {
                report
                    .listed
                    .push((reject.origin.clone(), reject.reason.clone()));
            }
            tracing::warn!(origin = %reject.origin, reason = %reject.reason, "rejected line");
            // The dead-letter task only ends once this sender is dropped.
            let _ = rejects_tx.send(reject);
        }
        let Some(event) = next else { break };
        batcher.push_batches(event, &mut done);
        if !send(&mut done, &mut report) {
            break;
        }
        if report.messages % 256 == 0 {
            if let Some(bar) = &bar {
                bar.set_position(files.progress().0);
                let rate = report.events() as f64 / started.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("{} events, {rate:.0}/s", report.events()));
            }
        }
    }
    if report.interrupted {
        // Hand the input back still open: closing it would close every
        // window on partial input, and the job is stopping instead.
        return Ok((report, Some(sender)));
    }
    batcher.close_batches(&mut done);
    send(&mut done, &mut report);
    Ok((report, None))
}

/// Sends every rejected line to `insite.dlq.ingest`, then waits for the
/// acks.
async fn dead_letter_all(
    mut publisher: Publisher,
    mut rejects: mpsc::UnboundedReceiver<Rejected>,
) -> anyhow::Result<()> {
    while let Some(reject) = rejects.recv().await {
        reject.dead_letter(&mut publisher).await?;
    }
    tokio::time::timeout(Duration::from_secs(30), publisher.flush())
        .await
        .context("waiting for the dead letters' acks")??;
    Ok(())
}

fn print_rejects(fed: &FeedReport) {
    if fed.rejected == 0 {
        return;
    }
    eprintln!(
        "{} line(s) rejected and sent to insite.dlq.ingest{}:",
        fed.rejected,
        if fed.rejected as usize > fed.listed.len() {
            format!(" (the first {} listed)", fed.listed.len())
        } else {
            String::new()
        }
    );
    for (origin, reason) in &fed.listed {
        eprintln!("  {origin}: {reason}");
    }
}
