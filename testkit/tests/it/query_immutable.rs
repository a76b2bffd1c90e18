//! When a range answer of the query service is immutable: only once every
//! window in it is final and durable, as the pipeline's durable frontier
//! (`pipeline_checkpoints`) says, never because the wall clock has moved
//! past `to`. Until then the answer is live (short `max-age`, no cached
//! closed-range answer), so the final result of its last window shows up
//! as soon as ClickHouse has it.

use std::time::Duration;

use insite_query::QueryConfig;
use insite_schemas::{Bar, Finality, Interval, SentimentWindow};
use insite_sinks::clickhouse::rows::{BarRow, SentimentRow};
use insite_sinks::clickhouse::{migrate, TableWriter, WriterConfig};
use insite_testkit::TestEnv;
use redis::AsyncCommands;
use serde_json::Value;

use insite_testkit::fixtures::{bar, symbol};
use insite_testkit::results::record_frontier;
use insite_testkit::service::start_query;

/// 2023-11-14T00:00:00Z: the day the bars are on.
const DAY: i64 = 1_699_920_000_000;

/// The bar of minute `i` of `DAY`, each minute's prices its own.
fn day_bar(symbol: &str, i: i64) -> Bar {
    let base = 100.0 + (i % 50) as f64;
    bar(symbol, Interval::MINUTE, DAY + i * 60_000)
        .ohlc(base, base + 2.0, base - 1.0, base + 0.5)
        .build()
}

/// Longer than the query service keeps a frontier it has read (500 ms).
const FRONTIER_SEEN: Duration = Duration::from_millis(1_200);

/// One HTTP answer: `Cache-Control`, `X-Insite-Source`, `ETag`, body.
struct Answer {
    cache_control: String,
    source: String,
    etag: String,
    body: Value,
}

impl Answer {
    fn immutable(&self) -> bool {
        self.cache_control.contains("immutable")
    }

