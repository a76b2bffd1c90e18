//! `insite-bench pipeline`: how fast the pipeline runs compared with the raw
//! limit of consuming JetStream on the same server, its end-to-end latency
//! at a steady live rate, and its peak memory at many symbols.
//!
//! Starts its own NATS, Redis and ClickHouse on free loopback ports (under
//! the local root, removed afterwards) unless all three URLs are given, and
//! gives every phase its own streams, subject prefix, ClickHouse database
//! and Redis key prefix:
//!
//! 1. **Backlog.** The synthetic feed publishes `--events` events as fast as
//!    it can (ingest's default batching: a message is a batch of one
//!    symbol's trades or quotes), with historical event time. Then the
//!    **raw consume**, the limit: a plain durable pull consumer per stream
//!    (`AckPolicy::Explicit`, `messages()`) decodes every message with
//!    `insite_schemas::wire::decode_inbound` and acknowledges it. Then the
//!    **pipeline**: `insite_pipeline::run` over the same backlog (its own
//!    durable consumers, a fresh database), timed from its start until
//!    every raw trade, quote and post is in ClickHouse.
//! 2. **Latency.** A live pipeline, then the synthetic feed paced at
//!    `--live-rate` events/s with event time = now; after a warm-up, the
//!    pipeline's own histogram of event time → Redis write of every trade.
//! 3. **Memory.** A backlog at `--memory-symbols` symbols through
//!    `insite pipeline run` as a child process (see [`crate::child`]),
//!    whose peak RSS (`VmHWM`) is read from `/proc` before it is stopped
//!    with SIGTERM.
//!
//! Everything is bounded: counts, durations and a per-phase `--timeout-s`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use clap::Args;
use futures::StreamExt;
use hdrhistogram::Histogram;
use insite_config::InsiteConfig;
use insite_ingest::{BatchConfig, IngestReport, SyntheticConfig};
use insite_pipeline::output::LatencyRecorder;
use insite_pipeline::{Connections, PipelineConfig, RunConfig};
use insite_schemas::config::{NatsConfig, StreamsConfig};
use insite_schemas::wire::{self, Inbound};
use tokio_util::sync::CancellationToken;

use crate::child::{InsiteBinaryArgs, InsiteChild};
use crate::procstat::{status_kib, Sample};
use crate::servers::{clean_up, BenchServers, ServerArgs};

/// Arguments of `insite-bench pipeline`.
#[derive(Debug, Args)]
pub struct BenchPipelineArgs {
    #[command(flatten)]
    servers: ServerArgs,
    /// The `insite` binary of the memory phase.
    #[command(flatten)]
    insite: InsiteBinaryArgs,
    /// Events in the backlog (trades, quotes and posts).
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Symbols simulated in the backlog and the live phase.
    #[arg(long, default_value_t = 50)]
    symbols: usize,
    /// Simulated market events per second of event time in the backlogs
    /// (sets how far event time advances and how full batches get;
    /// publishing is as fast as possible).
    #[arg(long, default_value_t = 200_000.0)]
    backlog_rate: f64,
    /// Most trades or quotes of one symbol per backlog message (ingest's
    /// `--batch-size`; larger messages, fewer of them).
    #[arg(long, default_value_t = BatchConfig::default().max_events)]
    backlog_batch_size: usize,
    /// Event time of the backlogs' first event (RFC 3339).
    #[arg(long, default_value = "2024-03-04T14:30:00Z")]
    start: String,
    /// Timely workers of the pipeline (default: `pipeline.workers`).
    #[arg(long)]
    workers: Option<usize>,
    /// Market events per second of the live phase (0: skip it).
    #[arg(long, default_value_t = 20_000.0)]
    live_rate: f64,
    /// Seconds of the live phase that are measured (after the warm-up).
    #[arg(long, default_value_t = 20.0)]
    live_seconds: f64,
    /// Seconds of warm-up before the live phase's histogram starts.
    #[arg(long, default_value_t = 5.0)]
    warmup_seconds: f64,
    /// Ingest's event-time batch slice in the live phase, ms (an event
    /// waits up to this long in the feed's batcher before it is published).
    #[arg(long, default_value_t = 10)]
    live_slice_ms: i64,
    /// Symbols of the memory phase (0: skip it).
    #[arg(long, default_value_t = 10_000)]
    memory_symbols: usize,
    /// Events of the memory phase's backlog.
    #[arg(long, default_value_t = 1_000_000)]
    memory_events: u64,
    /// Longest any one phase may take, in seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout_s: f64,
}

