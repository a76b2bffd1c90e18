//! Running the job: the start-up order and the shutdown of the live
//! pipeline ([`run`]; replays of a stream range are in
//! [`replay`](mod@crate::replay)). Both start one job (`bridge::Job`: the
//! timely workers and the output task); consumers feed its input channels,
//! the output task writes ClickHouse, Redis and NATS, and (live only) the
//! checkpoint task moves each stream's checkpoint past what is durable.
//!
//! ## Start-up order of a live pipeline
//! 1. Streams are created or checked; process 0 applies the migrations
//!    (the others wait for them).
//! 2. The pipeline's checkpoints are read ([`crate::resume`]), and each
//!    process starts its own frontier record from them.
//! 3. Process 0 recreates each stream's durable consumer at its checkpoint's
//!    sequence + 1, so every message not finished with comes again, in
//!    order, with the stream's clock as it stood there.
//! 4. The timely workers start; in a cluster this waits until every process
//!    is connected.
//! 5. Process 0's consumers start pulling (and write clock ticks into a
//!    stream that goes idle).
//!
//! ## Shutdown
//! On the shutdown signal the consumers stop, the workers stop where they
//! are (open windows are *not* closed: their messages stay after the
//! checkpoint and are read again on restart), the output task writes what
//! it has and records the frontiers and checkpoints that made durable.

use std::time::{Duration, Instant};

use async_nats::jetstream;
pub use insite_schemas::config::Connections;
use insite_schemas::{SourceName, TimestampMs};
use insite_sinks::clickhouse::{self as ch, MigrateError};
use insite_sinks::redis::RedisSinkError;
use insite_sinks::streams::{ensure_streams, StreamSetupError};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::bridge::{Job, JobSpec, Reader, SourceReader};
use crate::config::PipelineConfig;
use crate::output::{LatencyRecorder, OutputError, OutputTask};
use crate::progress::{run_checkpoints, CheckpointReport, Checkpoints};
use crate::resume::{ProgressStore, Resume, ResumeError};
use crate::source::{self, InputMessage, InputSource, PullOptions, SourceError};

/// Everything a live run needs but its shutdown signal.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where the servers are.
    pub connections: Connections,
    /// The `[pipeline]` section.
    pub pipeline: PipelineConfig,
    /// This process's place in the timely cluster.
    pub topology: Topology,
    /// Where to record event → Redis latencies (benchmarks), if anywhere.
    pub latency: Option<LatencyRecorder>,
}

impl RunConfig {
    /// One process on `connections` with `pipeline`'s settings.
    pub fn new(connections: Connections, pipeline: PipelineConfig) -> Self {
        Self {
            connections,
            pipeline,
            topology: Topology::single(),
            latency: None,
        }
    }
}

/// The processes of a timely cluster, and this one's place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// This process's index, from 0.
    pub process: usize,
    /// `host:port` of every process, in index order; empty (or one entry)
    /// for a single process.
    pub hosts: Vec<String>,
}

impl Topology {
    /// One process on its own.
    pub fn single() -> Self {
        Self {
            process: 0,
            hosts: Vec::new(),
        }
    }

    /// Number of processes.
    pub fn processes(&self) -> usize {
        self.hosts.len().max(1)
    }
}

