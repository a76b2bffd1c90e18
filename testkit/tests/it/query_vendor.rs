//! The vendor-compatible API with the vendor's own client: the pipeline
//! computes bars from raw trades over five New York days around the 2024
//! daylight-saving change, the query service serves them, and the official
//! Python client (`polygon-api-client` from PyPI, unchanged but for its
//! base URL) reads aggregates of every timespan (following `next_url`),
//! the previous close, the last trade, snapshots, movers, open/close and
//! grouped daily. The script compares each value with its own computation
//! from the same raw trades (`testkit/clients/polygon_rest.py`).

use std::process::Command;
use std::time::Duration;

use insite_pipeline::source::InputSource;
use insite_query::config::{ApiKey, AuthConfig};
use insite_query::QueryConfig;
use insite_schemas::{TimestampMs, Trade};
use insite_testkit::clients::{python, script};
use insite_testkit::fixtures::trade;
use insite_testkit::jetstream::publish_trades;
use insite_testkit::pipeline::{config, wait_running};
use insite_testkit::results::wait_stream_durable;
use insite_testkit::service::{start_pipeline, start_query};
use insite_testkit::TestEnv;
use serde_json::{json, Value};

/// The API key the client sends (as `Authorization: Bearer`).
const KEY: &str = "vendor-client-key";

/// 2024-03-08T00:00 in New York (05:00 UTC), a Friday.
const START: TimestampMs = 1_709_874_000_000;
/// 2024-03-13T00:00 in New York (04:00 UTC: daylight time since the 10th).
const END: TimestampMs = 1_710_302_400_000;

/// Raw trades of `symbols`: one every 97 s of each symbol, around the
/// clock, each its own price and size.
fn raw_trades(symbols: &[&str]) -> Vec<Trade> {
    let mut trades = Vec::new();
    for (k, symbol) in symbols.iter().enumerate() {
        let k = k as i64;
        let mut i = 0i64;
        loop {
            let ts = START + 11_000 * k + i * 97_000 + (i * 7_919) % 1_000;
            if ts >= END {
                break;
            }
            let mut t = trade(symbol, ts, &format!("{symbol}-{i}"));
            // Cents, drifting by symbol and day so that movers differ.
            let wave = ((i as f64) / 37.0).sin() * 8.0 + (i as f64) * 0.02 * (k as f64 - 1.0);
            t.price = ((100.0 + 40.0 * k as f64 + wave) * 100.0).round() / 100.0;
            t.size = 1 + ((i * 31 + k * 7) % 500) as u64;
            trades.push(t);
            i += 1;
        }
    }
    trades.sort_by_key(|t| t.ts);
    trades
}

/// The query service's settings: keys required, the client's key known.
fn keyed(pipeline: &str) -> QueryConfig {
    QueryConfig {
        pipeline: pipeline.into(),
        auth: AuthConfig {
            require_key: true,
            keys: vec![ApiKey {
                key: KEY.into(),
                name: "vendor-client".into(),
                per_second: 1_000,
                burst: 1_000,
            }],
            ..AuthConfig::default()
        },
        ..QueryConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_vendors_python_client_reads_exact_aggregates_snapshots_and_last_trades() {
    let env = TestEnv::new("query_vendor");
    let symbols = ["AAPL", "MSFT", "NVDA"];
    let trades = raw_trades(&symbols);

    // The pipeline computes and stores the bars from the raw trades.
    let pipeline_config = config("vendor");
    let pipeline = start_pipeline(&env.connections, &pipeline_config);
    wait_running(&env, &pipeline_config.consumer.market_durable).await;
    publish_trades(
        &env.jetstream().await,
        &env.connections.nats.streams,
        &trades,
    )
    .await;
    wait_stream_durable(
        &env.connections.clickhouse,
        "vendor",
        InputSource::Market,
        END + 10 * 60_000,
    )
    .await;
    pipeline.stop().await;

    let query = start_query(&env, keyed("vendor")).await;

    // The client runs in its own process; the trades go to it as JSON.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("trades.json");
    let rows: Vec<Value> = trades
        .iter()
        .map(|t| json!({"sym": t.symbol.as_str(), "ts": t.ts, "p": t.price, "s": t.size, "i": t.trade_id.as_str()}))
        .collect();
    std::fs::write(&input, serde_json::to_vec(&rows).unwrap()).unwrap();
    let base = query.url("");
    let python = python();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script("polygon_rest.py"))
            .arg(base)
            .arg(KEY)
            .arg(&input)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the client's checks failed:\n{stderr}\n{stdout}"
    );

    // What was compared: every check ran, over every bucket.
    let checks: Value = serde_json::from_str(stdout.trim()).unwrap();
    let per_symbol = trades.len() as u64 / symbols.len() as u64;
    let n = |name: &str| checks[name].as_u64().unwrap_or(0);
    assert!(n("get_aggs 1 minute") >= per_symbol - 5, "{checks}");
    assert_eq!(
        n("list_aggs 1 minute, pages of 700"),
        n("get_aggs 1 minute")
    );
    assert_eq!(n("get_aggs 1 day"), 5, "five New York days: {checks}");
    // 2024-03-10 is 23 hours long: 5 × 24 − 1 hours.
    assert_eq!(n("get_aggs 1 hour"), 119, "{checks}");
    assert_eq!(n("list_aggs 1 hour desc, pages of 7"), 119);
    // The week of Sunday 3 March (snapped to from its Friday) and of the 10th.
    assert_eq!(n("get_aggs 1 week"), 2, "{checks}");
    for one in ["get_aggs 1 month", "get_aggs 1 quarter", "get_aggs 1 year"] {
        assert_eq!(n(one), 1, "{one}: {checks}");
    }
    assert!(n("gainers") >= 1 && n("losers") >= 1, "{checks}");
    for one in [
        "previous close",
        "last trade",
        "snapshot",
        "daily open/close",
    ] {
        assert_eq!(n(one), 1, "{one}: {checks}");
    }
    assert_eq!(n("all snapshots"), 3);
    assert_eq!(n("grouped daily"), 3);
    // A durable day's grouped bars are computed once, then served from the
    // cache, byte for byte.
    let http = reqwest::Client::new();
    let grouped = query.url("/v2/aggs/grouped/locale/us/market/stocks/2024-03-11");
    let mut answers = Vec::new();
    for _ in 0..2 {
        let response = http.get(&grouped).bearer_auth(KEY).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let source = response.headers()["x-insite-source"]
            .to_str()
            .unwrap()
            .to_owned();
        answers.push((source, response.text().await.unwrap()));
    }
    assert_eq!(answers[1].0, "cache", "{answers:?}");
    assert_eq!(answers[0].1, answers[1].1);
    let body: Value = serde_json::from_str(&answers[1].1).unwrap();
    assert_eq!(body["resultsCount"], 3, "{body}");
    query.stop().await;
}

