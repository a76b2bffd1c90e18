//! The query service's HTTP API against real Redis and ClickHouse, filled by
//! the sinks: Redis first, ClickHouse on a miss with write-back, caching
//! headers, paging, warm-up at start.

use insite_query::QueryConfig;
use insite_schemas::{
    Alert, AlertKind, Bar, Finality, Interval, Quote, SentimentWindow, Trade, Trending,
    TrendingEntry,
};
use insite_sinks::clickhouse::rows::{AlertRow, BarRow, SentimentRow};
use insite_sinks::clickhouse::{migrate, TableWriter, WriterConfig};
use insite_sinks::redis::{HotUpdate, RedisSink, RedisSinkConfig};
use insite_testkit::fixtures::{bar, symbol as sym};
use insite_testkit::service::start_query;
use insite_testkit::TestEnv;
use redis::AsyncCommands;
use serde_json::Value;

/// 2023-11-14T00:00:00Z, a closed day.
const DAY: i64 = 1_699_920_000_000;

/// The bar of minute `i` of `DAY`, each minute's prices its own.
fn day_bar(symbol: &str, i: i64) -> Bar {
    let base = 100.0 + (i % 50) as f64;
    bar(symbol, Interval::MINUTE, DAY + i * 60_000)
        .ohlc(base, base + 2.0, base - 1.0, base + 0.5)
        .vwap(base + 0.25)
        .volume(1_000 + i as u64)
        .trades(10 + i as u64)
        .build()
}

fn window(symbol: &str, window_start: i64, score: f64) -> SentimentWindow {
    SentimentWindow {
        symbol: sym(symbol),
        interval: Interval::MINUTE,
        window_start,
        posts: 4,
        score,
        positive: 2,
        negative: 1,
        neutral: 1,
        weighted_score: score / 2.0,
        finality: Finality::Final,
    }
}

fn alert(symbol: &str, window_start: i64, message: &str) -> Alert {
    Alert {
        symbol: sym(symbol),
        kind: AlertKind::VolumeSpike,
        interval: Interval::MINUTE,
        window_start,
        value: 5.0,
        threshold: 3.0,
        message: message.into(),
    }
}

