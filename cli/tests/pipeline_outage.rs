//! The pipeline while ClickHouse, then Redis, is stopped mid-run: it keeps
//! running, stops pulling input once its bounded buffers are full (memory
//! stays bounded), and once the server is back it ends with exactly the
//! tables of an uninterrupted run.
//!
//! Its own test binary, so that stopping this process's test servers
//! disturbs no other test.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::time::Duration;

use insite_local::server::ServerKind;
use insite_pipeline::PipelineConfig;
use insite_testkit::pipeline::{config, run_until_durable, Backlog};
use insite_testkit::results::{
    assert_bars_equal, assert_sentiment_equal, read_bars, read_sentiment, wait_durable,
};
use insite_testkit::service::start_pipeline;
use insite_testkit::wait::eventually;
use insite_testkit::{servers, TestEnv};

/// 2026-01-07T15:00:00Z.
const START_MS: i64 = 1_767_798_000_000;
const EVENTS: u64 = 200_000;

/// Small buffers everywhere, so that an outage fills them quickly.
fn small_buffers(name: &str) -> PipelineConfig {
    let mut config = PipelineConfig {
        input_buffer: 32,
        output_buffer: 16,
        ..config(name)
    };
    config.clickhouse_writer.max_rows = 2_000;
    config.clickhouse_writer.capacity_rows = 5_000;
    config.clickhouse_writer.retry_max_ms = 500;
    config
}

/// The consumer's messages not yet delivered, and those delivered (`None`
/// while the consumer does not exist).
async fn backlog(env: &TestEnv, durable: &str) -> Option<(u64, u64)> {
    let info = env
        .consumer_info(&env.connections.nats.streams.market, durable)
        .await?;
    Some((info.num_pending, info.delivered.stream_sequence))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_then_redis_down_mid_run_loses_nothing_and_holds_memory() {
    if servers().local.is_none() {
        eprintln!("skipped: stopping servers needs the harness's own servers");
        return;
    }
    let env = TestEnv::new("pipeline_outage");
    let done = Backlog {
        seed: 11,
        events: EVENTS,
        start_ms: START_MS,
        jitter_ms: 300,
    }
    .publish(&env)
    .await;

    // The uninterrupted run.
    let straight = env.with_database("straight");
    run_until_durable(&straight, &small_buffers("straight"), done).await;
    let want_bars = read_bars(&straight.clickhouse).await;
    let want_sentiment = read_sentiment(&straight.clickhouse).await;

    // The same input, with ClickHouse stopped once the run is under way.
    let outage = env.connections.clone();
    let outage_config = small_buffers("outage");
    let running = start_pipeline(&outage, &outage_config);
    // ClickHouse goes down as soon as the pipeline starts pulling.
    let durable = &outage_config.consumer.market_durable;
    eventually(Duration::from_secs(60), async || {
        backlog(&env, durable)
            .await
            .is_some_and(|(_, delivered)| delivered > 0)
    })
    .await
    .expect("the pipeline never pulled");
    servers().stop(ServerKind::ClickHouse);
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
    servers().restart(ServerKind::ClickHouse);

    // Then Redis, for a while: ClickHouse results are not held up by it.
    servers().stop(ServerKind::Redis);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!running.is_finished());
    servers().restart(ServerKind::Redis);

    wait_durable(&outage.clickhouse, "outage", done).await;
    running.stop().await;

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
