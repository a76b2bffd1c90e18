//! DERIVED publishing is off the output task's critical path: a DERIVED
//! stream that never answers, or refuses every publish, holds up neither
//! ClickHouse writes nor acknowledgements.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use insite_pipeline::output::{OutputTask, WorkerOutput};
use insite_schemas::{Finality, Interval};
use insite_sinks::clickhouse::{migrate, WriterConfig};
use insite_sinks::nats::DerivedPublisher;
use insite_testkit::fixtures::{self, bar};
use insite_testkit::pipeline::{
    config, publish_recorded, run_until_durable, spawn_output, RunningOutput, RECORDED_TRADES,
};
use insite_testkit::TestEnv;

/// Final bars, one per second of event time, each with the next window's
/// provisional bar.
const WINDOWS: i64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_derived_stream_that_never_answers_does_not_hold_up_clickhouse() {
    let env = TestEnv::new("pipeline_derived_silent");
    migrate(&env.connections.clickhouse).await.unwrap();
    let streams = env.connections.nats.streams.clone();
    // No DERIVED stream, but a subscriber that takes every publish and never
    // answers: each JetStream publish waits for an ack until it times out.
    let mut silent = env.subscribe(streams.subject("insite.>")).await;
    let swallowed = Arc::new(AtomicU64::new(0));
    let counter = swallowed.clone();
    tokio::spawn(async move {
        while silent.next().await.is_some() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    // One unconfirmed publish at most: inline, every final would wait
    // seconds for its ack.
    let publisher = DerivedPublisher::new(env.jetstream().await, streams.clone(), 1);
    let writer = WriterConfig {
        max_age_ms: 20,
        ..WriterConfig::default()
    };
    let task = OutputTask::new(
        &env.clickhouse(),
        &writer,
        None,
        Some(publisher),
        1,
        Duration::from_millis(20),
    );
    let RunningOutput {
        input: tx,
        durable: mut durable_rx,
        done: handle,
    } = spawn_output(task, 64);

    let started = Instant::now();
    let t0 = 1_700_000_000_000;
    let second = |start| bar("AAPL", Interval::SECOND, start);
    for i in 0..WINDOWS {
        let start = t0 + i * 1_000;
        tx.send(WorkerOutput::Bars(vec![
            second(start).build(),
            second(start + 1_000)
                .finality(Finality::Provisional)
                .build(),
        ]))
        .await
        .unwrap();
        tx.send(WorkerOutput::Progress {
            source: insite_pipeline::source::InputSource::Market,
            worker: 0,
            frontier: start + 1_000,
        })
        .await
        .unwrap();
        // Several hot flushes (every 20 ms) between two outputs.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let end = t0 + WINDOWS * 1_000;
    tokio::time::timeout(
        Duration::from_secs(15),
        durable_rx.wait_for(|frontiers| frontiers[0] >= end),
    )
    .await
    .expect("the durable frontier reaches the end while DERIVED does not answer")
    .unwrap();
    let elapsed = started.elapsed();
    // Awaiting DERIVED inline would have taken 5 s (the ack timeout) per
    // final; off the critical path it is the pace of the input.
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    let rows: u64 = env
        .clickhouse()
        .query("SELECT count() FROM bars FINAL")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, WINDOWS as u64);
    assert!(
        swallowed.load(Ordering::Relaxed) > 0,
        "DERIVED publishing was attempted"
    );

    // The output ends within the drain time: what DERIVED did not take is
    // dropped (and counted), not waited for.
    drop(tx);
    tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("the output task ends")
        .unwrap()
        .unwrap();
}

/// The (symbol, interval, window) of every bar the recorded trades make.
fn recorded_bar_windows() -> BTreeSet<(String, u32, i64)> {
    let text = fixtures::text(RECORDED_TRADES);
    let mut windows = BTreeSet::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let ts: i64 = fields[1].parse().unwrap();
        for interval_s in [1u32, 60, 300] {
            let ms = i64::from(interval_s) * 1_000;
            windows.insert((fields[0].to_owned(), interval_s, ts - ts.rem_euclid(ms)));
        }
    }
    windows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_writes_and_acks_everything_while_derived_refuses_publishes() {
    let env = TestEnv::new("pipeline_derived_refused");
    let done = publish_recorded(&env).await;
    // DERIVED refuses every message from now on (too large); the pipeline's
    // ensure_streams manages limits and subjects, and leaves this alone.
    let streams = &env.connections.nats.streams;
    let js = env.jetstream().await;
    let mut derived = js.get_stream(&streams.derived).await.unwrap();
    let mut refusing = derived.info().await.unwrap().config.clone();
    refusing.max_message_size = 1;
    js.update_stream(refusing).await.unwrap();

    let config = config("derived_refused");
    run_until_durable(&env.connections, &config, done).await;

    let ch = env.clickhouse();
    let count = |sql: &'static str| {
        let ch = ch.clone();
        async move { ch.query(sql).fetch_one::<u64>().await.unwrap() }
    };
    assert_eq!(count("SELECT count() FROM trades FINAL").await, 3_000);
    assert_eq!(count("SELECT count() FROM posts FINAL").await, 400);
    assert_eq!(
        count("SELECT count() FROM bars FINAL").await,
        recorded_bar_windows().len() as u64
    );
    assert!(count("SELECT count() FROM sentiment FINAL").await > 0);
    // Every input message is behind the checkpoints.
    insite_testkit::results::assert_checkpoints_past_the_data(&env, &config.name).await;
    // And DERIVED took nothing.
    let info = derived.info().await.unwrap();
    assert_eq!(info.state.messages, 0);
    assert_eq!(info.config.max_message_size, 1);
}
