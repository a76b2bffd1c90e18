//! The OpenAPI document tells the truth: schemathesis (from PyPI) runs
//! every check it has (`--checks all`) against a live query service, over
//! insite's `/v1` and the vendor-compatible routes, and finds nothing: no
//! undocumented status, no schema-valid request refused, no schema-invalid
//! one accepted, no answer that does not match its schema, no server error.
//!
//! Bounded in examples and time, and run as its own stage of
//! `scripts/test.sh` (`cargo test ... query_schemathesis -- --ignored`).

use std::process::Command;

use insite_query::QueryConfig;
use insite_schemas::{Interval, Quote, Trade};
use insite_sinks::clickhouse::rows::BarRow;
use insite_sinks::clickhouse::{migrate, TableWriter, WriterConfig};
use insite_sinks::redis::{HotUpdate, RedisSink, RedisSinkConfig};
use insite_testkit::clients::python;
use insite_testkit::fixtures::{bar, symbol};
use insite_testkit::service::start_query;
use insite_testkit::TestEnv;

/// 2024-03-11T04:00Z: midnight in New York.
const DAY: i64 = 1_710_129_600_000;

/// Some bars, a trade and a quote, so that the routes answer 200 too.
async fn fill(env: &TestEnv) {
    migrate(&env.connections.clickhouse).await.unwrap();
    let mut bars = TableWriter::<BarRow>::new(env.clickhouse(), "bars", WriterConfig::default());
    for (interval, count) in [
        (Interval::SECOND, 600),
        (Interval::MINUTE, 600),
        (Interval::FIVE_MINUTES, 120),
    ] {
        for s in ["AAPL", "MSFT"] {
            for i in 0..count {
                let start = DAY + i * interval.millis();
                let p = 100.0 + (i % 17) as f64;
                bars.push(BarRow::from_bar(
                    &bar(s, interval, start)
                        .ohlc(p, p + 1.0, p - 1.0, p + 0.5)
                        .build(),
                    1,
                ));
            }
        }
    }
    bars.flush().await.unwrap();
    let mut sink = RedisSink::connect(&env.connections.redis, RedisSinkConfig::default())
        .await
        .unwrap();
    sink.push(HotUpdate::Trade(Trade {
        symbol: symbol("AAPL"),
        ts: DAY + 3_600_000,
        price: 101.5,
        size: 10,
        exchange: "XNAS".into(),
        trade_id: "t1".into(),
        conditions: vec!["12".into()],
    }))
    .unwrap();
    sink.push(HotUpdate::Quote(Quote {
        symbol: symbol("AAPL"),
        ts: DAY + 3_600_000,
        bid: 101.4,
        bid_size: 100,
        ask: 101.6,
        ask_size: 200,
    }))
    .unwrap();
    sink.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a stage of its own in scripts/test.sh (schemathesis, a few minutes)"]
async fn schemathesis_finds_nothing_over_v1_and_the_vendor_routes() {
    let env = TestEnv::new("query_schemathesis");
    fill(&env).await;
    let query = start_query(&env, QueryConfig::default()).await;
    let schema = query.url("/v1/openapi.json");
    let base = query.url("");
    let venv = python();
    let schemathesis = venv.with_file_name("schemathesis");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .args(["run", &schema, "--url", &base, "--checks", "all"])
            // No stateful phase: the API has no resources that one call
            // creates and another reads (and so no links to follow).
            .args(["--phases", "examples,coverage,fuzzing"])
            .args([
                "--max-examples",
                "40",
                "--max-time",
                "120",
                "--workers",
                "2",
            ])
            .args(["--request-timeout", "20", "--seed", "20240311"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{stdout}\n{stderr}"
    );
    query.stop().await;
}
