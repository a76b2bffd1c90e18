//! The batching ClickHouse writer against a real server.

use std::time::{Duration, Instant};

use insite_schemas::config::ClickHouseConfig;
use insite_schemas::Interval;
use insite_sinks::clickhouse::{
    connect, migrate, rows::BarRow, TableWriter, WriteError, WriterConfig,
};
use insite_testkit::fixtures::bar;
use insite_testkit::TestEnv;

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
async fn keeps_the_batch_when_clickhouse_is_unreachable() {
    let port = insite_local::free_ports(1).unwrap()[0];
    let down = ClickHouseConfig {
        url: format!("http://127.0.0.1:{port}"),
        ..ClickHouseConfig::default()
    };
    let config = WriterConfig {
        retry_initial_ms: 10,
        retry_max_ms: 20,
        max_attempts: 3,
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
    let err = writer.flush().await.unwrap_err();
    assert!(
        matches!(err, WriteError::Unavailable { attempts: 3, .. }),
        "{err}"
    );
    assert_eq!(writer.pending(), 5, "nothing is dropped");
}