/// The pipeline's settings for one phase: its own name and durables.
pub(crate) fn phase_pipeline(
    config: &InsiteConfig,
    workers: Option<usize>,
    tag: &str,
) -> PipelineConfig {
    let mut pipeline = config.pipeline.clone();
    pipeline.name = tag.to_owned();
    pipeline.consumer.market_durable = format!("{tag}-market");
    pipeline.consumer.social_durable = format!("{tag}-social");
    if let Some(workers) = workers {
        pipeline.workers = workers;
    }
    pipeline
}

/// Events and messages by kind.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    messages: u64,
    trades: u64,
    quotes: u64,
    posts: u64,
}

impl Counts {
    fn events(&self) -> u64 {
        self.trades + self.quotes + self.posts
    }

    fn add(&mut self, other: Counts) {
        self.messages += other.messages;
        self.trades += other.trades;
        self.quotes += other.quotes;
        self.posts += other.posts;
    }
}

/// One published backlog.
#[derive(Debug)]
struct Backlog {
    report: IngestReport,
    elapsed: Duration,
}

/// The pipeline over a backlog.
#[derive(Debug, Default)]
struct Sustained {
    /// From the start of the run until every raw row was in ClickHouse.
    elapsed: Duration,
    /// From the start until the first rows were in ClickHouse.
    first_rows: Option<Duration>,
    /// Raw rows seen in ClickHouse at the end.
    rows: u64,
    /// Final bars written (after shutdown).
    bars: u64,
    /// Messages the pipeline acknowledged.
    acked: u64,
    /// Messages it still held at shutdown (open windows).
    held: u64,
}

/// The load of a live run: a synthetic feed paced with event time = now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveLoad {
    /// Symbols simulated.
    pub symbols: usize,
    /// Market events per second published.
    pub rate: f64,
    /// Time before the histogram starts.
    pub warmup: Duration,
    /// Time measured after the warm-up.
    pub measured: Duration,
    /// Ingest's event-time batch slice, ms.
    pub slice_ms: i64,
}

/// The live phase.
#[derive(Debug)]
pub(crate) struct Live {
    /// Event time → Redis write of every trade after the warm-up, µs.
    hist: Histogram<u64>,
    /// Events the feed published (warm-up included).
    events: u64,
    /// Messages it published.
    messages: u64,
    /// How long it ran (warm-up included).
    elapsed: Duration,
    /// Messages published but not yet given to the pipeline's consumers
    /// when the feed stopped (`None`: unknown): a backlog that the
    /// pipeline did not keep up with.
    pub undelivered: Option<u64>,
    /// The watched processes, sampled when the histogram starts and when
    /// the feed stops.
    pub usage: Vec<(Sample, Sample)>,
}

