//! The pipeline's output task: results reach ClickHouse, Redis and NATS,
//! and the durable frontier advances only once ClickHouse has them.

use std::time::Duration;

use async_nats::jetstream::stream;
use insite_pipeline::output::{OutputTask, WorkerOutput};
use insite_pipeline::source::InputSource;
use insite_schemas::{Finality, Interval};
use insite_sinks::clickhouse::{migrate, rows::BarRow, WriterConfig};
use insite_sinks::nats::DerivedPublisher;
use insite_sinks::redis::{RedisSink, RedisSinkConfig};
use insite_testkit::fixtures::bar;
use insite_testkit::TestEnv;
use redis::AsyncCommands;

#[tokio::test]
async fn writes_results_and_reports_the_durable_frontier() {
    let env = TestEnv::new("pipeline_output");
    migrate(&env.connections.clickhouse).await.unwrap();
    let js = env.jetstream().await;
    js.create_stream(stream::Config {
        name: env.connections.nats.streams.derived.clone(),
        subjects: vec![env.connections.nats.streams.subject("insite.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    let redis = RedisSink::connect(&env.connections.redis, RedisSinkConfig::default())
        .await
        .unwrap();
    let nats = DerivedPublisher::new(js.clone(), env.connections.nats.streams.clone(), 64);
    let writer = WriterConfig {
        max_age_ms: 20,
        ..WriterConfig::default()
    };
    let task = OutputTask::new(
        &env.clickhouse(),
        &writer,
        Some(redis),
        Some(nats),
        2,
        Duration::from_millis(20),
    );
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let (durable_tx, mut durable_rx) = tokio::sync::watch::channel([i64::MIN; 2]);
    let handle = tokio::spawn(task.run(rx, durable_tx));

    let t0 = 1_700_000_000_000;
    let second = |start| bar("AAPL", Interval::SECOND, start);
    tx.send(WorkerOutput::Bars(vec![second(t0)
        .finality(Finality::Provisional)
        .build()]))
        .await
        .unwrap();
    tx.send(WorkerOutput::Bars(vec![
        second(t0).build(),
        second(t0 + 1_000).build(),
    ]))
    .await
    .unwrap();
    tx.send(WorkerOutput::Progress {
        source: InputSource::Market,
        worker: 0,
        frontier: t0 + 2_000,
    })
    .await
    .unwrap();
    // Worker 1 lags: the durable frontier is the least of the two.
    tx.send(WorkerOutput::Progress {
        source: InputSource::Market,
        worker: 1,
        frontier: t0 + 1_000,
    })
    .await
    .unwrap();

    let durable = tokio::time::timeout(
        Duration::from_secs(10),
        durable_rx.wait_for(|frontiers| frontiers[0] >= t0 + 1_000),
    )
    .await
    .unwrap()
    .map(|frontiers| frontiers[0])
    .unwrap();
    assert_eq!(durable, t0 + 1_000);

    // Durable means in ClickHouse: both final bars, not the provisional one.
    let rows: Vec<BarRow> = env
        .clickhouse()
        .query("SELECT ?fields FROM bars FINAL ORDER BY window_start_ms")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.window_start_ms).collect::<Vec<_>>(),
        vec![t0 as u64, t0 as u64 + 1_000]
    );

    drop(tx);
    handle.await.unwrap().unwrap();
    let mut conn = env.redis().await;
    let current: String = conn
        .get(format!(
            "{}{{AAPL}}:bar:1s",
            env.connections.redis.key_prefix
        ))
        .await
        .unwrap();
    assert!(
        current.contains(&format!("\"window_start\":{}", t0 + 1_000)),
        "{current}"
    );
    let mut derived = js
        .get_stream(&env.connections.nats.streams.derived)
        .await
        .unwrap();
    assert_eq!(derived.info().await.unwrap().state.messages, 3);
}