    /// The window starts of the results, oldest first.
    fn starts(&self) -> Vec<i64> {
        self.body["results"]
            .as_array()
            .unwrap_or_else(|| panic!("no results in {}", self.body))
            .iter()
            .map(|r| {
                r.get("t")
                    .or_else(|| r.get("window_start"))
                    .and_then(Value::as_i64)
                    .unwrap()
            })
            .collect()
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Answer {
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (cache_control, source, etag) = (
        header("cache-control"),
        header("x-insite-source"),
        header("etag"),
    );
    let body = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    Answer {
        cache_control,
        source,
        etag,
        body,
    }
}

/// Fetches `url` until its answer is immutable (the service re-reads the
/// frontier at most every 500 ms).
async fn fetch_until_immutable(http: &reqwest::Client, url: &str) -> Answer {
    for _ in 0..100 {
        let answer = fetch(http, url).await;
        if answer.immutable() {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never became immutable");
}

async fn write_bars(env: &TestEnv, bars: &[Bar]) {
    let mut writer = TableWriter::<BarRow>::new(env.clickhouse(), "bars", WriterConfig::default());
    for bar in bars {
        writer.push(BarRow::from_bar(bar, 1));
    }
    writer.flush().await.unwrap();
}

async fn write_sentiment(env: &TestEnv, windows: &[SentimentWindow]) {
    let mut writer =
        TableWriter::<SentimentRow>::new(env.clickhouse(), "sentiment", WriterConfig::default());
    for w in windows {
        writer.push(SentimentRow::from_window(w, 1));
    }
    writer.flush().await.unwrap();
}

fn sentiment_at(window_start: i64) -> SentimentWindow {
    SentimentWindow {
        symbol: symbol("AAPL"),
        interval: Interval::MINUTE,
        window_start,
        posts: 3,
        score: 0.5,
        positive: 2,
        negative: 0,
        neutral: 1,
        weighted_score: 0.25,
        finality: Finality::Final,
    }
}

/// The cached range answers in Redis (`{SYM}:q...:...` keys, under any
/// version of their name).
async fn cached_answers(env: &TestEnv) -> Vec<String> {
    let mut redis = env.redis().await;
    let pattern = format!("{}*:q*:*", env.connections.redis.key_prefix);
    redis.keys(pattern).await.unwrap()
}

/// A range of a past day whose last window the pipeline has not made
/// durable yet: live (and not cached) with no frontier, with a frontier at
/// the window's end, with further frontiers of one of its processes and of
/// another pipeline; immutable, with the final bar, once the pipeline's own frontier is past
/// it. Sentiment follows the `social` source's frontier, not `market`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_is_immutable_only_once_the_frontier_passes_its_last_window() {
    let env = TestEnv::new("query_immutable");
    migrate(&env.connections.clickhouse).await.unwrap();
    // Final bars of minutes 0..10 of a past day; minute 10 is still open
    // (the pipeline has not finished it, ClickHouse has no bar of it).
    let bars: Vec<Bar> = (0..10).map(|i| day_bar("AAPL", i)).collect();
    write_bars(&env, &bars).await;
    let open_start = DAY + 10 * 60_000;
    let open_end = open_start + 60_000;

    let service = start_query(&env, QueryConfig::default()).await;
    let http = reqwest::Client::new();
    // The request: up to the start of the open window + 1.
    let url = service.url(&format!("/v1/aggs/AAPL/range/1m/{DAY}/{}", open_start + 1));

    // No frontier at all (a fresh database): nothing is immutable.
    let first = fetch(&http, &url).await;
    assert!(
        !first.immutable(),
        "no frontier, yet immutable: {}",
        first.cache_control
    );
    assert!(
        first.cache_control.contains("must-revalidate"),
        "{}",
        first.cache_control
    );
    assert_eq!(first.starts().len(), 10);
    let again = fetch(&http, &url).await;
    assert_ne!(again.source, "cache", "a live answer was cached");
    assert!(cached_answers(&env).await.is_empty());

    // The frontier reaches the open window's end but not past it; a
    // process's own row and another pipeline's are further on: still live.
    record_frontier(&env, "insite", "market", DAY + 5 * 60_000, 1).await;
    record_frontier(&env, "insite", "market", open_end, 2).await;
    record_frontier(&env, "insite/0", "market", open_end + 3_600_000, 9).await;
    record_frontier(&env, "other", "market", open_end + 3_600_000, 9).await;
    tokio::time::sleep(FRONTIER_SEEN).await;
    let lagging = fetch(&http, &url).await;
    assert!(
        !lagging.immutable(),
        "frontier at the window's end, yet immutable: {}",
        lagging.cache_control
    );
    assert_ne!(lagging.source, "cache");
    assert!(cached_answers(&env).await.is_empty());

    // The window closes: its final bar reaches ClickHouse, then the
    // pipeline records a frontier past it. The next answer has it and is
    // immutable, then comes from the closed-range cache.
    let last = day_bar("AAPL", 10);
    write_bars(&env, std::slice::from_ref(&last)).await;
    record_frontier(&env, "insite", "market", open_end + 1, 3).await;
    let done = fetch_until_immutable(&http, &url).await;
    let mut expected: Vec<i64> = bars.iter().map(|b| b.window_start).collect();
    expected.push(open_start);
    assert_eq!(done.starts(), expected, "{}", done.body);
    assert_eq!(done.body["results"][10]["c"], last.close);
    assert_eq!(done.body["results"][10]["final"], true);
    let cached = fetch(&http, &url).await;
    assert_eq!(cached.source, "cache");
    assert!(cached.immutable());
    assert_eq!(cached.etag, done.etag);
    assert_eq!(cached.body, done.body);
    assert_eq!(cached_answers(&env).await.len(), 1);

    // Sentiment of the same minutes trusts the social frontier: with only
    // a process's own row (the market frontier is past), live; then with
    // the pipeline's past the window, immutable.
    write_sentiment(
        &env,
        &(0..=10)
            .map(|i| sentiment_at(DAY + i * 60_000))
            .collect::<Vec<_>>(),
    )
    .await;
    let url = service.url(&format!(
        "/v1/sentiment/AAPL/range/1m/{DAY}/{}",
        open_start + 1
    ));
    record_frontier(&env, "insite/0", "social", open_end + 3_600_000, 9).await;
    tokio::time::sleep(FRONTIER_SEEN).await;
    let live = fetch(&http, &url).await;
    assert!(
        !live.immutable(),
        "sentiment immutable without a social frontier: {}",
        live.cache_control
    );
    assert_eq!(live.starts().len(), 11);
    record_frontier(&env, "insite", "social", open_end + 1, 10).await;
    let done = fetch_until_immutable(&http, &url).await;
    assert_eq!(done.starts().len(), 11);
    service.stop().await;
}

/// A lagging pipeline: windows that ended minutes ago by the wall clock
/// but are past the durable frontier are live, including the issue's
/// `to` = start of the current 5-minute window + 1; those before the
/// frontier are immutable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_clock_past_but_beyond_the_frontier_is_not_immutable() {
    let env = TestEnv::new("query_immutable_lag");
    migrate(&env.connections.clickhouse).await.unwrap();
    let five = Interval::FIVE_MINUTES;
    let current = five.window_start(insite_schemas::time::now_ms());
    let start = |k: i64| current - k * five.millis();
    // Final 5-minute bars of the six windows before the current one; the
    // pipeline is behind: durable only up to the end of window -4.
    let bars: Vec<Bar> = (1..=6)
        .rev()
        .map(|k| {
            bar("AAPL", five, start(k))
                .close(20.0 + k as f64)
                .finality(Finality::Final)
                .build()
        })
        .collect();
    write_bars(&env, &bars).await;
    record_frontier(&env, "insite", "market", five.window_end(start(4)) + 1, 1).await;
    // The social source is far ahead: it says nothing about bars.
    record_frontier(&env, "insite", "social", current + 3_600_000, 1).await;

    let service = start_query(&env, QueryConfig::default()).await;
    let http = reqwest::Client::new();
    let range = |to: i64| {
        service.url(&format!(
            "/v1/aggs/AAPL/range/5m/{}/{to}?limit=100",
            start(6)
        ))
    };

    // `to` within window -2, which ended at least five minutes ago (well
    // past the old 60 s settling time) but not before the frontier.
    let lagging = fetch(&http, &range(start(2) + 1)).await;
    assert!(
        !lagging.immutable(),
        "past by the wall clock, beyond the frontier, yet immutable: {}",
        lagging.cache_control
    );
    assert_eq!(lagging.starts().len(), 5);
    // `to` exactly at the end of window -3 (its last window is -3).
    let lagging = fetch(&http, &range(start(2))).await;
    assert!(!lagging.immutable(), "{}", lagging.cache_control);
    // The request: the current window + 1.
    let current_range = fetch(&http, &range(current + 1)).await;
    assert!(
        !current_range.immutable(),
        "{}",
        current_range.cache_control
    );
    assert!(cached_answers(&env).await.is_empty());

    // Up to window -4, which the frontier is past: immutable, and cached.
    let durable = fetch(&http, &range(start(3))).await;
    assert!(durable.immutable(), "{}", durable.cache_control);
    assert_eq!(durable.starts(), [start(6), start(5), start(4)]);
    assert_eq!(fetch(&http, &range(start(3))).await.source, "cache");
    service.stop().await;
}