impl Live {
    /// Event time → Redis write of every trade after the warm-up, µs.
    pub fn hist(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Events per second the feed published.
    pub fn published_rate(&self) -> f64 {
        rate(self.events, self.elapsed)
    }

    /// Events per second given to the pipeline: those published, less the
    /// share of messages still undelivered when the feed stopped.
    pub fn consumed_rate(&self) -> f64 {
        let left = self.undelivered.unwrap_or(0).min(self.messages) as f64;
        let share = 1.0 - left / self.messages.max(1) as f64;
        self.published_rate() * share
    }
}

/// The synthetic feed's intraday activity at the open (its curve is
/// `(0.55 + 1.8 x²) / 1.15` with `x = -1` at the open), which is where a
/// live feed starting now sits for the whole phase: the nominal rate is
/// divided by it so that the published rate is the asked one (the
/// achieved rate is printed).
pub(crate) const OPEN_INTENSITY: f64 = 2.35 / 1.15;

/// The memory phase.
#[derive(Debug)]
struct Memory {
    symbols: usize,
    events: u64,
    messages: u64,
    elapsed: Duration,
    peak_rss_kib: u64,
}

/// Everything measured.
#[derive(Debug, Default)]
struct Figures {
    backlog: Option<Backlog>,
    raw: Option<(Counts, Duration)>,
    sustained: Option<Sustained>,
    live: Option<Live>,
    memory: Option<Memory>,
}

/// Runs `insite-bench pipeline`.
pub fn run(config: &InsiteConfig, args: BenchPipelineArgs) -> anyhow::Result<()> {
    // Found before anything runs, so that a missing binary fails at once.
    let insite = match args.memory_symbols {
        0 => None,
        _ => Some(args.insite.binary()?),
    };
    let urls = BenchServers::start_or_use(config, "pipeline", &args.servers)?;
    let start_ms = parse_time(&args.start)?;
    let runtime = crate::runtime()?;
    let mut figures = Figures::default();
    let result = runtime.block_on(bench(config, &args, &urls, insite, start_ms, &mut figures));
    print_figures(&args, &figures);
    drop(runtime);
    drop(urls);
    result
}

fn parse_time(text: &str) -> anyhow::Result<i64> {
    insite_schemas::time::parse_time(text).with_context(|| format!("--start {text:?}"))
}

async fn bench(
    config: &InsiteConfig,
    args: &BenchPipelineArgs,
    urls: &BenchServers,
    insite: Option<PathBuf>,
    start_ms: i64,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let id = std::process::id();
    let timeout = Duration::try_from_secs_f64(args.timeout_s).context("--timeout-s")?;

    // 1. Backlog: raw consume, then the pipeline over the same messages.
    let tag = format!("bp{id}_backlog");
    let services = urls.isolated(config, &tag);
    let result = async {
        let backlog = publish_backlog(
            &services.nats,
            args.symbols,
            args.events,
            args.backlog_rate,
            args.backlog_batch_size,
            start_ms,
        )
        .await?;
        eprintln!(
            "backlog: {} in {:.2} s",
            backlog.report,
            backlog.elapsed.as_secs_f64()
        );
        figures.backlog = Some(backlog);
        let raw = tokio::time::timeout(timeout, raw_consume(&services.nats, &config.pipeline))
            .await
            .context("raw consume timed out")??;
        eprintln!(
            "raw consume: {} messages, {} events in {:.2} s",
            raw.0.messages,
            raw.0.events(),
            raw.1.as_secs_f64()
        );
        figures.raw = Some(raw);
        let pipeline = phase_pipeline(config, args.workers, &tag);
        let sustained = sustained(&services, &pipeline, raw.0.events(), timeout).await?;
        eprintln!(
            "pipeline: {} raw rows in ClickHouse after {:.2} s, {} bars",
            sustained.rows,
            sustained.elapsed.as_secs_f64(),
            sustained.bars
        );
        figures.sustained = Some(sustained);
        anyhow::Ok(())
    }
    .await;
    clean_up(&services).await;
    result?;

    // 2. Live latency.
    if args.live_rate > 0.0 {
        let tag = format!("bp{id}_live");
        let services = urls.isolated(config, &tag);
        let pipeline = phase_pipeline(config, args.workers, &tag);
        let load = LiveLoad {
            symbols: args.symbols,
            rate: args.live_rate,
            warmup: Duration::try_from_secs_f64(args.warmup_seconds).context("--warmup-seconds")?,
            measured: Duration::try_from_secs_f64(args.live_seconds).context("--live-seconds")?,
            slice_ms: args.live_slice_ms,
        };
        let result = live(&services, &pipeline, load, timeout, &[]).await;
        clean_up(&services).await;
        figures.live = Some(result?);
    }

    // 3. Peak memory of a pipeline process at many symbols.
    if let Some(insite) = insite {
        let tag = format!("bp{id}_memory");
        let services = urls.isolated(config, &tag);
        let mut child_config = config.clone();
        child_config.set_connections(services.clone());
        child_config.pipeline = phase_pipeline(config, args.workers, &tag);
        let result = memory(&insite, &child_config, args, start_ms, timeout).await;
        clean_up(&services).await;
        figures.memory = Some(result?);
    }
    Ok(())
}

/// Publishes `events` synthetic events as fast as possible.
async fn publish_backlog(
    nats: &NatsConfig,
    symbols: usize,
    events: u64,
    rate: f64,
    batch_size: usize,
    start_ms: i64,
) -> anyhow::Result<Backlog> {
    let js = insite_ingest::connect(nats).await?;
    let synthetic = SyntheticConfig {
        seed: 7,
        symbols,
        rate,
        max_speed: true,
        count: Some(events),
        start_ms,
        // Every event is stored once, so ClickHouse ends up with them all.
        duplicate_share: 0.0,
        batch: BatchConfig {
            max_events: batch_size.max(1),
            ..BatchConfig::default()
        },
        ..SyntheticConfig::default()
    };
    let started = Instant::now();
    let report =
        insite_ingest::run_synthetic(&js, &nats.streams, synthetic, CancellationToken::new())
            .await?;
    Ok(Backlog {
        report,
        elapsed: started.elapsed(),
    })
}

/// Unacknowledged messages the raw consumer may hold.
const RAW_MAX_ACK_PENDING: i64 = 1_000_000;

/// The limit: a plain durable pull consumer per stream that decodes and
/// acknowledges every message; both streams at once.
async fn raw_consume(
    nats: &NatsConfig,
    _pipeline: &PipelineConfig,
) -> anyhow::Result<(Counts, Duration)> {
    let js = insite_ingest::connect(nats).await?;
    let started = Instant::now();
    let tasks = [nats.streams.market.clone(), nats.streams.social.clone()]
        .map(|stream| tokio::spawn(consume_stream(js.clone(), stream, RAW_MAX_ACK_PENDING)));
    let mut counts = Counts::default();
    for task in tasks {
        counts.add(task.await.context("a raw consumer task")??);
    }
    Ok((counts, started.elapsed()))
}

async fn consume_stream(
    js: jetstream::Context,
    name: String,
    max_ack_pending: i64,
) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    let mut stream = js.get_stream(&name).await?;
    let total = stream.info().await?.state.messages;
    if total == 0 {
        return Ok(counts);
    }
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("bench-raw".into()),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while counts.messages < total {
        let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .with_context(|| format!("no message from {name} for 30 s"))?
            .with_context(|| format!("{name}: the message stream ended"))?
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let schema = message
            .headers
            .as_ref()
            .and_then(|h| h.get(wire::SCHEMA_HEADER))
            .map(|v| v.as_str());
        match wire::decode_inbound(schema, &message.payload)? {
            Inbound::Trades(t) => counts.trades += t.len() as u64,
            Inbound::Quotes(q) => counts.quotes += q.len() as u64,
            Inbound::Posts(p) => counts.posts += p.len() as u64,
        }
        message
            .ack()
            .await
            .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
        counts.messages += 1;
    }
    Ok(counts)
}

