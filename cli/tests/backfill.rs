//! `insite backfill` as a real process against the shared test servers: it
//! must give the tables a fresh pipeline gives over the same file published
//! with `insite ingest files` (late events and rejected lines included),
//! read the vendor's flat-file layout like insite's own, and, next to a
//! live pipeline, write a disjoint range exactly and refuse an overlapping
//! one without touching the live tables.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use insite_ingest::{publish_files, BatchConfig, FilesConfig};
use insite_pipeline::{Connections, PipelineConfig};
use insite_testkit::jetstream::read_all;
use insite_testkit::pipeline::{config, run_until_durable, RECORDED_POSTS, RECORDED_START_MS};
use insite_testkit::results::{
    assert_bars_equal, assert_sentiment_equal, read_bars, read_late, read_sentiment,
};
use insite_testkit::{fixtures, TestEnv};
use tokio_util::sync::CancellationToken;

/// A day before the recorded input: a range no live pipeline has seen.
const DAY_MS: i64 = 86_400_000;

/// Lines of the trades file that are malformed, by their 1-based line number.
const BAD_LINES: [usize; 3] = [5, 400, 2_001];

/// The recorded trades shifted by `shift_ms`, with every 97th trade moved 5 s
/// back (beyond the 2 s allowed lateness: late events) and the lines of
/// [`BAD_LINES`] broken, in insite's CSV layout; returns the rows used
/// (symbol, ts, price, size, trade id, exchange) in file order.
fn trades_rows(shift_ms: i64) -> Vec<(String, i64, String, String, String, String)> {
    let text = fixtures::text("pipeline/trades.csv");
    text.lines()
        .skip(1)
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split(',').collect();
            let mut ts: i64 = f[1].parse().unwrap();
            ts += shift_ms;
            if i % 97 == 50 {
                ts -= 5_000;
            }
            (
                f[0].to_owned(),
                ts,
                f[2].to_owned(),
                f[3].to_owned(),
                f[4].to_owned(),
                f[5].to_owned(),
            )
        })
        .collect()
}

