//! Running the job: the start-up order and the shutdown of the live
//! pipeline ([`run`]) and of replays of a stream range ([`replay`]). Both
//! start one job (`bridge::Job`: the timely workers and the output task);
//! consumers feed its input channel, the output task writes ClickHouse,
//! Redis and NATS, and (live only) the ack task acknowledges what is
//! durable.
//!
//! ## Start-up order of a live pipeline
//! 1. Streams are created or checked, migrations applied.
//! 2. The durable frontier of an earlier run is read ([`crate::resume`]).
//! 3. The first process recreates the durable consumers above their ack
//!    floors, so every unacknowledged message comes again at once.
//! 4. The timely workers start; in a cluster this waits until every process
//!    is connected, so the other processes join the consumers only after the
//!    first one has recreated them.
//! 5. The consumers start pulling.
//!
//! ## Shutdown
//! On the shutdown signal the consumers stop, the workers stop where they
//! are (open windows are *not* closed: their input is simply not
//! acknowledged and comes again on restart), the output task writes what it
//! has, and the ack task acknowledges what that made durable.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer};
pub use insite_schemas::config::Connections;
use insite_schemas::config::StreamsConfig;
use insite_schemas::TimestampMs;
use insite_sinks::clickhouse::{self as ch, MigrateError};
use insite_sinks::redis::RedisSinkError;
use insite_sinks::streams::{ensure_streams, StreamSetupError};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::acks::{run_acks, AckReport};
use crate::bridge::{Job, JobSpec, Reader};
use crate::config::PipelineConfig;
use crate::output::{LatencyRecorder, OutputError, OutputTask};
use crate::resume::{ProgressStore, ResumeError};
use crate::source::{
    self, ConsumerConfig, ConsumerStart, InputMessage, InputSource, PullOptions, SourceError,
    StreamRange,
};

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
    /// The latency histogram could not be created.
    #[error("creating the latency histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// The durable frontier an earlier run had recorded.
    pub resumed_from: Option<TimestampMs>,
    /// Acknowledgements.
    pub acks: AckReport,
    /// Wall-clock duration.
    pub elapsed: Duration,
}

/// Connects to NATS as `name` and opens JetStream.
async fn jetstream(
    services: &Connections,
    name: &str,
) -> Result<jetstream::Context, PipelineError> {
    let client = insite_sinks::nats::connect(&services.nats, name).await?;
    Ok(jetstream::new(client))
}

/// Binds to the durable consumer of every input source (see
/// [`ConsumerStart`]).
async fn durable_consumers(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    config: &ConsumerConfig,
    start: ConsumerStart,
) -> Result<Vec<(InputSource, PullConsumer)>, SourceError> {
    let mut consumers = Vec::new();
    for src in [InputSource::Market, InputSource::Social] {
        consumers.push((
            src,
            source::consumer(js, streams, config, src, start).await?,
        ));
    }
    Ok(consumers)
}