/// Raw rows (trades, quotes, posts) in the phase's database.
async fn raw_rows(client: &clickhouse::Client) -> anyhow::Result<u64> {
    Ok(client
        .query(
            "SELECT (SELECT count() FROM trades) + (SELECT count() FROM quotes) \
             + (SELECT count() FROM posts)",
        )
        .fetch_one::<u64>()
        .await?)
}

/// Messages the pipeline's durable consumers have not yet been given
/// (`None` while they do not exist).
async fn undelivered(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    pipeline: &PipelineConfig,
) -> Option<u64> {
    let mut total = 0;
    for (stream, durable) in [
        (&streams.market, &pipeline.consumer.market_durable),
        (&streams.social, &pipeline.consumer.social_durable),
    ] {
        let stream = js.get_stream(stream).await.ok()?;
        let mut consumer = stream.get_consumer::<pull::Config>(durable).await.ok()?;
        total += consumer.info().await.ok()?.num_pending;
    }
    Some(total)
}

/// When the raw rows of a backlog were in ClickHouse.
#[derive(Debug, Clone, Copy)]
struct Landed {
    /// The first rows, from the start.
    first: Option<Duration>,
    /// The last rows, from the start.
    last: Duration,
    /// Raw rows counted at the end.
    rows: u64,
}