async fn fill_clickhouse(env: &TestEnv) {
    migrate(&env.connections.clickhouse).await.unwrap();
    // The pipeline has made the whole day durable: its ranges are immutable.
    insite_testkit::results::record_frontier(env, "insite", "market", DAY + 86_400_000 + 1, 1)
        .await;
    let mut bars = TableWriter::<BarRow>::new(env.clickhouse(), "bars", WriterConfig::default());
    for symbol in ["AAPL", "MSFT", "NVDA"] {
        for i in 0..1_440 {
            bars.push(BarRow::from_bar(&day_bar(symbol, i), 1));
        }
    }
    // A re-delivered, recomputed bar with a higher version replaces the first.
    let mut fixed = day_bar("AAPL", 0);
    fixed.close = 777.0;
    bars.push(BarRow::from_bar(&fixed, 2));
    bars.flush().await.unwrap();
    let mut sentiment =
        TableWriter::<SentimentRow>::new(env.clickhouse(), "sentiment", WriterConfig::default());
    for i in 0..10 {
        sentiment.push(SentimentRow::from_window(
            &window("AAPL", DAY + i * 60_000, 0.1 * i as f64),
            1,
        ));
    }
    sentiment.flush().await.unwrap();
    let mut alerts =
        TableWriter::<AlertRow>::new(env.clickhouse(), "alerts", WriterConfig::default());
    alerts.push(AlertRow::from_alert(
        &alert("NVDA", DAY, "NVDA volume 5x"),
        1,
    ));
    alerts.flush().await.unwrap();
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_hot_state_history_and_caches_closed_ranges() {
    let env = TestEnv::new("query_http");
    fill_clickhouse(&env).await;
    let now = insite_schemas::time::now_ms();
    let current_start = Interval::MINUTE.window_start(now);

    // Hot state, as the pipeline's Redis sink writes it: AAPL's last five
    // final bars and its current provisional one, a quote, a trade, a
    // trending list and alerts.
    let mut sink = RedisSink::connect(&env.connections.redis, RedisSinkConfig::default())
        .await
        .unwrap();
    for k in (1..=5).rev() {
        sink.push(HotUpdate::Bar(
            bar("AAPL", Interval::MINUTE, current_start - k * 60_000)
                .close(20.0 + k as f64)
                .build(),
        ))
        .unwrap();
    }
    let provisional = bar("AAPL", Interval::MINUTE, current_start)
        .close(12.5)
        .finality(Finality::Provisional)
        .build();
    sink.push(HotUpdate::Bar(provisional.clone())).unwrap();
    sink.push(HotUpdate::Quote(Quote {
        symbol: sym("AAPL"),
        ts: now,
        bid: 12.4,
        bid_size: 100,
        ask: 12.6,
        ask_size: 200,
    }))
    .unwrap();
    sink.push(HotUpdate::Trade(Trade {
        symbol: sym("AAPL"),
        ts: now,
        price: 12.5,
        size: 10,
        exchange: "XNAS".into(),
        trade_id: "t1".into(),
        conditions: vec![],
    }))
    .unwrap();
    sink.push(HotUpdate::Trending(Trending {
        interval: Interval::MINUTE,
        window_start: current_start,
        entries: (0..20)
            .map(|i| TrendingEntry {
                symbol: sym(&format!("S{i}")),
                mentions: 100 - i,
                zscore: 2.0,
            })
            .collect(),
        finality: Finality::Provisional,
    }))
    .unwrap();
    sink.push(HotUpdate::Alert(alert(
        "AAPL",
        current_start,
        "AAPL volume 5x",
    )))
    .unwrap();
    sink.flush().await.unwrap();

    let service = start_query(
        &env,
        QueryConfig {
            cache: insite_query::config::CacheConfig {
                warm_symbols: vec!["MSFT".into()],
                ..Default::default()
            },
            ..QueryConfig::default()
        },
    )
    .await;
    let http = reqwest::Client::new();

    // Warm-up loaded MSFT's newest final bars from ClickHouse into Redis.
    let mut redis = env.redis().await;
    let keys = insite_sinks::redis::RedisKeys::new(&env.connections.redis.key_prefix);
    let warmed: usize = redis
        .zcard(keys.bars(&sym("MSFT"), Interval::MINUTE))
        .await
        .unwrap();
    assert_eq!(warmed, 500);

    // Latest bar, quote, trade: straight from Redis.
    let (status, headers, v) = get(&http, &service.url("/v1/symbols/AAPL/bar?interval=1m")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(headers["x-insite-source"], "redis");
    let got: Bar = serde_json::from_value(v).unwrap();
    assert_eq!(got, provisional);
    let (status, _, v) = get(&http, &service.url("/v1/symbols/AAPL/quote")).await;
    assert_eq!((status, v["bid"].as_f64()), (200, Some(12.4)));
    let (status, _, v) = get(&http, &service.url("/v1/symbols/AAPL/trade")).await;
    assert_eq!((status, v["trade_id"].as_str()), (200, Some("t1")));
    let (status, _, v) = get(&http, &service.url("/v1/symbols/ZZZZ/trade")).await;
    assert_eq!((status, v["code"].as_str()), (404, Some("not_found")));

    // NVDA's latest bar is only in ClickHouse: the first answer comes from
    // there and is written back, the second from Redis.
    let url = service.url("/v1/symbols/NVDA/bar?interval=1m");
    let (status, headers, v) = get(&http, &url).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(headers["x-insite-source"], "clickhouse");
    assert_eq!(v["window_start"], DAY + 1_439 * 60_000);
    let (_, headers, v2) = get(&http, &url).await;
    assert_eq!(headers["x-insite-source"], "redis");
    assert_eq!(v, v2);

    // A closed day of 1-minute bars: ClickHouse (FINAL: the recomputed bar
    // wins), immutable, then the cached answer, then 304 on its ETag.
    let url = service.url(&format!(
        "/v1/aggs/AAPL/range/1m/{DAY}/{}",
        DAY + 86_400_000
    ));
    let (status, headers, v) = get(&http, &url).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(headers["x-insite-source"], "clickhouse");
    assert!(headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1_440);
    assert_eq!(v["resultsCount"], 1_440);
    assert!(v.get("next_url").is_none());
    assert_eq!(results[0]["c"], 777.0);
    for (i, r) in results.iter().enumerate().skip(1) {
        let b = day_bar("AAPL", i as i64);
        assert_eq!(r["t"], b.window_start);
        assert_eq!(r["o"], b.open);
        assert_eq!(r["h"], b.high);
        assert_eq!(r["l"], b.low);
        assert_eq!(r["c"], b.close);
        assert_eq!(r["v"], b.volume);
        assert_eq!(r["vw"], b.vwap);
        assert_eq!(r["n"], b.trades);
    }
    let etag = headers["etag"].clone();
    let (_, headers2, v2) = get(&http, &url).await;
    assert_eq!(headers2["x-insite-source"], "cache");
    assert_eq!(headers2["etag"], etag);
    assert_eq!(v, v2);
    let r = http
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // The same day by date.
    let (_, headers3, _) = get(
        &http,
        &service.url("/v1/aggs/AAPL/range/1m/2023-11-14/2023-11-14"),
    )
    .await;
    assert_eq!(headers3["etag"], etag);

    // Paging: 1,000 then 440 via next_url.
    let (_, _, page1) = get(&http, &format!("{url}?limit=1000")).await;
    assert_eq!(page1["results"].as_array().unwrap().len(), 1_000);
    let next = page1["next_url"].as_str().unwrap();
    let (_, _, page2) = get(&http, &service.url(next)).await;
    let rest = page2["results"].as_array().unwrap();
    assert_eq!(rest.len(), 440);
    assert_eq!(rest[0]["t"], DAY + 1_000 * 60_000);
    assert!(page2.get("next_url").is_none());

    // The recent window comes from Redis, with the provisional bar last;
    // it may still change, so it is not immutable.
    let url = service.url(&format!(
        "/v1/aggs/AAPL/range/1m/{}/{}",
        current_start - 5 * 60_000,
        current_start + 60_000
    ));
    let (status, headers, v) = get(&http, &url).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(headers["x-insite-source"], "redis");
    assert!(!headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    assert_eq!(results[5]["c"], 12.5);
    assert_eq!(results[5]["final"], false);
    assert_eq!(results[0]["c"], 25.0);

    // Sentiment over a closed range, from ClickHouse.
    let (status, _, v) = get(
        &http,
        &service.url(&format!(
            "/v1/sentiment/AAPL/range/1m/{DAY}/{}",
            DAY + 5 * 60_000
        )),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let scores: Vec<f64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["score"].as_f64().unwrap())
        .collect();
    assert_eq!(scores.len(), 5);
    assert!((scores[3] - 0.3).abs() < 1e-9);

    // Trending (top N of Redis's list) and alerts (Redis, else ClickHouse).
    let (status, _, v) = get(&http, &service.url("/v1/trending?interval=1m&limit=3")).await;
    assert_eq!(status, 200, "{v}");
    let top: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(top, ["S0", "S1", "S2"]);
    let (_, headers, v) = get(&http, &service.url("/v1/alerts")).await;
    assert_eq!(headers["x-insite-source"], "redis");
    assert_eq!(v["results"][0]["message"], "AAPL volume 5x");
    let (_, headers, v) = get(&http, &service.url("/v1/alerts?symbol=NVDA")).await;
    assert_eq!(headers["x-insite-source"], "clickhouse");
    assert_eq!(v["results"][0]["message"], "NVDA volume 5x");

    // Metrics saw all of it.
    let text = http
        .get(service.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "insite_query_cache_total{kind=\"bars\",source=\"cache\",route=\"/v1/aggs/{symbol}/range/{interval}/{from}/{to}\"}"
        ),
        "{text}"
    );
    assert!(text.contains("route=\"/v1/aggs/{symbol}/range/{interval}/{from}/{to}\""));
    service.stop().await;
}
