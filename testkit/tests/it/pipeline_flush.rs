//! The flush policy: at the default writer settings, the output inserts
//! into each ClickHouse table at most about once a second, whatever the
//! input rate, and records its frontiers and checkpoints in one insert per
//! flush. Every insert makes a part on the server, so this is what bounds
//! ClickHouse's part churn (merges, and replaced parts left on disk).

use std::time::{Duration, Instant};

use insite_pipeline::output::{OutputTask, WorkerOutput};
use insite_pipeline::resume::{ProgressStore, Resume};
use insite_pipeline::source::InputSource;
use insite_schemas::Interval;
use insite_sinks::clickhouse::{migrate, WriterConfig};
use insite_testkit::fixtures::{bar, trade};
use insite_testkit::pipeline::{spawn_output, RunningOutput};
use insite_testkit::TestEnv;

/// How long the input runs.
const RUN: Duration = Duration::from_secs(3);

/// Parts made by inserts (level 0; merges make higher levels) into `table`
/// of the test's database, replaced ones included.
async fn inserted_parts(env: &TestEnv, table: &str) -> u64 {
    env.clickhouse()
        .query(
            "SELECT count() FROM system.parts \
             WHERE database = currentDatabase() AND table = ? AND level = 0",
        )
        .bind(table)
        .fetch_one()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_table_gets_about_one_insert_a_second_at_the_defaults() {
    let env = TestEnv::new("pipeline_flush_cadence");
    migrate(&env.connections.clickhouse).await.unwrap();
    let client = env.clickhouse();
    let writer = WriterConfig::default();
    let store = ProgressStore::new(client.clone(), "flush", 0, 1);
    let (_checkpoints_tx, checkpoints) = tokio::sync::watch::channel([(0, None); 2]);
    let task = OutputTask::new(&client, &writer, None, None, 1, Duration::from_millis(20))
        .with_progress(store, Resume::default(), Some(checkpoints));
    let RunningOutput {
        input: tx,
        durable: mut durable_rx,
        done: handle,
    } = spawn_output(task, 64);

    // 100 outputs a second, each with a trade, a final bar and a new
    // frontier of both streams: before, every one of them could be a
    // flush and a record.
    let t0 = 1_700_000_000_000;
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < RUN {
        let ts = t0 + i * 10;
        tx.send(WorkerOutput::Trades(vec![trade(
            "AAPL",
            ts,
            &format!("t{i}"),
        )]))
        .await
        .unwrap();
        let window = ts - ts.rem_euclid(1_000);
        tx.send(WorkerOutput::Bars(vec![bar(
            "AAPL",
            Interval::SECOND,
            window,
        )
        .build()]))
            .await
            .unwrap();
        for source in [InputSource::Market, InputSource::Social] {
            tx.send(WorkerOutput::Progress {
                source,
                worker: 0,
                frontier: ts + 10,
            })
            .await
            .unwrap();
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let end = t0 + i * 10;
    tokio::time::timeout(
        Duration::from_secs(10),
        durable_rx.wait_for(|f| f[0] >= end && f[1] >= end),
    )
    .await
    .expect("the last frontier becomes durable")
    .unwrap();
    let elapsed = started.elapsed();
    drop(tx);
    handle.await.unwrap().unwrap();

    let trades: u64 = client
        .query("SELECT count() FROM trades")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(trades, i as u64, "every trade is written");
    // One flush per flush age over the run, one more at the end, and one
    // of slack for timer edges; the same for the records of the frontiers.
    let bound = elapsed.as_millis() as u64 / writer.max_age_ms + 3;
    for table in ["trades", "bars", "pipeline_checkpoints"] {
        let parts = inserted_parts(&env, table).await;
        assert!(
            (1..=bound).contains(&parts),
            "{table}: {parts} inserts in {elapsed:?}, at most {bound} expected"
        );
    }
}