fn write_native(dir: &Path, name: &str, shift_ms: i64) -> PathBuf {
    let mut out = String::from("symbol,ts,price,size,trade_id,exchange\n");
    for (i, (sym, ts, price, size, id, ex)) in trades_rows(shift_ms).into_iter().enumerate() {
        let line_no = i + 2;
        if BAD_LINES.contains(&line_no) {
            out.push_str(&format!("{sym},{ts},not-a-price,{size},{id},{ex}\n"));
        } else {
            out.push_str(&format!("{sym},{ts},{price},{size},{id},{ex}\n"));
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

/// The same trades in the vendor's flat-file layout (nanosecond
/// timestamps), gzip-compressed.
fn write_vendor_gz(dir: &Path, name: &str, shift_ms: i64) -> PathBuf {
    let mut out = String::from(
        "ticker,conditions,correction,exchange,id,participant_timestamp,price,sequence_number,sip_timestamp,size,tape,trf_id,trf_timestamp\n",
    );
    for (i, (sym, ts, price, size, id, ex)) in trades_rows(shift_ms).into_iter().enumerate() {
        let line_no = i + 2;
        let price = if BAD_LINES.contains(&line_no) {
            "not-a-price".to_owned()
        } else {
            price
        };
        let ns = ts * 1_000_000 + 123_456;
        out.push_str(&format!(
            "{sym},,0,{ex},{id},{},{price},{i},{ns},{size},1,,\n",
            ns - 1_000
        ));
    }
    let path = dir.join(name);
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(out.as_bytes()).unwrap();
    gz.finish().unwrap();
    path
}

/// The recorded posts shifted by `shift_ms`.
fn write_posts(dir: &Path, name: &str, shift_ms: i64) -> PathBuf {
    let mut out = String::new();
    for line in fixtures::text(RECORDED_POSTS).lines() {
        let mut post: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = post["ts"].as_i64().unwrap_or_else(|| {
            insite_schemas::time::parse_time(post["ts"].as_str().unwrap()).unwrap()
        });
        post["ts"] = serde_json::json!(ts + shift_ms);
        out.push_str(&post.to_string());
        out.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

/// Runs `insite backfill --trades <args[0]> [--posts <args[1]>]` on
/// `connections`.
fn backfill(connections: &Connections, name: &str, args: &[&Path]) -> Output {
    let flags = ["--trades", "--posts"];
    backfill_with(connections, name, &flags[..args.len()], args)
}

/// Runs `insite backfill <flag_i> <path_i>...` on `connections`.
fn backfill_with(connections: &Connections, name: &str, flags: &[&str], paths: &[&Path]) -> Output {
    let dir = std::env::temp_dir().join(format!("insite-backfill-{}", std::process::id()));
    let file =
        insite_testkit::child::write_config(&dir, name, connections, &PipelineConfig::default())
            .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_insite"));
    command
        .arg("--config")
        .arg(&file)
        .args(["backfill", "--quiet"])
        .env("INSITE_LOG", "warn")
        .stdin(Stdio::null());
    for (i, flag) in flags.iter().enumerate() {
        command.arg(flag);
        if let Some(path) = paths.get(i) {
            command.arg(path);
        }
    }
    let output = command.output().expect("running insite backfill");
    eprintln!(
        "insite backfill: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_equals_a_fresh_pipeline_over_the_published_file() {
    let env = TestEnv::new("backfill_fresh");
    let dir = tempfile::tempdir().unwrap();
    let trades = write_native(dir.path(), "trades.csv", 0);
    let posts = write_posts(dir.path(), "posts.jsonl", 0);

    // The backfill of the files, into a database of its own (first, so
    // that its dead letters are not dropped as duplicates of those of
    // `ingest files` below).
    let native = env.with_database("native");
    insite_sinks::streams::ensure_streams(&env.jetstream().await, &env.connections.nats.streams)
        .await
        .unwrap();
    let dlq_before = read_all(&env.jetstream().await, &env.connections.nats.streams.dlq)
        .await
        .len();
    let out = backfill(&native, "native", &[&trades, &posts]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in BAD_LINES {
        assert!(
            stderr.contains(&format!("trades.csv:{line}:")),
            "line {line} is reported: {stderr}"
        );
    }
    let dead = read_all(&env.jetstream().await, &env.connections.nats.streams.dlq).await;
    assert_eq!(dead.len() - dlq_before, BAD_LINES.len(), "dead-lettered");
    // A fresh pipeline over the files as `insite ingest files` publishes them.
    let published = publish_files(
        &env.jetstream().await,
        &env.connections.nats.streams,
        FilesConfig {
            trades: Some(trades.clone()),
            posts: Some(posts.clone()),
            batch: BatchConfig::for_files(),
            ..FilesConfig::default()
        },
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(published.rejected, BAD_LINES.len() as u64);
    let fresh = env.with_database("fresh");
    run_until_durable(&fresh, &config("fresh"), RECORDED_START_MS + 13 * 60_000).await;
    let want_bars = read_bars(&fresh.clickhouse).await;
    let want_sentiment = read_sentiment(&fresh.clickhouse).await;
    let want_late = read_late(&fresh.clickhouse).await;
    assert!(want_bars.len() > 100, "{} bars", want_bars.len());
    assert!(!want_sentiment.is_empty());
    assert!(!want_late.is_empty(), "the file has late trades");

    assert_bars_equal(&read_bars(&native.clickhouse).await, &want_bars, "backfill");
    assert_sentiment_equal(
        &read_sentiment(&native.clickhouse).await,
        &want_sentiment,
        "backfill",
    );
    assert_eq!(read_late(&native.clickhouse).await, want_late);

    // The same trades in the vendor's flat-file layout, gzip.
    let vendor = write_vendor_gz(dir.path(), "vendor-trades.csv.gz", 0);
    let flat = env.with_database("flat");
    let out = backfill(&flat, "flat", &[&vendor, &posts]);
    assert!(out.status.success());
    assert_bars_equal(
        &read_bars(&flat.clickhouse).await,
        &want_bars,
        "vendor layout",
    );

    // The vendor's minute aggregates of those bars (with a vwap column),
    // gzip: the 1-minute bars as they are, the 5-minute ones rolled up.
    let mut aggs =
        String::from("ticker,volume,open,close,high,low,window_start,transactions,vwap\n");
    for ((sym, interval, start), (o, h, l, c, v, vwap, n)) in &want_bars {
        if *interval == 60 {
            aggs.push_str(&format!(
                "{sym},{v},{o},{c},{h},{l},{},{n},{vwap}\n",
                start * 1_000_000
            ));
        }
    }
    aggs.push_str("AAPL,10,1,1,0.5,2,1767623400000000000,1,1\n"); // high < low
    let aggs_path = dir.path().join("minute_aggs.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&aggs_path).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(aggs.as_bytes()).unwrap();
    gz.finish().unwrap();
    let from_aggs = env.with_database("aggs");
    let out = backfill_with(&from_aggs, "aggs", &["--minute-aggs"], &[&aggs_path]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("minute_aggs.csv.gz:"));
    let whole_minutes = want_bars
        .iter()
        .filter(|((_, interval, _), _)| *interval >= 60)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_bars_equal(
        &read_bars(&from_aggs.clickhouse).await,
        &whole_minutes,
        "minute aggregates",
    );

    // Again into the same database: nothing changes.
    let out = backfill(&native, "native", &[&trades, &posts]);
    assert!(out.status.success());
    assert_bars_equal(&read_bars(&native.clickhouse).await, &want_bars, "re-run");
    assert_eq!(read_late(&native.clickhouse).await, want_late);

    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_to_a_live_pipeline_a_disjoint_range_is_exact_and_an_overlap_is_refused() {
    let env = TestEnv::new("backfill_live");
    let dir = tempfile::tempdir().unwrap();
    // The live pipeline has the recorded day.
    insite_testkit::pipeline::publish_recorded(&env).await;
    let live_config = config("live");
    let live = insite_testkit::service::start_pipeline(&env.connections, &live_config);
    insite_testkit::results::wait_durable(
        &env.connections.clickhouse,
        "live",
        RECORDED_START_MS + 13 * 60_000,
    )
    .await;
    let live_bars = read_bars(&env.connections.clickhouse).await;
    assert!(!live_bars.is_empty());

    // A day earlier: never seen live. Into the live database it must come
    // out as into a database of its own.
    let trades = write_native(dir.path(), "earlier.csv", -DAY_MS);
    let posts = write_posts(dir.path(), "earlier.jsonl", -DAY_MS);
    let alone = env.with_database("alone");
    assert!(backfill(&alone, "alone", &[&trades, &posts])
        .status
        .success());
    let want_earlier = read_bars(&alone.clickhouse).await;
    let out = backfill(&env.connections, "into-live", &[&trades, &posts]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("staged"),
        "the live database is written through staging"
    );
    let mut want = live_bars.clone();
    want.extend(want_earlier);
    assert_bars_equal(
        &read_bars(&env.connections.clickhouse).await,
        &want,
        "live + earlier day",
    );

    // The live day again, in a different file: refused, naming the overlap,
    // and the live tables stay as they were.
    let before = read_bars(&env.connections.clickhouse).await;
    let before_sentiment = read_sentiment(&env.connections.clickhouse).await;
    let overlapping = write_native(dir.path(), "overlap.csv", 0);
    let out = backfill(&env.connections, "overlap", &[&overlapping]);
    assert!(!out.status.success(), "an overlapping backfill is refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused") && stderr.contains("bars AAPL 60 s windows"),
        "{stderr}"
    );
    assert!(
        stderr.contains("already final from the live pipeline"),
        "{stderr}"
    );
    assert_bars_equal(
        &read_bars(&env.connections.clickhouse).await,
        &before,
        "after the refused backfill",
    );
    assert_sentiment_equal(
        &read_sentiment(&env.connections.clickhouse).await,
        &before_sentiment,
        "after the refused backfill",
    );
    // No staging database is left behind.
    let left: u64 = env
        .clickhouse()
        .query("SELECT count() FROM system.databases WHERE name LIKE ?")
        .bind(format!(
            "{}_backfill_%",
            env.connections.clickhouse.database
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(left, 0);

    live.stop().await;
    env.cleanup().await;
}
