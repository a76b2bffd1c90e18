//! What the pipeline's process-level tests share: a seeded synthetic
//! backlog, per-run services and settings, and an in-process reference run.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use insite_ingest::{run_synthetic, SyntheticConfig};
use insite_pipeline::{Connections, PipelineConfig, RunConfig};
use insite_testkit::results::wait_durable;
use insite_testkit::TestEnv;

/// Synthetic events per second of event time.
pub const RATE: f64 = 2_000.0;

/// Publishes `count` seeded synthetic events (trades, quotes, posts) from
/// event time `start_ms`, delivered out of order within `jitter_ms`, and
/// returns the event time past every window they touch.
pub async fn publish(env: &TestEnv, seed: u64, count: u64, start_ms: i64, jitter_ms: u64) -> i64 {
    let js = env.jetstream().await;
    let config = SyntheticConfig {
        seed,
        symbols: 20,
        rate: RATE,
        max_speed: true,
        count: Some(count),
        start_ms,
        posts_per_s: 50.0,
        jitter_ms,
        ..SyntheticConfig::default()
    };
    let report = run_synthetic(
        &js,
        &env.connections.nats.streams,
        config,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("publishing the synthetic feed");
    assert_eq!(report.rejected, 0);
    start_ms + (count as f64 / RATE * 1_000.0) as i64 + 11 * 60_000
}

/// The test's servers, with results in `database`.
pub fn services(env: &TestEnv, database: &str) -> Connections {
    let mut services = env.connections.clone();
    services.clickhouse.database = database.to_owned();
    services
}

/// Settings of a run called `name`: its own durable consumers and frontier
/// record, a quick idle timeout and quick flushes.
pub fn config(name: &str) -> PipelineConfig {
    let mut config = PipelineConfig {
        name: name.to_owned(),
        ..PipelineConfig::default()
    };
    config.consumer.market_durable = format!("{name}-market");
    config.consumer.social_durable = format!("{name}-social");
    config.operators.idle_timeout_ms = 1_000;
    config.clickhouse_writer.max_age_ms = 100;
    config
}

/// Runs the pipeline in this process until it is durable through `done`.
pub async fn run_in_process(services: &Connections, config: &PipelineConfig, done: i64) {
    let stop = tokio_util::sync::CancellationToken::new();
    let running = {
        let run = RunConfig::new(services.clone(), config.clone());
        let stop = stop.clone();
        tokio::spawn(async move { insite_pipeline::run(&run, stop).await })
    };
    wait_durable(&services.clickhouse, &config.name, done).await;
    stop.cancel();
    running.await.unwrap().expect("in-process pipeline");
}