/// Runs the live pipeline until `shutdown` is cancelled.
pub async fn run(run: &RunConfig, shutdown: CancellationToken) -> Result<RunReport, PipelineError> {
    let (services, config, topology) = (&run.connections, &run.pipeline, &run.topology);
    let latency = run.latency.clone();
    let started = Instant::now();
    let js = jetstream(services, "insite-pipeline").await?;
    let streams = &services.nats.streams;
    ensure_streams(&js, streams).await?;
    ch::migrate(&services.clickhouse).await?;
    let store = ProgressStore::new(
        ch::connect(&services.clickhouse),
        config.name.clone(),
        topology.process,
        topology.processes(),
    );
    let resumed_from = store.load().await?;
    let floor = resumed_from.unwrap_or(TimestampMs::MIN);
    tracing::info!(pipeline = %config.name, ?resumed_from, "durable frontier of the earlier run");

    // The first process recreates the consumers before timely connects the
    // others; they join them once the workers are up.
    let first = topology.process == 0;
    let mut consumers = if first {
        durable_consumers(&js, streams, &config.consumer, ConsumerStart::Resume).await?
    } else {
        Vec::new()
    };

    let (input_tx, input_rx) = mpsc::channel::<InputMessage>(config.input_buffer.max(1));
    let (holds_tx, holds_rx) = mpsc::unbounded_channel();
    let (durable_tx, durable_rx) = watch::channel(floor);
    let mut output = OutputTask::connect(services, config, &js, true)
        .await?
        .with_progress(store, floor);
    if let Some(latency) = latency {
        output = output.with_latency(latency);
    }
    let acks = tokio::spawn(run_acks(holds_rx, durable_rx, floor));
    let backlog = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let reader = Reader {
        input: input_rx,
        holds: Some(holds_tx),
        backlog: backlog.clone(),
    };
    let job = Job::start(JobSpec {
        config,
        topology,
        reader,
        bounded: false,
        resume_from: floor,
        output,
        durable: durable_tx,
    })?;

    if !first {
        consumers = durable_consumers(&js, streams, &config.consumer, ConsumerStart::Join).await?;
    }
    let stop_pull = CancellationToken::new();
    let mut pulls = Vec::new();
    for (src, consumer) in consumers {
        let backlog = Arc::clone(&backlog[src.index()]);
        pulls.push(tokio::spawn(source::run_consumer(
            js.clone(),
            streams.clone(),
            consumer,
            src,
            input_tx.clone(),
            stop_pull.clone(),
            PullOptions::live().with_backlog(backlog),
        )));
    }
    drop(input_tx);
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
    tracing::info!("workers and output task done; acknowledging what is durable");
    let acks = acks
        .await
        .map_err(|_| PipelineError::Crashed("the ack task"))?;
    finished?;
    if let Some(part) = failed {
        return Err(PipelineError::Crashed(part));
    }
    Ok(RunReport {
        resumed_from,
        acks,
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

/// What to replay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplaySpec {
    /// The range of MARKET (`None`: skip MARKET).
    pub market: Option<StreamRange>,
    /// The range of SOCIAL (`None`: skip SOCIAL).
    pub social: Option<StreamRange>,
    /// Also write Redis and publish to DERIVED (off by default: a replay
    /// rebuilds history, and live readers want live state).
    pub hot: bool,
    /// Draw a progress bar on stderr.
    pub progress_bar: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Messages read.
    pub messages: u64,
    /// Events in them.
    pub events: u64,
    /// Wall-clock duration.
    pub elapsed: Duration,
}

/// Re-runs the dataflow over stream ranges into `services.clickhouse`'s
/// database (the live one, or another), then returns. Windows that lie
/// wholly inside the ranges get exactly the results of the live run.
pub async fn replay(
    services: &Connections,
    config: &PipelineConfig,
    spec: &ReplaySpec,
) -> Result<ReplayReport, PipelineError> {
    let started = Instant::now();
    let js = jetstream(services, "insite-replay").await?;
    let streams = &services.nats.streams;
    ch::migrate(&services.clickhouse).await?;

    let (fwd_tx, mut fwd_rx) = mpsc::channel::<InputMessage>(config.input_buffer.max(1));
    let stop_pull = CancellationToken::new();
    let mut pulls = Vec::new();
    let mut total = 0u64;
    let backlog = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    for (src, range) in [
        (InputSource::Market, spec.market),
        (InputSource::Social, spec.social),
    ] {
        let Some(range) = range else { continue };
        let (mut consumer, end) = source::replay_consumer(&js, streams, src, range).await?;
        let pending = consumer
            .info()
            .await
            .map(|info| info.num_pending)
            .unwrap_or_default();
        total += pending;
        let options = PullOptions {
            dead_letter: false,
            end_seq: Some(if pending == 0 { 0 } else { end }),
            end_time_ms: range.to_time_ms,
            backlog: Some(Arc::clone(&backlog[src.index()])),
        };
        pulls.push(tokio::spawn(source::run_consumer(
            js.clone(),
            streams.clone(),
            consumer,
            src,
            fwd_tx.clone(),
            stop_pull.clone(),
            options,
        )));
    }
    drop(fwd_tx);

    let (input_tx, input_rx) = mpsc::channel(config.input_buffer.max(1));
    let (durable_tx, _durable_rx) = watch::channel(TimestampMs::MIN);
    let output = OutputTask::connect(services, config, &js, spec.hot).await?;
    let reader = Reader {
        input: input_rx,
        holds: None,
        backlog,
    };
    let job = Job::start(JobSpec {
        config,
        topology: &Topology::single(),
        reader,
        bounded: true,
        resume_from: TimestampMs::MIN,
        output,
        durable: durable_tx,
    })?;

    let bar = spec.progress_bar.then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} messages ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let mut report = ReplayReport::default();
    while let Some(message) = fwd_rx.recv().await {
        report.messages += 1;
        report.events += message.events.len() as u64;
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        if input_tx.send(message).await.is_err() {
            break;
        }
    }
    drop(input_tx);
    stop_pull.cancel();
    for pull in pulls {
        pull.await
            .map_err(|_| PipelineError::Crashed("a replay consumer"))??;
    }
    if let Some(bar) = &bar {
        bar.finish_with_message("read");
    }
    job.finish().await?;
    report.elapsed = started.elapsed();
    Ok(report)
}
