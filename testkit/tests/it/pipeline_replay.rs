//! `insite replay` next to the live tables: a replay over a range that cuts
//! windows leaves the live tables as they were; an event-time range over a
//! backlog published in one go writes only its windows; a replay of whole
//! streams into a fresh database equals the live run.

use insite_pipeline::replay::ReplayReport;
use insite_pipeline::source::StreamRange;
use insite_pipeline::{Connections, PipelineConfig, ReplaySpec};
use insite_schemas::config::ClickHouseConfig;
use insite_schemas::TimestampMs;
use insite_testkit::pipeline::{config, run_until_durable, Backlog};
use insite_testkit::results::{
    assert_bars_equal, assert_sentiment_equal, close, read_alerts, read_bars, read_late,
    read_sentiment, read_trending, AlertTable, BarTable, SentimentTable, TrendingTable,
};
use insite_testkit::TestEnv;

/// 2026-02-02T15:00:00Z: the backlog's first event.
const START_MS: TimestampMs = 1_770_044_400_000;

/// Every result table, read with `FINAL`.
#[derive(Debug)]
struct Tables {
    bars: BarTable,
    sentiment: SentimentTable,
    trending: TrendingTable,
    alerts: AlertTable,
    late: Vec<insite_testkit::results::LateRow>,
}

async fn tables(clickhouse: &ClickHouseConfig) -> Tables {
    Tables {
        bars: read_bars(clickhouse).await,
        sentiment: read_sentiment(clickhouse).await,
        trending: read_trending(clickhouse).await,
        alerts: read_alerts(clickhouse).await,
        late: read_late(clickhouse).await,
    }
}

fn assert_tables_equal(got: &Tables, want: &Tables, what: &str) {
    assert_bars_equal(&got.bars, &want.bars, what);
    assert_sentiment_equal(&got.sentiment, &want.sentiment, what);
    assert_eq!(
        got.trending.keys().collect::<Vec<_>>(),
        want.trending.keys().collect::<Vec<_>>(),
        "{what}: the same trending entries"
    );
    for (key, g) in &got.trending {
        let w = &want.trending[key];
        assert!(
            g.0 == w.0 && g.1 == w.1 && close(g.2, w.2),
            "{what}: trending {key:?}: got {g:?}, want {w:?}"
        );
    }
    assert_eq!(
        got.alerts.keys().collect::<Vec<_>>(),
        want.alerts.keys().collect::<Vec<_>>(),
        "{what}: the same alerts"
    );
    for (key, g) in &got.alerts {
        let w = &want.alerts[key];
        assert!(
            close(g.0, w.0) && close(g.1, w.1),
            "{what}: alert {key:?}: got {g:?}, want {w:?}"
        );
    }
    assert_eq!(got.late, want.late, "{what}: late events");
}

/// A seeded backlog of trades, quotes and posts (some beyond the allowed
/// lateness), published in one go, and a live pipeline run over it until
/// every window is durable. Returns the live run's settings and tables.
async fn live_run(env: &TestEnv, name: &str, seed: u64) -> (PipelineConfig, Tables) {
    let backlog = Backlog {
        seed,
        events: 90_000,
        start_ms: START_MS,
        jitter_ms: 3_000,
    };
    let done = backlog.publish(env).await;
    let config = config(name);
    run_until_durable(&env.connections, &config, done).await;
    let live = tables(&env.connections.clickhouse).await;
    assert!(!live.bars.is_empty() && !live.sentiment.is_empty());
    assert!(!live.late.is_empty(), "the backlog has late events");
    (config, live)
}

/// The last sequence of each input stream (MARKET, SOCIAL).
async fn last_sequences(env: &TestEnv) -> [u64; 2] {
    let js = env.jetstream().await;
    let streams = &env.connections.nats.streams;
    let mut last = [0; 2];
    for (i, name) in [&streams.market, &streams.social].into_iter().enumerate() {
        let mut stream = js.get_stream(name).await.unwrap();
        last[i] = stream.info().await.unwrap().state.last_sequence;
    }
    last
}

async fn replay(
    services: &Connections,
    config: &PipelineConfig,
    market: StreamRange,
    social: StreamRange,
) -> ReplayReport {
    let spec = ReplaySpec {
        market: Some(market),
        social: Some(social),
        hot: false,
        progress_bar: false,
    };
    insite_pipeline::replay(services, config, &spec)
        .await
        .expect("replay")
}

fn seq_range(from: u64, to: u64) -> StreamRange {
    StreamRange {
        from_seq: Some(from),
        to_seq: Some(to),
        ..StreamRange::default()
    }
}

