//! The pipeline while ClickHouse, then Redis, is stopped mid-run: it keeps
//! running, stops pulling input once its bounded buffers are full (memory
//! stays bounded), and once the server is back it ends with exactly the
//! tables of an uninterrupted run.
//!
//! Its own test binary, so that stopping this process's test servers
//! disturbs no other test.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
mod common;

use common::services;
use insite_local::server::{self, ServerKind};
use insite_pipeline::{PipelineConfig, RunConfig};
use insite_testkit::results::{
    assert_bars_equal, assert_sentiment_equal, read_bars, read_sentiment, wait_durable,
};
use insite_testkit::TestEnv;

/// 2026-01-07T15:00:00Z.
const START_MS: i64 = 1_767_798_000_000;
const EVENTS: u64 = 200_000;

/// Small buffers everywhere, so that an outage fills them quickly.
fn small_buffers(name: &str) -> PipelineConfig {
    let mut config = PipelineConfig {
        input_buffer: 32,
        output_buffer: 16,
        ..common::config(name)
    };
    config.clickhouse_writer.max_rows = 2_000;
    config.clickhouse_writer.capacity_rows = 5_000;
    config.clickhouse_writer.retry_max_ms = 500;
    config
}

/// The consumer's messages not yet delivered, and those delivered (`None`
/// while the consumer does not exist).
async fn backlog(env: &TestEnv, durable: &str) -> Option<(u64, u64)> {
    let js = env.jetstream().await;
    let mut consumer: PullConsumer = js
        .get_stream(&env.connections.nats.streams.market)
        .await
        .unwrap()
        .get_consumer(durable)
        .await
        .ok()?;
    let info = consumer.info().await.ok()?;
    Some((info.num_pending, info.delivered.stream_sequence))
}

fn restart(env: &TestEnv, kind: ServerKind) {
    let local = insite_testkit::servers()
        .local
        .as_ref()
        .expect("this test stops and starts its own servers");
    let binaries = insite_local::ensure_installed(&local.tools_dir).unwrap();
    server::start(local, &binaries, kind, &mut |_| {}).unwrap();
    server::wait_healthy(local, kind, Duration::from_secs(60)).unwrap();
    let _ = env;
}

fn stop(kind: ServerKind) {
    let local = insite_testkit::servers().local.as_ref().unwrap();
    server::stop(local, kind).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_then_redis_down_mid_run_loses_nothing_and_holds_memory() {
    if std::env::var("INSITE_TEST_CLICKHOUSE_URL").is_ok() {
        eprintln!("skipped: stopping servers needs the harness's own servers");
        return;
    }
    let env = TestEnv::new("pipeline_outage");
    let done = common::publish(&env, 11, EVENTS, START_MS, 300).await;

    // The uninterrupted run.
    let straight = services(
        &env,
        &format!("{}_straight", env.connections.clickhouse.database),
    );
    common::run_in_process(&straight, &small_buffers("straight"), done).await;
    let want_bars = read_bars(&straight.clickhouse).await;
    let want_sentiment = read_sentiment(&straight.clickhouse).await;

    // The same input, with ClickHouse stopped once the run is under way.
    let outage = services(&env, &env.connections.clickhouse.database);
    let outage_config = small_buffers("outage");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = {
        let run = RunConfig::new(outage.clone(), outage_config.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move { insite_pipeline::run(&run, shutdown).await })
    };
    // ClickHouse goes down as soon as the pipeline starts pulling.
    let durable = &outage_config.consumer.market_durable;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while backlog(&env, durable)
        .await
        .is_none_or(|(_, delivered)| delivered == 0)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pipeline never pulled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop(ServerKind::ClickHouse);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (held_back, _) = backlog(&env, durable).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (still_held_back, _) = backlog(&env, durable).await.unwrap();
    assert!(
        !running.is_finished(),
        "the pipeline must ride out the outage"
    );
    // Back-pressure: with its buffers full, the pipeline stopped pulling.
    assert!(held_back > 0, "the whole stream was pulled into memory");
    assert_eq!(
        held_back, still_held_back,
        "the pipeline kept pulling while ClickHouse was down"
    );
    restart(&env, ServerKind::ClickHouse);

    // Then Redis, for a while: ClickHouse results are not held up by it.
    stop(ServerKind::Redis);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!running.is_finished());
    restart(&env, ServerKind::Redis);

    wait_durable(&outage.clickhouse, "outage", done).await;
    shutdown.cancel();
    running
        .await
        .unwrap()
        .expect("pipeline through the outages");

    assert_bars_equal(
        &read_bars(&outage.clickhouse).await,
        &want_bars,
        "through the outages vs uninterrupted",
    );
    assert_sentiment_equal(
        &read_sentiment(&outage.clickhouse).await,
        &want_sentiment,
        "through the outages vs uninterrupted",
    );
    // Redis holds hot state again after its restart (the sink kept what
    // it could not write and wrote it once Redis was back).
    let mut redis = env.redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*:trade", env.connections.redis.key_prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        !keys.is_empty(),
        "no latest-trade keys after Redis came back"
    );
}
