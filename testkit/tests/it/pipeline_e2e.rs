//! The pipeline end to end, in-process: fixed trades CSV and posts JSONL
//! through replay-ingest → JetStream → pipeline → ClickHouse and Redis, the
//! `bars` and `sentiment` tables against a reference computed here from the
//! same files; then `insite replay` over the streams into a second database
//! must give the same tables.

use std::collections::BTreeMap;

use insite_operators::cashtags::extract_cashtags;
use insite_operators::vader::SentimentAnalyzer;
use insite_pipeline::source::StreamRange;
use insite_pipeline::ReplaySpec;
use insite_testkit::pipeline::{
    config, publish_recorded, run_until_durable, RECORDED_POSTS, RECORDED_TRADES,
};
use insite_testkit::results::{
    assert_bars_equal, assert_sentiment_equal, read_bars, read_sentiment, BarTable, SentimentTable,
};
use insite_testkit::{fixtures, TestEnv};
use serde::Deserialize;

/// The reference bars, computed from the trades CSV without any insite code.
fn reference_bars() -> BarTable {
    let text = fixtures::text(RECORDED_TRADES);
    // (ts, trade_id, exchange, price, size) per (symbol, interval, window).
    type Trade = (i64, String, String, f64, u64);
    let mut windows: BTreeMap<(String, u32, u64), Vec<Trade>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (symbol, ts, price, size) = (
            f[0].to_owned(),
            f[1].parse::<i64>().unwrap(),
            f[2].parse::<f64>().unwrap(),
            f[3].parse::<u64>().unwrap(),
        );
        for interval_s in [1u32, 60, 300] {
            let ms = i64::from(interval_s) * 1_000;
            let start = ts - ts.rem_euclid(ms);
            windows
                .entry((symbol.clone(), interval_s, start as u64))
                .or_default()
                .push((ts, f[4].to_owned(), f[5].to_owned(), price, size));
        }
    }
    windows
        .into_iter()
        .map(|(key, mut trades)| {
            trades.sort_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| a.1.cmp(&b.1))
                    .then_with(|| a.2.cmp(&b.2))
                    .then_with(|| a.3.total_cmp(&b.3))
                    .then_with(|| a.4.cmp(&b.4))
            });
            let volume: u64 = trades.iter().map(|t| t.4).sum();
            let notional: f64 = trades.iter().map(|t| t.3 * t.4 as f64).sum();
            let bar = (
                trades[0].3,
                trades.iter().map(|t| t.3).fold(f64::MIN, f64::max),
                trades.iter().map(|t| t.3).fold(f64::MAX, f64::min),
                trades[trades.len() - 1].3,
                volume,
                notional / volume as f64,
                trades.len() as u64,
            );
            (key, bar)
        })
        .collect()
}

/// The reference sentiment windows, from the posts JSONL: the windowing and
/// statistics computed here; each post's compound score from the scorer
/// (tested on its own against VADER's published scores).
fn reference_sentiment() -> SentimentTable {
    #[derive(Deserialize)]
    struct Line {
        ts: i64,
        text: String,
        followers: Option<u64>,
    }
    let text = fixtures::text(RECORDED_POSTS);
    let analyzer = SentimentAnalyzer::finance();
    // (score, weight) per (symbol, interval, window).
    let mut windows: BTreeMap<(String, u32, u64), Vec<(f64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        let post: Line = serde_json::from_str(line).unwrap();
        let score = analyzer.compound(&post.text);
        let weight = (post.followers.unwrap_or(1) as f64).ln_1p();
        for symbol in extract_cashtags(&post.text) {
            for interval_s in [60u32, 300] {
                let ms = i64::from(interval_s) * 1_000;
                let start = post.ts - post.ts.rem_euclid(ms);
                windows
                    .entry((symbol.to_string(), interval_s, start as u64))
                    .or_default()
                    .push((score, weight));
            }
        }
    }
    windows
        .into_iter()
        .map(|(key, posts)| {
            let n = posts.len() as u64;
            let mean = posts.iter().map(|p| p.0).sum::<f64>() / n as f64;
            let positive = posts.iter().filter(|p| p.0 >= 0.05).count() as u64;
            let negative = posts.iter().filter(|p| p.0 <= -0.05).count() as u64;
            let weight: f64 = posts.iter().map(|p| p.1).sum();
            let weighted = posts.iter().map(|p| p.0 * p.1).sum::<f64>() / weight;
            (
                key,
                (
                    n,
                    mean,
                    positive,
                    negative,
                    n - positive - negative,
                    weighted,
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_bars_and_sentiment_match_the_reference_and_a_replay() {
    let env = TestEnv::new("pipeline_golden");
    let done = publish_recorded(&env).await;

    let config = config("golden");
    let report = run_until_durable(&env.connections, &config, done).await;
    assert_eq!(report.resumed_from(), None);

    let bars = read_bars(&env.connections.clickhouse).await;
    let want_bars = reference_bars();
    assert_eq!(want_bars.len(), bars.len());
    assert_bars_equal(&bars, &want_bars, "live run");
    let sentiment = read_sentiment(&env.connections.clickhouse).await;
    assert_sentiment_equal(&sentiment, &reference_sentiment(), "live run");

    // Raw rows: every trade and post once; nothing was late or
    // dead-lettered (the fixtures are out of order only within the allowed
    // lateness).
    let ch = env.clickhouse();
    let count = |sql: &'static str| {
        let ch = ch.clone();
        async move { ch.query(sql).fetch_one::<u64>().await.unwrap() }
    };
    assert_eq!(count("SELECT count() FROM trades FINAL").await, 3_000);
    assert_eq!(count("SELECT count() FROM posts FINAL").await, 400);
    assert_eq!(count("SELECT count() FROM late_events").await, 0);
    assert!(count("SELECT count() FROM trending FINAL").await > 0);

    // Every input message is behind the checkpoints: nothing left for a
    // restart to read again.
    insite_testkit::results::assert_checkpoints_past_the_data(&env, &config.name).await;

    // Redis holds the hot state: the latest trade and the last 1 m bar.
    let mut redis = env.redis().await;
    let keys = insite_sinks::redis::RedisKeys::new(&env.connections.redis.key_prefix);
    let aapl = insite_schemas::Symbol::new("AAPL").unwrap();
    let latest: Option<String> = redis::AsyncCommands::get(&mut redis, keys.trade(&aapl))
        .await
        .unwrap();
    assert!(latest.is_some_and(|json| json.contains("\"AAPL\"")));
    let history: Vec<String> = redis::AsyncCommands::zrange(
        &mut redis,
        keys.bars(&aapl, insite_schemas::Interval::MINUTE),
        0,
        -1,
    )
    .await
    .unwrap();
    assert_eq!(
        history.len(),
        want_bars
            .keys()
            .filter(|(s, iv, _)| s == "AAPL" && *iv == 60)
            .count()
    );

    // A replay of both streams into another database gives the same tables.
    let replay_services = env.with_database("replay");
    let spec = ReplaySpec {
        market: Some(StreamRange::default()),
        social: Some(StreamRange::default()),
        hot: false,
        progress_bar: false,
    };
    let replayed = insite_pipeline::replay(&replay_services, &config, &spec)
        .await
        .expect("replay");
    assert_eq!(replayed.events, 3_400);
    assert_bars_equal(
        &read_bars(&replay_services.clickhouse).await,
        &bars,
        "replay vs live",
    );
    assert_sentiment_equal(
        &read_sentiment(&replay_services.clickhouse).await,
        &sentiment,
        "replay vs live",
    );
}