/// `bars` limited to windows `[s, e)` with `from <= s` and `e <= to`.
fn bars_within(bars: &BarTable, from: TimestampMs, to: TimestampMs) -> BarTable {
    bars.iter()
        .filter(|((_, interval_s, start), _)| {
            let (start, end) = (
                *start as i64,
                *start as i64 + i64::from(*interval_s) * 1_000,
            );
            start >= from && end <= to
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_over_ranges_that_cut_windows_leaves_the_live_tables_unchanged() {
    let env = TestEnv::new("replay_cuts");
    let (config, live) = live_run(&env, "cuts", 7).await;
    let last = last_sequences(&env).await;

    // Cut points drawn from a fixed seed: ranges from the middle of each
    // stream, and from its start to its middle (windows open at the end).
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        1 + state % below.max(1)
    };
    for round in 0..4 {
        let range = |next: &mut dyn FnMut(u64) -> u64, last: u64| {
            let from = if round % 2 == 0 {
                1
            } else {
                next(last / 2) + 1
            };
            // At least a quarter of what follows: some windows close.
            let rest = last - from;
            let to = from + rest / 4 + next(rest - rest / 4);
            seq_range(from, to)
        };
        let market = range(&mut next, last[0]);
        let social = range(&mut next, last[1]);
        let what = format!("round {round}: MARKET {market:?}, SOCIAL {social:?}");

        // Into the live database: nothing changes.
        let report = replay(&env.connections, &config, market, social).await;
        assert!(report.messages > 0, "{what}");
        let after = tables(&env.connections.clickhouse).await;
        assert_tables_equal(&after, &live, &format!("live tables after {what}"));

        // Into a fresh database: exactly the live windows the range
        // determines, and nothing at all before a cut of a backlog stored
        // in one go (its messages were stored after all their events).
        let fresh = env.with_database(&format!("cut{round}"));
        let report = replay(&fresh, &config, market, social).await;
        let written = report.market.expect("MARKET was read");
        let bars = read_bars(&fresh.clickhouse).await;
        let want = bars_within(&live.bars, written.from, written.to);
        if market.from_seq == Some(1) {
            assert_eq!(written.from, TimestampMs::MIN, "{what}");
            assert!(!want.is_empty(), "{what}: windows closed inside the range");
        }
        assert_bars_equal(&bars, &want, &format!("fresh database after {what}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_time_range_on_a_backlog_replays_only_its_windows() {
    let env = TestEnv::new("replay_event_time");
    let (config, live) = live_run(&env, "event_time", 11).await;
    let last = last_sequences(&env).await;

    // 12.5 s to 30.3 s into a 45 s backlog stored in one go: the range
    // cuts 1 s windows at both ends, and every message was stored after
    // the range's end.
    let (from, to) = (START_MS + 12_500, START_MS + 30_300);
    let range = StreamRange {
        from_event_ms: Some(from),
        to_event_ms: Some(to),
        ..StreamRange::default()
    };
    let fresh = env.with_database("range");
    let report = replay(&fresh, &config, range, range).await;
    let written = report.market.expect("MARKET was read");
    assert_eq!((written.from, written.to), (from, to), "{report:?}");
    assert!(
        report.messages < last[0] + last[1],
        "reading stops once the clock passes the range: {} of {} messages",
        report.messages,
        last[0] + last[1]
    );
    let want = bars_within(&live.bars, from, to);
    assert!(want.len() > 100, "{} bars in the range", want.len());
    assert_bars_equal(
        &read_bars(&fresh.clickhouse).await,
        &want,
        "an event-time range",
    );
    // Raw rows: the trades inside the range, all of them.
    let count = |clickhouse: ClickHouseConfig, sql: &'static str| async move {
        insite_sinks::clickhouse::connect(&clickhouse)
            .query(sql)
            .bind(from)
            .bind(to)
            .fetch_one::<u64>()
            .await
            .unwrap()
    };
    let in_range = "SELECT count() FROM trades FINAL WHERE ts_ms >= ? AND ts_ms < ?";
    let live_in_range = count(env.connections.clickhouse.clone(), in_range).await;
    assert!(live_in_range > 0);
    assert_eq!(
        count(fresh.clickhouse.clone(), in_range).await,
        live_in_range
    );
    let fresh_total: u64 = insite_sinks::clickhouse::connect(&fresh.clickhouse)
        .query("SELECT count() FROM trades FINAL")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(fresh_total, live_in_range, "no trades outside the range");
    // Every late event of the range, as the live run recorded it.
    let fresh_late = read_late(&fresh.clickhouse).await;
    let live_late: Vec<_> = live
        .late
        .iter()
        .filter(|l| (from..to).contains(&(l.2 as i64)))
        .cloned()
        .collect();
    assert!(!fresh_late.is_empty());
    assert!(fresh_late.iter().all(|l| live_late.contains(l)));

    // Into the live database: nothing changes.
    replay(&env.connections, &config, range, range).await;
    assert_tables_equal(
        &tables(&env.connections.clickhouse).await,
        &live,
        "live tables after an event-time replay",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_whole_streams_into_a_fresh_database_equals_the_live_run() {
    let env = TestEnv::new("replay_whole");
    let (config, live) = live_run(&env, "whole", 5).await;
    let fresh = env.with_database("fresh");
    let whole = StreamRange::default();
    let report = replay(&fresh, &config, whole, whole).await;
    assert_eq!(report.withheld_late, 0, "{report:?}");
    assert_tables_equal(
        &tables(&fresh.clickhouse).await,
        &live,
        "a whole replay vs the live run",
    );
    // The same rows again into the live database: nothing changes.
    replay(&env.connections, &config, whole, whole).await;
    assert_tables_equal(
        &tables(&env.connections.clickhouse).await,
        &live,
        "live tables after a whole replay",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_cut_of_a_live_stream_writes_the_windows_past_its_edge() {
    let env = TestEnv::new("replay_live_cut");
    let mut config = config("live_cut");
    // Trades are published as they happen: a tight skew bound puts the
    // start edge a second after the cut's storage time.
    config.consumer.max_clock_skew_ms = 1_000;
    let pipeline = insite_testkit::service::start_pipeline(&env.connections, &config);
    let js = env.jetstream().await;
    let streams = &env.connections.nats.streams;
    // Published once the pipeline reads: as it happens, not as a backlog.
    insite_testkit::wait::eventually(std::time::Duration::from_secs(60), async || {
        match js.get_stream(&streams.market).await {
            Ok(stream) => stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
                    &config.consumer.market_durable,
                )
                .await
                .is_ok(),
            Err(_) => false,
        }
    })
    .await
    .expect("the pipeline starts");
    let mut n = 0u64;
    let started = insite_schemas::time::now_ms();
    while insite_schemas::time::now_ms() < started + 12_000 {
        let trades: Vec<_> = ["ACME", "BOLT", "CRUX"]
            .iter()
            .map(|symbol| {
                n += 1;
                let mut t = insite_testkit::fixtures::trade(
                    symbol,
                    insite_schemas::time::now_ms(),
                    &format!("t-{n}"),
                );
                t.size = 1 + n % 7;
                t
            })
            .collect();
        insite_testkit::jetstream::publish_trades(&js, streams, &trades).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Idle ticks never run ahead of the wall clock: the 1 s windows close
    // within a few seconds; the live run's finals are compared up to its
    // durable frontier.
    let last_ts = insite_schemas::time::now_ms();
    let market = insite_pipeline::source::InputSource::Market;
    insite_testkit::results::wait_stream_durable(
        &env.connections.clickhouse,
        "live_cut",
        market,
        last_ts + 1_000,
    )
    .await;
    pipeline.stop().await;
    let live = tables(&env.connections.clickhouse).await;
    let durable = insite_testkit::results::stream_durable_frontier(
        &env.connections.clickhouse,
        "live_cut",
        market,
    )
    .await
    .expect("a durable frontier");
    let [market_last, _] = last_sequences(&env).await;

    // From a third of the way in, to the end.
    let cut = seq_range(n / 3, market_last);
    let fresh = env.with_database("cut");
    let report = replay(&fresh, &config, cut, StreamRange::default()).await;
    let written = report.market.expect("MARKET was read");
    assert!(
        written.from > started && written.from < started + 8_000,
        "{report:?}"
    );
    assert!(
        written.to >= durable,
        "{report:?}, live durable at {durable}"
    );
    let want = bars_within(&live.bars, written.from, durable);
    assert!(
        want.keys()
            .filter(|(_, interval_s, _)| *interval_s == 1)
            .count()
            >= 3 * 5,
        "1 s bars past the edge: {want:?}"
    );
    assert_bars_equal(
        &bars_within(&read_bars(&fresh.clickhouse).await, written.from, durable),
        &want,
        "a cut of a live stream",
    );

    // Into the live database, cut at both ends: nothing changes.
    let both = seq_range(n / 3, 2 * n / 3);
    replay(&env.connections, &config, both, StreamRange::default()).await;
    assert_tables_equal(
        &tables(&env.connections.clickhouse).await,
        &live,
        "live tables after a cut at both ends",
    );
}