/// Polls ClickHouse until the backlog's raw rows are there: `expected` of
/// them, or, once the pipeline's consumers have been given every message,
/// as many as stay put for two seconds (`ReplacingMergeTree` merges may
/// fold identical quotes of one millisecond into one row, so the count can
/// end a little short of the events published). The end is when the last
/// rows arrived.
async fn wait_rows(
    client: &clickhouse::Client,
    services: &Connections,
    pipeline: &PipelineConfig,
    expected: u64,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<Landed> {
    let js = insite_ingest::connect(&services.nats).await?;
    let mut first = None;
    let (mut last_rows, mut last_change) = (0, started.elapsed());
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The tables exist once the pipeline has migrated its database.
        let rows = raw_rows(client).await.unwrap_or(0);
        let now = started.elapsed();
        if rows > 0 && first.is_none() {
            first = Some(now);
        }
        if rows != last_rows {
            (last_rows, last_change) = (rows, now);
        }
        if rows >= expected {
            return Ok(Landed {
                first,
                last: now,
                rows,
            });
        }
        if rows > 0
            && now - last_change >= Duration::from_secs(2)
            && undelivered(&js, &services.nats.streams, pipeline).await == Some(0)
        {
            return Ok(Landed {
                first,
                last: last_change,
                rows,
            });
        }
        anyhow::ensure!(
            now < timeout,
            "only {rows} of {expected} raw rows in ClickHouse after {:.0} s",
            timeout.as_secs_f64()
        );
    }
}

/// The pipeline over the backlog, in this process.
async fn sustained(
    services: &Connections,
    pipeline: &PipelineConfig,
    expected: u64,
    timeout: Duration,
) -> anyhow::Result<Sustained> {
    insite_sinks::clickhouse::migrate(&services.clickhouse).await?;
    let client = insite_sinks::clickhouse::connect(&services.clickhouse);
    let stop = CancellationToken::new();
    let started = Instant::now();
    let run_config = RunConfig::new(services.clone(), pipeline.clone());
    let run = insite_pipeline::run(&run_config, stop.clone());
    let watch = async {
        let waited = wait_rows(&client, services, pipeline, expected, started, timeout).await;
        stop.cancel();
        waited
    };
    let (report, waited) = tokio::join!(run, watch);
    let landed = waited?;
    let report = report.context("the pipeline failed")?;
    let bars = client
        .query("SELECT count() FROM bars")
        .fetch_one::<u64>()
        .await?;
    Ok(Sustained {
        elapsed: landed.last,
        first_rows: landed.first,
        rows: landed.rows,
        bars,
        acked: report.checkpoints.finished,
        held: report.checkpoints.held,
    })
}

