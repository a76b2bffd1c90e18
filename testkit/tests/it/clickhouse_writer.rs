//! The batching ClickHouse writer against a real server.

use std::time::{Duration, Instant};

use insite_schemas::config::ClickHouseConfig;
use insite_schemas::Interval;
use insite_sinks::clickhouse::{
    classify, client_without_database, connect, migrate, rows::BarRow, ErrorClass, TableWriter,
    WriteError, WriterConfig,
};
use insite_testkit::fixtures::bar;
use insite_testkit::TestEnv;

use crate::clickhouse_outage::{free_port, proxy};

/// The row of result `i` (each its own window), as a run of `version`
/// writes it.
fn row(i: u64, version: u64) -> BarRow {
    let start = (1_700_000_000 + i as i64) * 1_000;
    let bar = bar(&format!("S{}", i % 7), Interval::SECOND, start).volume(i);
    BarRow::from_bar(&bar.build(), version)
}

#[tokio::test]
async fn flushes_by_size_and_age_and_retries_replace_rather_than_double() {
    let env = TestEnv::new("ch_writer");
    migrate(&env.connections.clickhouse).await.unwrap();
    let config = WriterConfig {
        max_rows: 100,
        max_age_ms: 50,
        capacity_rows: 1_000,
        ..WriterConfig::default()
    };
    let mut writer = TableWriter::<BarRow>::new(env.clickhouse(), "bars", config);
    for i in 0..250 {
        writer.push(row(i, 1));
        if writer.should_flush(Instant::now()) {
            assert_eq!(writer.flush().await.unwrap().rows, 100);
        }
    }
    assert_eq!(writer.pending(), 50);
    assert!(!writer.should_flush(Instant::now()));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(writer.should_flush(Instant::now()), "age limit");
    assert_eq!(writer.flush().await.unwrap().rows, 50);

    // The same results written again (a re-delivery) replace themselves.
    for i in 0..250 {
        writer.push(row(i, 2));
    }
    writer.flush().await.unwrap();
    let client = env.clickhouse();
    let count: u64 = client
        .query("SELECT count() FROM bars FINAL")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(count, 250);
    let versions: Vec<u64> = client
        .query("SELECT DISTINCT version FROM bars FINAL")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(versions, vec![2]);
}

#[tokio::test]
async fn retries_until_clickhouse_is_back_and_keeps_the_batch_meanwhile() {
    let env = TestEnv::new("ch_writer_down");
    migrate(&env.connections.clickhouse).await.unwrap();
    let port = free_port();
    let down = ClickHouseConfig {
        url: format!("http://127.0.0.1:{port}"),
        ..env.connections.clickhouse.clone()
    };
    let config = WriterConfig {
        retry_initial_ms: 10,
        retry_max_ms: 50,
        capacity_rows: 5,
        ..WriterConfig::default()
    };
    let mut writer = TableWriter::<BarRow>::new(connect(&down), "bars", config);
    for i in 0..5 {
        writer.push(row(i, 1));
    }
    assert!(
        writer.is_full(),
        "a full buffer asks the caller to stop reading"
    );
    // While ClickHouse is down the flush neither returns nor gives up.
    let waited = tokio::time::timeout(Duration::from_millis(700), writer.flush()).await;
    assert!(waited.is_err(), "the flush gave up: {waited:?}");
    assert_eq!(writer.pending(), 5, "nothing is dropped");
    // It comes back while a flush retries: the same batch goes in.
    let upstream = env.connections.clickhouse.url.clone();
    let _proxy = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Runs until the test ends.
        let _forwarding = proxy(port, &upstream).await;
        std::future::pending::<()>().await;
    });
    let report = tokio::time::timeout(Duration::from_secs(60), writer.flush())
        .await
        .expect("the flush succeeds once ClickHouse is back")
        .unwrap();
    assert_eq!(report.rows, 5);
    assert!(report.retries > 0, "{report:?}");
    assert_eq!(writer.pending(), 0);
    let count: u64 = env
        .clickhouse()
        .query("SELECT count() FROM bars FINAL")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(count, 5);
}

#[tokio::test]
async fn a_rejected_batch_stops_the_flush_at_once_and_stays_buffered() {
    let env = TestEnv::new("ch_writer_rejected");
    // No migrations: the table does not exist (UNKNOWN_TABLE, not retried).
    let admin = client_without_database(&env.connections.clickhouse);
    admin
        .query(&format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            env.connections.clickhouse.database
        ))
        .execute()
        .await
        .unwrap();
    let mut writer = TableWriter::<BarRow>::new(env.clickhouse(), "bars", WriterConfig::default());
    writer.push(row(1, 1));
    let err = tokio::time::timeout(Duration::from_secs(30), writer.flush())
        .await
        .expect("a refused batch is not retried")
        .unwrap_err();
    let WriteError::Rejected { source, rows, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(*rows, 1);
    assert_eq!(classify(source), ErrorClass::BadData, "{source}");
    assert_eq!(writer.pending(), 1);
}
