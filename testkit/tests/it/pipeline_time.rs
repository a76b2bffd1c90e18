//! Time you can trust: the pipeline's watermarks come from the streams'
//! event time only, so the same stream gives the same tables (late events
//! included) however and whenever it is read; a bad clock cannot stop the
//! bars; an idle pipeline computes old data on time; a restart reads only
//! the pipeline's own checkpoint.

use std::time::Duration;

use insite_pipeline::resume::{ProgressStore, StreamCheckpoint};
use insite_pipeline::source::InputSource;
use insite_schemas::time::now_ms;
use insite_schemas::{wire, TimestampMs, Trade};
use insite_testkit::fixtures::trade;
use insite_testkit::jetstream::{publish_trades, read_all};
use insite_testkit::pipeline::wait_running;
use insite_testkit::pipeline::{config, publish_recorded, RECORDED_DONE_MS};
use insite_testkit::results::{
    assert_bars_equal, assert_sentiment_equal, read_bars, read_late, read_sentiment, wait_durable,
    wait_stream_durable,
};
use insite_testkit::service::start_pipeline;
use insite_testkit::wait::eventually;
use insite_testkit::TestEnv;

/// The newest final 1 s bar's window start in `bars`, if any.
async fn newest_second_bar(env: &TestEnv) -> Option<u64> {
    env.clickhouse()
        .query(
            "SELECT max(window_start_ms) FROM bars FINAL WHERE interval_s = 1 HAVING count() > 0",
        )
        .fetch_optional::<u64>()
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trade_stamped_in_2099_is_dead_lettered_and_the_bars_go_on() {
    let env = TestEnv::new("time_future");
    let config = config("future");
    let pipeline = start_pipeline(&env.connections, &config);
    wait_running(&env, &config.consumer.market_durable).await;
    let js = env.jetstream().await;
    let streams = &env.connections.nats.streams;

    // Live trades stamped now, one every 50 ms; after a second, one trade
    // stamped 2099-01-01; then live trades for three more seconds.
    let mut n = 0;
    let live = |n: &mut u64| {
        *n += 1;
        trade("ACME", now_ms(), &format!("live-{n}"))
    };
    for _ in 0..20 {
        publish_trades(&js, streams, &[live(&mut n)]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bad_at = now_ms();
    publish_trades(&js, streams, &[trade("ACME", 4_070_908_800_000, "future")]).await;
    for _ in 0..60 {
        publish_trades(&js, streams, &[live(&mut n)]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The 1 s bars keep closing past the bad trade: the live trades after
    // it, then the idle stream's clock ticks, close windows up to the live
    // edge.
    let wanted = (bad_at + 1_000) as u64;
    let closed = eventually(Duration::from_secs(30), async || {
        newest_second_bar(&env).await.filter(|&t| t >= wanted)
    })
    .await;
    assert!(
        closed.is_ok(),
        "the newest final 1 s bar stopped at {:?} (wanted ≥ {wanted}; the 2099 trade came at {bad_at})",
        newest_second_bar(&env).await
    );
    // The 2099 trade is in the DLQ with its reason, not in the tables, and
    // it made nothing late.
    let dlq = read_all(&js, &streams.dlq).await;
    assert_eq!(dlq.len(), 1, "one dead letter");
    assert_eq!(dlq[0].header(wire::DLQ_KIND_HEADER), Some("clock_skew"));
    assert!(dlq[0]
        .header(wire::DLQ_REASON_HEADER)
        .is_some_and(|r| r.contains("clock skew")));
    let future_rows: u64 = env
        .clickhouse()
        .query("SELECT count() FROM trades WHERE ts_ms > 4000000000000")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(future_rows, 0);
    assert_eq!(read_late(&env.connections.clickhouse).await, vec![]);
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pipeline_computes_last_months_data_on_time() {
    let env = TestEnv::new("time_idle");
    let idle = config("idle");
    let pipeline = start_pipeline(&env.connections, &idle);
    wait_running(&env, &idle.consumer.market_durable).await;
    // Idle well past its idle timeout (1 s) before old data arrives.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let done = publish_recorded(&env).await;
    wait_durable(&env.connections.clickhouse, "idle", done).await;
    pipeline.stop().await;

    // A fresh pipeline over the same streams, as a backlog.
    let fresh = env.with_database("fresh");
    let fresh_config = config("fresh");
    let fresh_run = start_pipeline(&fresh, &fresh_config);
    wait_durable(&fresh.clickhouse, "fresh", RECORDED_DONE_MS).await;
    fresh_run.stop().await;

    let (idle_bars, fresh_bars) = (
        read_bars(&env.connections.clickhouse).await,
        read_bars(&fresh.clickhouse).await,
    );
    assert!(!fresh_bars.is_empty());
    assert_bars_equal(&idle_bars, &fresh_bars, "idle vs fresh");
    assert_sentiment_equal(
        &read_sentiment(&env.connections.clickhouse).await,
        &read_sentiment(&fresh.clickhouse).await,
        "idle vs fresh",
    );
    assert_eq!(read_late(&env.connections.clickhouse).await, vec![]);
    assert_eq!(read_late(&fresh.clickhouse).await, vec![]);
}

/// 6,000 single-trade messages over three symbols, 10 ms of event time
/// apart, of which one in eight arrives between 1.5 s and 2.5 s after later
/// trades (allowed lateness: 2 s), some exactly at the bound.
fn shuffled_trades() -> Vec<Trade> {
    // 2026-11-30T15:00:00Z.
    let base: TimestampMs = 1_796_050_800_000;
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut trades: Vec<(TimestampMs, Trade)> = (0..6_000)
        .map(|i| {
            let ts = base + i * 10;
            let symbol = ["ACME", "BOLT", "CRUX"][(next() % 3) as usize];
            let mut t = trade(symbol, ts, &format!("s-{i}"));
            t.price = 10.0 + (next() % 100) as f64 / 10.0;
            t.size = 1 + next() % 50;
            let arrival = if next() % 8 == 0 {
                // Delayed: 1.5 s to 2.5 s, in 10 ms steps (so 2.0 s, right
                // at the bound, happens too).
                ts + 1_500 + (next() % 101) as i64 * 10
            } else {
                ts
            };
            (arrival, t)
        })
        .collect();
    trades.sort_by_key(|(arrival, t)| (*arrival, t.ts));
    trades.into_iter().map(|(_, t)| t).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_stream_gives_the_same_tables_live_and_as_a_backlog() {
    let env = TestEnv::new("time_live_backlog");
    let trades = shuffled_trades();
    let last_ts = trades.iter().map(|t| t.ts).max().unwrap();
    let done = last_ts + 6 * 60_000;

    // Live: the pipeline runs while the trades are published in small
    // bursts, so it reads them in activations of every size.
    let live = config("live");
    let running = start_pipeline(&env.connections, &live);
    wait_running(&env, &live.consumer.market_durable).await;
    let js = env.jetstream().await;
    for chunk in trades.chunks(150) {
        publish_trades(&js, &env.connections.nats.streams, chunk).await;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    wait_stream_durable(
        &env.connections.clickhouse,
        "live",
        InputSource::Market,
        done,
    )
    .await;
    running.stop().await;

    // Backlog: a fresh pipeline reads the same stream, all of it at once.
    let backlog = env.with_database("backlog");
    let backlog_config = config("backlog");
    let running = start_pipeline(&backlog, &backlog_config);
    wait_stream_durable(&backlog.clickhouse, "backlog", InputSource::Market, done).await;
    running.stop().await;

    let live_late = read_late(&env.connections.clickhouse).await;
    let backlog_late = read_late(&backlog.clickhouse).await;
    assert!(
        !live_late.is_empty(),
        "the input has trades beyond the lateness"
    );
    assert_eq!(
        live_late.len(),
        backlog_late.len(),
        "late events, live vs backlog"
    );
    assert_eq!(live_late, backlog_late, "late events, live vs backlog");
    let live_bars = read_bars(&env.connections.clickhouse).await;
    assert!(!live_bars.is_empty());
    assert_bars_equal(
        &live_bars,
        &read_bars(&backlog.clickhouse).await,
        "live vs backlog",
    );
}

#[tokio::test]
async fn a_restart_reads_only_the_pipelines_own_row() {
    let env = TestEnv::new("time_checkpoint_rows");
    insite_sinks::clickhouse::migrate(&env.connections.clickhouse)
        .await
        .unwrap();
    let client = env.clickhouse();
    // A two-process run: process 1 recorded an old, low frontier and then
    // left the topology; process 0 recorded the pipeline's row.
    let p0 = ProgressStore::new(client.clone(), "scaled", 0, 2);
    let p1 = ProgressStore::new(client.clone(), "scaled", 1, 2);
    p1.save_process(InputSource::Market, 1_000).await.unwrap();
    p0.save_process(InputSource::Market, 90_000).await.unwrap();
    let pipeline_row = StreamCheckpoint {
        durable_ms: Some(80_000),
        resume_seq: 42,
        max_ts: Some(81_500),
    };
    p0.save_pipeline(InputSource::Market, pipeline_row)
        .await
        .unwrap();
    // Another pipeline whose name starts the same way.
    ProgressStore::new(client.clone(), "scaled/x", 0, 1)
        .save_pipeline(
            InputSource::Market,
            StreamCheckpoint {
                durable_ms: Some(5),
                resume_seq: 1,
                max_ts: Some(5),
            },
        )
        .await
        .unwrap();

    // Restarted as one process: it resumes from the pipeline's row alone.
    let one = ProgressStore::new(client.clone(), "scaled", 0, 1);
    let resume = one.load().await.unwrap();
    assert_eq!(resume.market, pipeline_row);
    assert_eq!(resume.social, StreamCheckpoint::default());
    assert_eq!(
        one.global(InputSource::Market, 95_000).await.unwrap(),
        Some(95_000),
        "one process: its own frontier, whatever a removed process recorded"
    );
    // As two processes again, process 1's newest row counts.
    p1.save_process(InputSource::Market, 85_000).await.unwrap();
    assert_eq!(
        p0.global(InputSource::Market, 90_000).await.unwrap(),
        Some(85_000)
    );
}
