//! The worker pool of a job: `timely::execute`, the reader handed to the
//! first worker of the process, the step loop and the stop flag, beside the
//! output task the workers send to.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use insite_schemas::{Post, TimestampMs, Trade};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Reader, SourceReader};
use crate::config::PipelineConfig;
use crate::output::{OutputError, OutputTask};
use crate::run::{PipelineError, Topology};
use crate::source::{InputMessage, InputSource};

/// Everything a job starts from.
pub(crate) struct JobSpec<'a> {
    /// The `[pipeline]` section: workers, buffers, operators, input settings.
    pub config: &'a PipelineConfig,
    /// This process's place in the timely cluster.
    pub topology: &'a Topology,
    /// The process's input, for its first worker.
    pub reader: Reader,
    /// Whether the input ends (a replay: every window closes at its end).
    pub bounded: bool,
    /// Each stream's durable frontier of an earlier run (MARKET, SOCIAL):
    /// windowed results stamped before it are dropped ([`super::output`]).
    pub resume_from: [TimestampMs; 2],
    /// The output task the workers send their results to.
    pub output: OutputTask,
    /// Where the output task reports each new durable frontier, per stream.
    pub durable: watch::Sender<[TimestampMs; 2]>,
}

/// A running job: the output task and the timely workers.
pub(crate) struct Job {
    /// Tells the workers to stop where they are.
    stop: Arc<AtomicBool>,
    /// The output task.
    output: JoinHandle<Result<(), OutputError>>,
    /// The worker threads.
    workers: JoinHandle<Result<(), PipelineError>>,
}

impl Job {
    /// Starts the output task and the timely workers. In a cluster this
    /// returns once timely has connected every process.
    pub(crate) fn start(spec: JobSpec<'_>) -> Result<Self, PipelineError> {
        let JobSpec {
            config,
            topology,
            reader,
            bounded,
            resume_from,
            output,
            durable,
        } = spec;
        let (output_tx, output_rx) = mpsc::channel(config.output_buffer.max(1));
        let output = tokio::spawn(output.run(output_rx, durable));
        let stop = Arc::new(AtomicBool::new(false));
        let workers_per_process = config.workers.max(1);
        let reader = Arc::new(Mutex::new(Some(reader)));
        let settings = config.input_settings(bounded);
        let operators = config.operators.clone();
        let worker_stop = Arc::clone(&stop);
        let guards = timely::execute(
            timely_config(topology, workers_per_process),
            move |worker| {
                let local = worker.index() % workers_per_process;
                // The one reader of the pipeline: the first worker of process 0.
                let reader = if worker.index() == 0 {
                    reader.lock().ok().and_then(|mut r| r.take())
                } else {
                    None
                };
                let (market_reader, social_reader) = match reader {
                    Some(Reader { market, social }) => (Some(market), Some(social)),
                    None => (None, None),
                };
                {
                    let (settings, operators) = (settings.clone(), operators.clone());
                    let (tx, stop) = (output_tx.clone(), Arc::clone(&worker_stop));
                    worker.dataflow::<TimestampMs, _, _>(move |scope| {
                        let trades = super::input::<Trade>(
                            scope,
                            market_reader,
                            settings,
                            tx.clone(),
                            Arc::clone(&stop),
                        );
                        let outputs = insite_operators::build_market(trades, &operators);
                        let results = super::market_results(outputs);
                        let floor = resume_from[InputSource::Market.index()];
                        super::output(scope, results, tx, InputSource::Market, local, floor, stop);
                    });
                }
                let (settings, operators) = (settings.clone(), operators.clone());
                let (tx, stop) = (output_tx.clone(), Arc::clone(&worker_stop));
                worker.dataflow::<TimestampMs, _, _>(move |scope| {
                    let posts = super::input::<Post>(
                        scope,
                        social_reader,
                        settings,
                        tx.clone(),
                        Arc::clone(&stop),
                    );
                    let outputs = insite_operators::build_social(posts, &operators);
                    let results = super::social_results(outputs);
                    let floor = resume_from[InputSource::Social.index()];
                    super::output(scope, results, tx, InputSource::Social, local, floor, stop);
                });
                while !worker_stop.load(Ordering::SeqCst)
                    && worker.step_or_park(Some(Duration::from_millis(10)))
                {}
                // Stopped where it is: open windows are abandoned (their
                // input is not acknowledged and comes again on restart).
                for dataflow in worker.installed_dataflows() {
                    worker.drop_dataflow(dataflow);
                }
            },
        )
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

    /// Starts a bounded job in this one process over `market` and `social`
    /// (a replay or a backfill): nothing is checkpointed, and every window
    /// closes when both inputs end.
    pub(crate) fn start_bounded(
        config: &PipelineConfig,
        market: mpsc::Receiver<InputMessage>,
        social: mpsc::Receiver<InputMessage>,
        output: OutputTask,
        durable: watch::Sender<[TimestampMs; 2]>,
    ) -> Result<Self, PipelineError> {
        let unread = |input| SourceReader {
            input,
            reads: None,
            resume_max_ts: None,
        };
        Self::start(JobSpec {
            config,
            topology: &Topology::single(),
            reader: Reader {
                market: unread(market),
                social: unread(social),
            },
            bounded: true,
            resume_from: [TimestampMs::MIN; 2],
            output,
            durable,
        })
    }

    /// The flag [`Job::stop_workers`] sets, for a task that stops the job
    /// while another awaits [`Job::finish`].
    pub(crate) fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Stops the workers where they are.
    pub(crate) fn stop_workers(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for the workers, then the output task.
    pub(crate) async fn finish(self) -> Result<(), PipelineError> {
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

/// Timely's configuration for `workers` threads in this process of
/// `topology`.
fn timely_config(topology: &Topology, workers: usize) -> timely::Config {
    let workers = workers.max(1);
    let communication = if topology.processes() > 1 {
        timely::CommunicationConfig::Cluster {
            threads: workers,
            process: topology.process,
            addresses: topology.hosts.clone(),
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