/// A live pipeline (in this process) fed at a steady rate with event
/// time = now (by this process too), the processes `watch` sampled over
/// the measured time.
pub(crate) async fn live(
    services: &Connections,
    pipeline: &PipelineConfig,
    load: LiveLoad,
    timeout: Duration,
    watch: &[u32],
) -> anyhow::Result<Live> {
    let js = insite_ingest::connect(&services.nats).await?;
    insite_sinks::streams::ensure_streams(&js, &services.nats.streams).await?;
    insite_sinks::clickhouse::migrate(&services.clickhouse).await?;
    let recorder = LatencyRecorder::new()?;
    let stop = CancellationToken::new();
    let (warmup, measured) = (load.warmup, load.measured);
    anyhow::ensure!(
        warmup + measured < timeout,
        "the live phase is longer than --timeout-s"
    );
    let run_config = RunConfig {
        latency: Some(recorder.clone()),
        ..RunConfig::new(services.clone(), pipeline.clone())
    };
    let run = insite_pipeline::run(&run_config, stop.clone());
    let feed = async {
        let fed = async {
            // The pipeline is ready once its durable consumer exists.
            let ready = Instant::now();
            loop {
                if let Ok(stream) = js.get_stream(&services.nats.streams.market).await {
                    if stream
                        .get_consumer::<pull::Config>(&pipeline.consumer.market_durable)
                        .await
                        .is_ok()
                    {
                        break;
                    }
                }
                anyhow::ensure!(
                    ready.elapsed() < Duration::from_secs(60),
                    "the pipeline did not create its consumer in 60 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let synthetic = SyntheticConfig {
                seed: 11,
                symbols: load.symbols,
                rate: load.rate / OPEN_INTENSITY,
                max_speed: false,
                start_ms: insite_schemas::time::now_ms(),
                duplicate_share: 0.0,
                batch: BatchConfig {
                    slice_ms: load.slice_ms.max(1),
                    ..BatchConfig::default()
                },
                ..SyntheticConfig::default()
            };
            let shutdown = CancellationToken::new();
            let timer = {
                let (shutdown, recorder) = (shutdown.clone(), recorder.clone());
                let watch = watch.to_vec();
                tokio::spawn(async move {
                    tokio::time::sleep(warmup).await;
                    recorder.reset();
                    let before: Vec<Sample> = watch.iter().map(|&p| Sample::take(p)).collect();
                    tokio::time::sleep(measured).await;
                    shutdown.cancel();
                    before
                        .into_iter()
                        .zip(&watch)
                        .map(|(b, &p)| (b, Sample::take(p)))
                        .collect::<Vec<_>>()
                })
            };
            let feeding = Instant::now();
            let report =
                insite_ingest::run_synthetic(&js, &services.nats.streams, synthetic, shutdown)
                    .await?;
            let fed_for = feeding.elapsed();
            let undelivered = undelivered(&js, &services.nats.streams, pipeline).await;
            let usage = timer.await.context("the live timer")?;
            // Let the last trades reach Redis.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let hist = recorder.snapshot();
            eprintln!("live feed: {report} in {:.1} s", fed_for.as_secs_f64());
            anyhow::Ok((hist, report, fed_for, undelivered, usage))
        }
        .await;
        stop.cancel();
        fed
    };
    let (report, fed) = tokio::join!(run, feed);
    let (hist, ingest, fed_for, undelivered, usage) = fed?;
    report.context("the pipeline failed")?;
    Ok(Live {
        hist,
        events: ingest.events,
        messages: ingest.acked,
        elapsed: fed_for,
        undelivered,
        usage,
    })
}

/// A backlog at many symbols through `insite pipeline run` as a child,
/// configured by `config` (its connections and `[pipeline]` are the
/// phase's).
async fn memory(
    insite: &std::path::Path,
    config: &InsiteConfig,
    args: &BenchPipelineArgs,
    start_ms: i64,
    timeout: Duration,
) -> anyhow::Result<Memory> {
    let services = config.connections();
    let pipeline = &config.pipeline;
    let backlog = publish_backlog(
        &services.nats,
        args.memory_symbols,
        args.memory_events,
        args.backlog_rate,
        args.backlog_batch_size,
        start_ms,
    )
    .await?;
    eprintln!(
        "memory backlog ({} symbols): {} in {:.2} s",
        args.memory_symbols,
        backlog.report,
        backlog.elapsed.as_secs_f64()
    );
    insite_sinks::clickhouse::migrate(&services.clickhouse).await?;
    let client = insite_sinks::clickhouse::connect(&services.clickhouse);
    let started = Instant::now();
    let mut child = InsiteChild::spawn(
        insite,
        &pipeline.name,
        config,
        &["pipeline", "run", "--no-metrics", "--log", "warn"],
    )?;
    let waited = wait_rows(
        &client,
        &services,
        pipeline,
        backlog.report.events,
        started,
        timeout,
    )
    .await;
    let peak_rss_kib = status_kib(child.pid(), "VmHWM").unwrap_or(0);
    let status = child
        .terminate(Duration::from_secs(30))
        .await
        .context("stopping the pipeline child")?;
    let elapsed = waited?.last;
    anyhow::ensure!(
        status.is_some_and(|s| s.success()),
        "the pipeline child did not stop cleanly: {status:?}"
    );
    Ok(Memory {
        symbols: args.memory_symbols,
        events: backlog.report.events,
        messages: backlog.report.acked,
        elapsed,
        peak_rss_kib,
    })
}

/// `n` per second over `d`.
pub(crate) fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn print_figures(args: &BenchPipelineArgs, f: &Figures) {
    println!();
    println!(
        "pipeline benchmark: {} symbols, backlog rate {:.0} events/s of event time, {} workers",
        args.symbols,
        args.backlog_rate,
        args.workers
            .map_or_else(|| "configured".to_owned(), |w| w.to_string())
    );
    if let Some(b) = &f.backlog {
        println!(
            "backlog published: {} events in {} messages ({:.1} events/message) in {:.2} s ({:.0} events/s)",
            b.report.events,
            b.report.acked,
            b.report.events as f64 / b.report.acked.max(1) as f64,
            b.elapsed.as_secs_f64(),
            rate(b.report.events, b.elapsed)
        );
    }
    println!();
    println!("| what | events | messages | seconds | events/s | messages/s | ratio to raw |");
    println!("|---|---|---|---|---|---|---|");
    let raw_rate = f.raw.map(|(c, d)| rate(c.events(), d));
    if let Some((c, d)) = f.raw {
        println!(
            "| raw JetStream consume (decode + ack) | {} | {} | {:.2} | {:.0} | {:.0} | 100% |",
            c.events(),
            c.messages,
            d.as_secs_f64(),
            rate(c.events(), d),
            rate(c.messages, d)
        );
    }
    if let (Some(s), Some((c, _))) = (&f.sustained, f.raw) {
        let r = rate(c.events(), s.elapsed);
        println!(
            "| pipeline into ClickHouse + Redis | {} | {} | {:.2} | {:.0} | {:.0} | {:.0}% |",
            c.events(),
            c.messages,
            s.elapsed.as_secs_f64(),
            r,
            rate(c.messages, s.elapsed),
            100.0 * r / raw_rate.unwrap_or(f64::NAN)
        );
    }
    if let Some(m) = &f.memory {
        println!(
            "| pipeline child, {} symbols | {} | {} | {:.2} | {:.0} | {:.0} | |",
            m.symbols,
            m.events,
            m.messages,
            m.elapsed.as_secs_f64(),
            rate(m.events, m.elapsed),
            rate(m.messages, m.elapsed)
        );
    }
    if let Some(s) = &f.sustained {
        println!();
        println!(
            "pipeline backlog run: first raw rows in ClickHouse after {:.2} s; {} raw rows of {} events \
             (identical quotes folded by merges); {} final bars; \
             {} messages finished with (behind the checkpoints), {} held (open windows) at shutdown",
            s.first_rows.map_or(f64::NAN, |d| d.as_secs_f64()),
            s.rows,
            f.raw.map_or(0, |(c, _)| c.events()),
            s.bars,
            s.acked,
            s.held
        );
    }
    if let Some(l) = &f.live {
        let ms = |q: f64| l.hist.value_at_quantile(q) as f64 / 1_000.0;
        println!();
        println!(
            "end-to-end latency (event time → Redis write, every trade), live feed at {:.0} events/s \
             (achieved {:.0} events/s in {:.0} messages/s), {} s after {} s warm-up, ingest batch slice {} ms:",
            args.live_rate,
            rate(l.events, l.elapsed),
            rate(l.messages, l.elapsed),
            args.live_seconds,
            args.warmup_seconds,
            args.live_slice_ms
        );
        println!("| trades | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |");
        println!("|---|---|---|---|---|---|");
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            l.hist.len(),
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            l.hist.max() as f64 / 1_000.0
        );
    }
    if let Some(m) = &f.memory {
        println!();
        println!(
            "peak pipeline memory (VmHWM of `insite pipeline run`) at {} symbols, {} events: {:.0} MiB",
            m.symbols,
            m.events,
            m.peak_rss_kib as f64 / 1024.0
        );
    }
}
