//! The pipeline's output task: results reach ClickHouse, Redis and NATS,
//! and the durable frontier advances only once ClickHouse has them.

use std::time::Duration;

use async_nats::jetstream::stream;
use insite_pipeline::output::{OutputError, OutputTask, WorkerOutput, WritesReady};
use insite_pipeline::source::InputSource;
use insite_schemas::{Finality, Interval};
use insite_sinks::clickhouse::{migrate, rows::BarRow, MigrateError, WriterConfig};
use insite_sinks::nats::DerivedPublisher;
use insite_sinks::redis::{RedisSink, RedisSinkConfig};
use insite_testkit::fixtures::bar;
use insite_testkit::pipeline::{spawn_output, RunningOutput};
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
    let RunningOutput {
        input: tx,
        durable: mut durable_rx,
        done: handle,
    } = spawn_output(task, 64);

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

/// The ClickHouse task keeps taking rows while a flush is in flight; a
/// frontier must still become durable only once every row sent before it
/// is in ClickHouse. Many small flushes, each checked as it is reported.
#[tokio::test]
async fn a_durable_frontier_never_runs_ahead_of_clickhouse_across_overlapping_flushes() {
    let env = TestEnv::new("pipeline_output_overlap");
    migrate(&env.connections.clickhouse).await.unwrap();
    let writer = WriterConfig {
        max_rows: 40,
        max_age_ms: 5,
        capacity_rows: 120,
        ..WriterConfig::default()
    };
    let task = OutputTask::new(
        &env.clickhouse(),
        &writer,
        None,
        None,
        2,
        Duration::from_millis(5),
    );
    let RunningOutput {
        input: tx,
        durable: mut durable_rx,
        done: handle,
    } = spawn_output(task, 8);

    const SYMBOLS: [&str; 7] = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META", "GOOG"];
    const WINDOWS: i64 = 60;
    let t0 = 1_700_000_000_000;
    let sender = tokio::spawn(async move {
        for k in 0..WINDOWS {
            let start = t0 + k * 1_000;
            let bars = SYMBOLS
                .iter()
                .map(|s| bar(s, Interval::SECOND, start).build())
                .collect();
            tx.send(WorkerOutput::Bars(bars)).await.unwrap();
            for worker in 0..2 {
                tx.send(WorkerOutput::Progress {
                    source: InputSource::Market,
                    worker,
                    frontier: start + 1_000,
                })
                .await
                .unwrap();
            }
            // Paced so that several durable reports (at most one per
            // 200 ms) fall inside the run.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let client = env.clickhouse();
    let mut checked = 0;
    let last = t0 + WINDOWS * 1_000;
    loop {
        let durable = tokio::time::timeout(Duration::from_secs(30), durable_rx.changed())
            .await
            .expect("the durable frontier stopped moving");
        if durable.is_err() {
            break; // the task ended
        }
        let frontier = durable_rx.borrow_and_update()[0];
        if frontier == i64::MIN {
            continue;
        }
        let below: u64 = client
            .query("SELECT count() FROM bars WHERE window_start_ms < ?")
            .bind(frontier)
            .fetch_one()
            .await
            .unwrap();
        let windows_below = (frontier - t0).div_euclid(1_000);
        assert!(
            below >= windows_below as u64 * SYMBOLS.len() as u64,
            "frontier {frontier} reported durable with {below} rows below it in ClickHouse"
        );
        checked += 1;
        if frontier >= last {
            break;
        }
    }
    sender.await.unwrap();
    assert!(
        checked >= 3,
        "only {checked} durable frontiers were checked"
    );
    let total: u64 = client
        .query("SELECT count() FROM bars FINAL")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(total, WINDOWS as u64 * SYMBOLS.len() as u64);
    handle.abort();
}

/// A backfill into a new database runs its operators while the database
/// is migrated: the output task takes rows meanwhile, but inserts nothing
/// and reports nothing durable until the database is ready, then writes
/// everything.
#[tokio::test]
async fn no_insert_before_the_database_is_ready() {
    let env = TestEnv::new("pipeline_output_ready");
    let config = env.connections.clickhouse.clone();
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let ready: WritesReady = Box::pin(async move {
        let _ = wait.await;
        migrate(&config).await.map(drop)
    });
    let writer = WriterConfig {
        max_age_ms: 5,
        ..WriterConfig::default()
    };
    let task = OutputTask::new(
        &env.clickhouse(),
        &writer,
        None,
        None,
        1,
        Duration::from_millis(5),
    )
    .writing_after(ready);
    let RunningOutput {
        input: tx,
        durable: mut durable_rx,
        done: handle,
    } = spawn_output(task, 8);

    let t0 = 1_700_000_000_000;
    for k in 0..3 {
        tx.send(WorkerOutput::Bars(vec![bar(
            "AAPL",
            Interval::SECOND,
            t0 + k * 1_000,
        )
        .build()]))
            .await
            .unwrap();
    }
    tx.send(WorkerOutput::Progress {
        source: InputSource::Market,
        worker: 0,
        frontier: t0 + 3_000,
    })
    .await
    .unwrap();
    // The rows were taken (the sends above returned), and many flush ages
    // pass: still nothing durable, and the database does not even exist.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(durable_rx.borrow()[0], i64::MIN);
    let admin = insite_sinks::clickhouse::client_without_database(&env.connections.clickhouse);
    let exists: u64 = admin
        .query("SELECT count() FROM system.databases WHERE name = ?")
        .bind(&env.connections.clickhouse.database)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(exists, 0, "nothing may be written before it is ready");

    go.send(()).unwrap();
    let durable = tokio::time::timeout(
        Duration::from_secs(30),
        durable_rx.wait_for(|frontiers| frontiers[0] >= t0 + 3_000),
    )
    .await
    .unwrap()
    .map(|frontiers| frontiers[0])
    .unwrap();
    assert_eq!(durable, t0 + 3_000);
    let rows: u64 = env
        .clickhouse()
        .query("SELECT count() FROM bars FINAL")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, 3);
    drop(tx);
    handle.await.unwrap().unwrap();
}

/// A database that cannot be made ready ends the output task with its
/// error, and nothing is written.
#[tokio::test]
async fn a_database_that_cannot_be_made_ready_ends_the_output_task() {
    let env = TestEnv::new("pipeline_output_not_ready");
    let ready: WritesReady =
        Box::pin(async { Err(MigrateError::InvalidDatabase("not-a-name".into())) });
    let task = OutputTask::new(
        &env.clickhouse(),
        &WriterConfig::default(),
        None,
        None,
        1,
        Duration::from_millis(5),
    )
    .writing_after(ready);
    let RunningOutput {
        input: tx,
        durable: _durable_rx,
        done: handle,
    } = spawn_output(task, 8);
    // The task may already have ended: a failed send is part of that.
    let _ = tx
        .send(WorkerOutput::Bars(vec![bar(
            "AAPL",
            Interval::SECOND,
            1_700_000_000_000,
        )
        .build()]))
        .await;
    drop(tx);
    let ended = tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ended, Err(OutputError::Migrate(_))), "{ended:?}");
}
