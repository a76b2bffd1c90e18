//! Running the job: the live pipeline ([`run`]) and replays of a stream
//! range ([`replay`]) share one machinery ([`Job`]): consumers feed the
//! input channel, timely workers run the operators, the output task writes
//! ClickHouse, Redis and NATS, and (live only) the ack task acknowledges
//! what is durable.
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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
pub use insite_schemas::config::Connections;
use insite_schemas::TimestampMs;
use insite_sinks::clickhouse::{self as ch, MigrateError};
use insite_sinks::nats::DerivedPublisher;
use insite_sinks::redis::{RedisSink, RedisSinkError};
use insite_sinks::streams::{ensure_streams, StreamSetupError};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::acks::{run_acks, AckReport};
use crate::bridge::{self, Reader};
use crate::config::PipelineConfig;
use crate::output::{LatencyRecorder, OutputError, OutputTask, WorkerOutput};
use crate::resume::{ProgressStore, ResumeError};
use crate::source::{
    self, ConsumerStart, InputMessage, InputSource, PullOptions, SourceError, StreamRange,
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

    fn timely_config(&self, workers: usize) -> timely::Config {
        let workers = workers.max(1);
        let communication = if self.processes() > 1 {
            timely::CommunicationConfig::Cluster {
                threads: workers,
                process: self.process,
                addresses: self.hosts.clone(),
                report: false,
                zerocopy: false,
            }
        } else if workers == 1 {
            timely::CommunicationConfig::Thread
        } else {
            timely::CommunicationConfig::Process(workers)
        };
        timely::Config {
            communication,
            worker: timely::WorkerConfig::default(),
        }
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

/// The parts every job shares, started in order.
struct Job {
    /// Tells the workers to stop where they are.
    stop: Arc<AtomicBool>,
    /// The output task.
    output: tokio::task::JoinHandle<Result<(), OutputError>>,
    /// The worker threads.
    workers: tokio::task::JoinHandle<Result<(), PipelineError>>,
}

impl Job {
    /// Starts the output task and the timely workers. `reader` goes to the
    /// first worker of this process.
    #[allow(clippy::too_many_arguments)]
    fn start(
        config: &PipelineConfig,
        topology: &Topology,
        reader: Reader,
        bounded: bool,
        resume_from: TimestampMs,
        output_task: OutputTask,
        output_rx: mpsc::Receiver<WorkerOutput>,
        output_tx: mpsc::Sender<WorkerOutput>,
        durable_tx: watch::Sender<TimestampMs>,
    ) -> Result<Self, PipelineError> {
        let output = tokio::spawn(output_task.run(output_rx, durable_tx));
        let stop = Arc::new(AtomicBool::new(false));
        let workers_per_process = config.workers.max(1);
        let reader = Arc::new(Mutex::new(Some(reader)));
        let settings = config.input_settings(bounded);
        let operators = config.operators.clone();
        let worker_stop = Arc::clone(&stop);
        let guards = timely::execute(topology.timely_config(workers_per_process), move |worker| {
            let local = worker.index() % workers_per_process;
            let reader = if local == 0 {
                reader.lock().ok().and_then(|mut r| r.take())
            } else {
                None
            };
            let (settings, operators) = (settings.clone(), operators.clone());
            let (tx, stop) = (output_tx.clone(), Arc::clone(&worker_stop));
            worker.dataflow::<TimestampMs, _, _>(move |scope| {
                let (trades, posts) =
                    bridge::input(scope, reader, settings, tx.clone(), Arc::clone(&stop));
                let outputs = insite_operators::build_dataflow(trades, posts, &operators);
                bridge::output(scope, outputs, tx, local, resume_from, stop);
            });
            while !worker_stop.load(Ordering::SeqCst)
                && worker.step_or_park(Some(Duration::from_millis(10)))
            {}
            // Stopped where it is: open windows are abandoned (their
            // input is not acknowledged and comes again on restart).
            for dataflow in worker.installed_dataflows() {
                worker.drop_dataflow(dataflow);
            }
        })
        .map_err(PipelineError::Timely)?;
        let workers = tokio::task::spawn_blocking(move || {
            let results = guards.join();
            if results.iter().any(|r| r.is_err()) {
                Err(PipelineError::Crashed("a timely worker"))
            } else {
                Ok(())
            }
        });
        Ok(Self {
            stop,
            output,
            workers,
        })
    }

    /// Stops the workers where they are.
    fn stop_workers(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for the workers, then the output task.
    async fn finish(self) -> Result<(), PipelineError> {
        let workers = self
            .workers
            .await
            .map_err(|_| PipelineError::Crashed("the worker pool"))?;
        let output = self
            .output
            .await
            .map_err(|_| PipelineError::Crashed("the output task"))?;
        workers?;
        output?;
        Ok(())
    }
}

/// The output side's connections.
async fn output_task(
    services: &Connections,
    config: &PipelineConfig,
    js: &jetstream::Context,
    hot: bool,
) -> Result<OutputTask, PipelineError> {
    let clickhouse = ch::connect(&services.clickhouse);
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
    Ok(OutputTask::new(
        &clickhouse,
        &config.clickhouse_writer,
        redis,
        nats,
        config.workers.max(1),
        Duration::from_millis(config.hot_flush_ms.max(1)),
    ))
}

/// Runs the live pipeline until `shutdown` is cancelled.
pub async fn run(run: &RunConfig, shutdown: CancellationToken) -> Result<RunReport, PipelineError> {
    let (services, config, topology) = (&run.connections, &run.pipeline, &run.topology);
    let latency = run.latency.clone();
    let started = Instant::now();
    let client = insite_sinks::nats::connect(&services.nats, "insite-pipeline").await?;
    let js = jetstream::new(client);
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

    let first = topology.process == 0;
    let sources = [InputSource::Market, InputSource::Social];
    let mut consumers = Vec::new();
    if first {
        for src in sources {
            let consumer =
                source::consumer(&js, streams, &config.consumer, src, ConsumerStart::Resume)
                    .await?;
            consumers.push((src, consumer));
        }
    }

    let (input_tx, input_rx) = mpsc::channel::<InputMessage>(config.input_buffer.max(1));
    let (holds_tx, holds_rx) = mpsc::unbounded_channel();
    let (output_tx, output_rx) = mpsc::channel(config.output_buffer.max(1));
    let (durable_tx, durable_rx) = watch::channel(floor);
    let mut output = output_task(services, config, &js, true)
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
    let job = Job::start(
        config, topology, reader, false, floor, output, output_rx, output_tx, durable_tx,
    )?;

    if !first {
        for src in sources {
            let consumer =
                source::consumer(&js, streams, &config.consumer, src, ConsumerStart::Join).await?;
            consumers.push((src, consumer));
        }
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
    let client = insite_sinks::nats::connect(&services.nats, "insite-replay").await?;
    let js = jetstream::new(client);
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
    let (output_tx, output_rx) = mpsc::channel(config.output_buffer.max(1));
    let (durable_tx, _durable_rx) = watch::channel(TimestampMs::MIN);
    let output = output_task(services, config, &js, spec.hot).await?;
    let reader = Reader {
        input: input_rx,
        holds: None,
        backlog,
    };
    let job = Job::start(
        config,
        &Topology::single(),
        reader,
        true,
        TimestampMs::MIN,
        output,
        output_rx,
        output_tx,
        durable_tx,
    )?;

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