/// Why the pipeline could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// NATS could not be reached.
    #[error(transparent)]
    Connect(#[from] insite_sinks::nats::ConnectError),
    /// The streams could not be created or checked.
    #[error(transparent)]
    Streams(#[from] StreamSetupError),
    /// The migrations could not be applied.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// A consumer failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Redis could not be reached.
    #[error(transparent)]
    Redis(#[from] RedisSinkError),
    /// The durable frontier could not be read.
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// The output task failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Timely could not start (a cluster peer unreachable, a bad address).
    #[error("starting the timely workers: {0}")]
    Timely(String),
    /// A task or worker thread died.
    #[error("{0} ended abnormally")]
    Crashed(&'static str),
    /// A setting is unusable.
    #[error("invalid config: {0}")]
    Config(String),
    /// A backfill's own statement failed.
    #[error("backfill: {0}")]
    Backfill(String),
    /// A backfill was refused: its windows overlap the live pipeline's.
    #[error("{0}")]
    Refused(Box<crate::backfill::Refused>),
    /// The latency histogram could not be created.
    #[error("creating the latency histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Where an earlier run had left each stream (nothing recorded: a
    /// fresh start).
    pub resumed: Resume,
    /// Messages finished with, and held at the end.
    pub checkpoints: CheckpointReport,
    /// Wall-clock duration.
    pub elapsed: Duration,
}

impl RunReport {
    /// The durable frontier an earlier run had recorded (the least over
    /// both streams), if it had.
    pub fn resumed_from(&self) -> Option<TimestampMs> {
        self.resumed.durable()
    }
}

/// Connects to NATS as `name` and opens JetStream.
pub(crate) async fn jetstream(
    services: &Connections,
    name: &str,
) -> Result<jetstream::Context, PipelineError> {
    let client = insite_sinks::nats::connect(&services.nats, name).await?;
    Ok(jetstream::new(client))
}

/// Waits (up to two minutes) until every migration is recorded as applied
/// in `clickhouse`'s database, by another process of the cluster.
async fn wait_migrated(
    clickhouse: &insite_schemas::config::ClickHouseConfig,
) -> Result<(), PipelineError> {
    let client = ch::connect(clickhouse);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if ch::is_migrated(&client).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(PipelineError::Config(format!(
                "database {} is not migrated: process 0 of the cluster migrates it",
                clickhouse.database
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The pipeline's name as a subject token, for the clock ticks it writes.
fn origin(config: &PipelineConfig) -> Result<SourceName, PipelineError> {
    let token: String = config
        .name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    SourceName::new(&token).map_err(|e| PipelineError::Config(format!("[pipeline] name: {e}")))
}

/// Runs the live pipeline until `shutdown` is cancelled.
pub async fn run(run: &RunConfig, shutdown: CancellationToken) -> Result<RunReport, PipelineError> {
    let (services, config, topology) = (&run.connections, &run.pipeline, &run.topology);
    let latency = run.latency.clone();
    let started = Instant::now();
    let origin = origin(config)?;
    let js = jetstream(services, "insite-pipeline").await?;
    let streams = &services.nats.streams;
    ensure_streams(&js, streams).await?;
    // One process migrates; the others wait for it (a table swap run twice
    // at once would collide).
    if topology.process == 0 {
        ch::migrate(&services.clickhouse).await?;
    } else {
        wait_migrated(&services.clickhouse).await?;
    }
    let store = ProgressStore::new(
        ch::connect(&services.clickhouse),
        config.name.clone(),
        topology.process,
        topology.processes(),
    );
    let resumed = store.load().await?;
    tracing::info!(pipeline = %config.name, ?resumed, "where the earlier run left each stream");
    // A process's own record starts at the pipeline's: records of an
    // earlier run (or an earlier topology) never speak for this one.
    // Retried while ClickHouse is unavailable, or (a cluster's quorum
    // inserts on ClickHouse 18.16 run one at a time per shard) busy.
    for src in [InputSource::Market, InputSource::Social] {
        let floor = resumed.of(src).floor();
        insite_sinks::retry::retry_forever(
            "checkpoints",
            insite_sinks::retry::Backoff::standard(),
            ResumeError::is_retryable,
            || store.save_process(src, floor),
        )
        .await?;
    }

    // Process 0 reads every stream, in order, from its checkpoint; the
    // events reach every process's workers through timely's exchange.
    let first = topology.process == 0;
    let mut consumers = Vec::new();
    if first {
        for src in [InputSource::Market, InputSource::Social] {
            let from = resumed.of(src).resume_seq + 1;
            consumers.push((
                src,
                source::consumer(&js, streams, &config.consumer, src, from).await?,
            ));
        }
    }

    let channel = || mpsc::channel::<InputMessage>(config.input_buffer.max(1));
    let ((market_tx, market_rx), (social_tx, social_rx)) = (channel(), channel());
    let (market_reads_tx, market_reads) = mpsc::unbounded_channel();
    let (social_reads_tx, social_reads) = mpsc::unbounded_channel();
    let floors = [resumed.market.floor(), resumed.social.floor()];
    let (durable_tx, durable_rx) = watch::channel(floors);
    let start: Checkpoints = [
        (resumed.market.resume_seq, resumed.market.max_ts),
        (resumed.social.resume_seq, resumed.social.max_ts),
    ];
    let (checkpoints_tx, checkpoints_rx) = watch::channel(start);
    let mut output = OutputTask::connect(services, config, &js, true)
        .await?
        .with_progress(store, resumed, first.then_some(checkpoints_rx));
    if let Some(latency) = latency {
        output = output.with_latency(latency);
    }
    let checkpoints = tokio::spawn(run_checkpoints(
        [market_reads, social_reads],
        durable_rx,
        start,
        checkpoints_tx,
    ));
    let reader = Reader {
        market: SourceReader {
            input: market_rx,
            reads: Some(market_reads_tx),
            resume_max_ts: resumed.market.max_ts,
        },
        social: SourceReader {
            input: social_rx,
            reads: Some(social_reads_tx),
            resume_max_ts: resumed.social.max_ts,
        },
    };
    let job = Job::start(JobSpec {
        config,
        topology,
        reader,
        bounded: false,
        resume_from: floors,
        output,
        durable: durable_tx,
    })?;

    let stop_pull = CancellationToken::new();
    let mut pulls = Vec::new();
    let mut senders = [Some(market_tx), Some(social_tx)];
    for (src, consumer) in consumers {
        let Some(tx) = senders[src.index()].take() else {
            continue;
        };
        let options = PullOptions::live(
            &config.consumer,
            config.operators.idle_timeout_ms,
            origin.clone(),
            resumed.of(src).max_ts,
        );
        pulls.push(tokio::spawn(source::run_consumer(
            js.clone(),
            streams.clone(),
            consumer,
            src,
            tx,
            stop_pull.clone(),
            options,
        )));
    }
    // Processes other than 0 read nothing, but keep their (empty) inputs
    // open: a live pipeline's windows never close because its input ended.
    let _idle_inputs = senders;
    tracing::info!(
        process = topology.process,
        processes = topology.processes(),
        workers = config.workers,
        "pipeline running"
    );

    // Run until asked to stop, or until a part fails on its own.
    let mut failed = None;
    tokio::select! {
        () = shutdown.cancelled() => {}
        (ended, result) = wait_any(&mut pulls) => {
            drop(pulls.remove(ended));
            match result {
                Ok(Ok(())) => tracing::error!("a consumer ended"),
                Ok(Err(e)) => tracing::error!(error = %e, "a consumer failed"),
                Err(_) => tracing::error!("a consumer task panicked"),
            }
            failed = Some("a consumer");
        }
    }
    if let Some(part) = failed {
        tracing::error!(part, "stopping the pipeline: a part ended unexpectedly");
    }
    tracing::info!("stopping the consumers");
    stop_pull.cancel();
    for pull in pulls {
        match pull.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "consumer failed"),
            Err(_) => tracing::error!("consumer task panicked"),
        }
    }
    tracing::info!("stopping the workers");
    job.stop_workers();
    let finished = job.finish().await;
    tracing::info!("workers and output task done; checkpoints recorded");
    let checkpoints = checkpoints
        .await
        .map_err(|_| PipelineError::Crashed("the checkpoint task"))?;
    finished?;
    if let Some(part) = failed {
        return Err(PipelineError::Crashed(part));
    }
    Ok(RunReport {
        resumed,
        checkpoints,
        elapsed: started.elapsed(),
    })
}

/// Resolves with the index of the first of `tasks` to end (never, if there
/// are none). That task must not be awaited again.
async fn wait_any<T>(
    tasks: &mut [tokio::task::JoinHandle<T>],
) -> (usize, Result<T, tokio::task::JoinError>) {
    if tasks.is_empty() {
        std::future::pending::<()>().await;
    }
    let (result, index, _) = futures::future::select_all(tasks.iter_mut()).await;
    (index, result)
}
