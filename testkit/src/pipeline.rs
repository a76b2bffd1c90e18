//! The pipeline's input and settings in tests: the recorded trades and
//! posts ([`publish_recorded`]), a seeded synthetic [`Backlog`], settings
//! for a quick run ([`config`]) and a run in this process until its results
//! are durable ([`run_until_durable`]).

use insite_ingest::{publish_files, run_synthetic, FilesConfig, SyntheticConfig};
use insite_pipeline::{Connections, PipelineConfig, RunReport};
use insite_schemas::TimestampMs;
use tokio_util::sync::CancellationToken;

use crate::results::wait_durable;
use crate::service::start_pipeline;
use crate::{fixtures, TestEnv};

/// Settings of a run called `name`: its own durable consumers and frontier
/// record, a quick idle timeout (windows close soon after the input is
/// consumed) and quick flushes.
pub fn config(name: &str) -> PipelineConfig {
    let mut config = PipelineConfig {
        name: name.to_owned(),
        ..PipelineConfig::default()
    };
    config.consumer.market_durable = format!("{name}-market");
    config.consumer.social_durable = format!("{name}-social");
    config.operators.idle_timeout_ms = 1_000;
    // An idle stream's clock runs 1,000 times faster than the wall clock,
    // so that the last 5-minute windows of a test's input close in well
    // under a second of quiet (live, it runs at wall-clock rate).
    config.consumer.idle_speed = 1_000.0;
    config.consumer.idle_tick_ms = 100;
    config.clickhouse_writer.max_age_ms = 100;
    config
}

/// The recorded trades (`fixtures/pipeline/trades.csv`, 3,000 of them).
pub const RECORDED_TRADES: &str = "pipeline/trades.csv";
/// The recorded posts (`fixtures/pipeline/posts.jsonl`, 400 of them).
pub const RECORDED_POSTS: &str = "pipeline/posts.jsonl";
/// 2026-01-05T14:30:00Z, where the recorded input starts; it spans 7 minutes.
pub const RECORDED_START_MS: TimestampMs = 1_767_623_400_000;
/// Past the end of every window the recorded input touches (5 m tumbling
/// windows and 5 m windows sliding by 1 m).
pub const RECORDED_DONE_MS: TimestampMs = RECORDED_START_MS + 13 * 60_000;

/// Publishes the recorded trades and posts to the test's streams, as
/// `insite ingest files` does, and returns [`RECORDED_DONE_MS`].
///
/// # Panics
/// If publishing fails or a line is rejected.
pub async fn publish_recorded(env: &TestEnv) -> TimestampMs {
    let report = publish_files(
        &env.jetstream().await,
        &env.connections.nats.streams,
        FilesConfig {
            trades: Some(fixtures::file(RECORDED_TRADES)),
            posts: Some(fixtures::file(RECORDED_POSTS)),
            ..FilesConfig::default()
        },
        CancellationToken::new(),
    )
    .await
    .expect("replaying the recorded input to JetStream");
    assert_eq!(report.rejected, 0, "{report:?}");
    RECORDED_DONE_MS
}

/// A seeded synthetic feed of trades, quotes and posts over 20 symbols, at
/// [`Backlog::RATE`] events per second of event time.
#[derive(Debug, Clone, Copy)]
pub struct Backlog {
    /// The simulator's seed.
    pub seed: u64,
    /// How many events.
    pub events: u64,
    /// Event time of the first event.
    pub start_ms: TimestampMs,
    /// Events arrive out of order within this much event time.
    pub jitter_ms: u64,
}

impl Backlog {
    /// Events per second of event time.
    pub const RATE: f64 = 2_000.0;

    /// Publishes the backlog to the test's streams (at full speed) and
    /// returns the event time past every window it touches.
    ///
    /// # Panics
    /// If publishing fails or an event is rejected.
    pub async fn publish(self, env: &TestEnv) -> TimestampMs {
        let config = SyntheticConfig {
            seed: self.seed,
            symbols: 20,
            rate: Self::RATE,
            max_speed: true,
            count: Some(self.events),
            start_ms: self.start_ms,
            posts_per_s: 50.0,
            jitter_ms: self.jitter_ms,
            ..SyntheticConfig::default()
        };
        let report = run_synthetic(
            &env.jetstream().await,
            &env.connections.nats.streams,
            config,
            CancellationToken::new(),
        )
        .await
        .expect("publishing the synthetic feed");
        assert_eq!(report.rejected, 0, "{report:?}");
        self.start_ms + (self.events as f64 / Self::RATE * 1_000.0) as i64 + 11 * 60_000
    }
}

/// Runs the pipeline with `config` on `connections` in this process until
/// its results are durable through `through`, then stops it and returns its
/// report.
///
/// # Panics
/// If the run fails or is not durable in time.
pub async fn run_until_durable(
    connections: &Connections,
    config: &PipelineConfig,
    through: TimestampMs,
) -> RunReport {
    let pipeline = start_pipeline(connections, config);
    wait_durable(&connections.clickhouse, &config.name, through).await;
    pipeline.stop().await
}

/// Waits until a pipeline started in the test has created its streams and
/// its market consumer `durable` (so that what is published from now on is
/// read).
///
/// # Panics
/// If it does not within a minute.
pub async fn wait_running(env: &TestEnv, durable: &str) {
    let js = env.jetstream().await;
    let market = env.connections.nats.streams.market.clone();
    crate::wait::eventually(std::time::Duration::from_secs(60), async || {
        match js.get_stream(&market).await {
            Ok(stream) => stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(durable)
                .await
                .is_ok(),
            Err(_) => false,
        }
    })
    .await
    .expect("the pipeline starts");
}

/// An output task running on a tokio task of its own, as the pipeline
/// runs it: the sender of its input, the durable frontiers it reports, and
/// its end.
pub struct RunningOutput {
    /// The dataflow's side: results, raw events and progress.
    pub input: tokio::sync::mpsc::Sender<insite_pipeline::output::WorkerOutput>,
    /// The durable frontier per input stream (`i64::MIN`: none yet).
    pub durable: tokio::sync::watch::Receiver<[TimestampMs; 2]>,
    /// The task; ends once its input closes and everything is written.
    pub done: tokio::task::JoinHandle<Result<(), insite_pipeline::output::OutputError>>,
}

/// Spawns `task` with an input channel of `capacity` batches.
pub fn spawn_output(task: insite_pipeline::output::OutputTask, capacity: usize) -> RunningOutput {
    let (input, rx) = tokio::sync::mpsc::channel(capacity);
    let (durable_tx, durable) = tokio::sync::watch::channel([i64::MIN; 2]);
    RunningOutput {
        input,
        durable,
        done: tokio::spawn(task.run(rx, durable_tx)),
    }
}