/// 2024-03-13T14:30:00Z (10:30 in New York), where the live trades start.
const LIVE: TimestampMs = 1_710_340_200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_vendors_websocket_client_receives_trades_and_minute_bars_live() {
    let env = TestEnv::new("query_vendor_ws");
    let pipeline_config = config("vendor_ws");
    let pipeline = start_pipeline(&env.connections, &pipeline_config);
    wait_running(&env, &pipeline_config.consumer.market_durable).await;
    let query = start_query(&env, keyed("vendor_ws")).await;

    // The client connects, authenticates and subscribes to T.AAPL, AM.AAPL.
    let feed = query.addr.to_string();
    let mut client = tokio::process::Command::new(python())
        .arg(script("polygon_ws.py"))
        .args([feed.as_str(), KEY, "60", "20", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Live trades, 3 s of event time apart, every 100 ms, until the
    // client has what it waits for: trades, and minutes that close.
    let js = env.jetstream().await;
    let mut published: Vec<Trade> = Vec::new();
    let output = loop {
        let n = published.len() as i64;
        let mut t = trade("AAPL", LIVE + n * 3_000, &format!("live-{n}"));
        t.price = 180.0 + ((n * 37) % 101) as f64 / 100.0;
        t.size = 10 + (n as u64 * 13) % 90;
        publish_trades(&js, &env.connections.nats.streams, std::slice::from_ref(&t)).await;
        published.push(t);
        if let Ok(status) = tokio::time::timeout(Duration::from_millis(100), client.wait()).await {
            status.unwrap();
            break client.wait_with_output().await.unwrap();
        }
        assert!(
            published.len() < 600,
            "the client never got what it waited for"
        );
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_slice(&output.stdout).unwrap();

    // Every trade event is a published trade, field for field.
    let trades = got["T"].as_array().unwrap();
    assert!(trades.len() >= 20, "{got}");
    for event in trades {
        let t = published
            .iter()
            .find(|t| t.trade_id.as_str() == event["i"].as_str().unwrap())
            .unwrap_or_else(|| panic!("{event} was never published"));
        assert_eq!(
            (event["ev"].as_str(), event["sym"].as_str()),
            (Some("T"), Some("AAPL"))
        );
        assert_eq!(event["p"].as_f64(), Some(t.price), "{event}");
        assert_eq!(event["s"].as_u64(), Some(t.size), "{event}");
        assert_eq!(event["t"].as_i64(), Some(t.ts), "{event}");
    }
    // Every minute event is the minute bar of the published trades.
    let minutes = got["AM"].as_array().unwrap();
    assert!(minutes.len() >= 2, "{got}");
    for event in minutes {
        let start = event["s"].as_i64().unwrap();
        assert_eq!(event["e"].as_i64(), Some(start + 60_000), "{event}");
        let of: Vec<&Trade> = published
            .iter()
            .filter(|t| (start..start + 60_000).contains(&t.ts))
            .collect();
        assert!(!of.is_empty(), "{event}");
        let volume: u64 = of.iter().map(|t| t.size).sum();
        let notional: f64 = of.iter().map(|t| t.price * t.size as f64).sum();
        let high = of.iter().map(|t| t.price).fold(f64::MIN, f64::max);
        let low = of.iter().map(|t| t.price).fold(f64::MAX, f64::min);
        assert_eq!(event["ev"].as_str(), Some("AM"));
        assert_eq!(event["o"].as_f64(), Some(of[0].price), "{event}");
        assert_eq!(event["c"].as_f64(), Some(of[of.len() - 1].price), "{event}");
        assert_eq!(event["h"].as_f64(), Some(high), "{event}");
        assert_eq!(event["l"].as_f64(), Some(low), "{event}");
        assert_eq!(event["v"].as_u64(), Some(volume), "{event}");
        assert_eq!(
            event["z"].as_u64(),
            Some(volume / of.len() as u64),
            "{event}"
        );
        let vwap = event["vw"].as_f64().unwrap();
        assert!((vwap - notional / volume as f64).abs() < 1e-9, "{event}");
    }
    query.stop().await;
    pipeline.stop().await;
}
