//! `insite ingest files` against a real JetStream: the good lines of the
//! fixture files arrive exactly, each malformed line lands in the DLQ with
//! its file, line number and reason, and a replayed file is deduplicated.

use insite_ingest::{BatchConfig, Event, FilesConfig};
use insite_schemas::wire;
use insite_testkit::fixtures;
use insite_testkit::jetstream::{decode_events, read_all};
use insite_testkit::TestEnv;
use tokio_util::sync::CancellationToken;

fn config(batch: usize) -> FilesConfig {
    FilesConfig {
        trades: Some(fixtures::file("ingest/trades.csv")),
        quotes: Some(fixtures::file("ingest/quotes.csv")),
        posts: Some(fixtures::file("ingest/posts.jsonl")),
        speed: None,
        batch: BatchConfig {
            max_events: batch,
            ..BatchConfig::default()
        },
        ..FilesConfig::default()
    }
}

/// The good rows of the fixtures, read here independently of the library:
/// (kind, symbol or id, ts).
fn good_rows() -> Vec<(String, String, i64)> {
    let mut rows = Vec::new();
    for line in fixtures::text("ingest/trades.csv").lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let ok =
            f.len() >= 4 && f[2].parse::<f64>().is_ok() && f[3].parse::<u64>().is_ok_and(|s| s > 0);
        if ok {
            rows.push((
                "trade".into(),
                f[0].to_ascii_uppercase(),
                insite_schemas::time::parse_time(f[1]).unwrap(),
            ));
        }
    }
    for line in fixtures::text("ingest/quotes.csv").lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if let Ok(ts) = insite_schemas::time::parse_time(f[0]) {
            rows.push(("quote".into(), f[1].to_owned(), ts));
        }
    }
    for line in fixtures::text("ingest/posts.jsonl").lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            let ts = match &v["ts"] {
                serde_json::Value::String(s) => insite_schemas::time::parse_time(s).unwrap(),
                n => n.as_i64().unwrap(),
            };
            rows.push(("post".into(), v["id"].as_str().unwrap().to_owned(), ts));
        }
    }
    rows.sort();
    rows
}

fn rows_of(events: &[Event]) -> Vec<(String, String, i64)> {
    let mut rows: Vec<_> = events
        .iter()
        .map(|e| match e {
            Event::Trade(t) => ("trade".to_owned(), t.symbol.to_string(), t.ts),
            Event::Quote(q) => ("quote".to_owned(), q.symbol.to_string(), q.ts),
            Event::Post(p) => ("post".to_owned(), p.id.clone(), p.ts),
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn replay_publishes_good_lines_and_dead_letters_bad_ones() {
    let env = TestEnv::new("ingest_replay");
    let js = env.jetstream().await;
    let streams = &env.connections.nats.streams;

    let report = insite_ingest::publish_files(&js, streams, config(4), CancellationToken::new())
        .await
        .unwrap();
    let expected = good_rows();
    assert_eq!(expected.len(), 14, "fixture rows");
    assert_eq!(report.events, expected.len() as u64);
    assert_eq!(report.rejected, 5);
    assert_eq!(report.dead_lettered, 5);

    let mut stored = decode_events(&read_all(&js, &streams.market).await);
    stored.extend(decode_events(&read_all(&js, &streams.social).await));
    assert_eq!(rows_of(&stored), expected);
    // Content survives: the first AAPL trade as written in the file.
    let first = stored
        .iter()
        .find_map(|e| match e {
            Event::Trade(t) if t.trade_id == "1001" => Some(t.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (first.price, first.size, first.exchange.as_str()),
        (179.52, 100, "XNAS")
    );
    let post = stored
        .iter()
        .find_map(|e| match e {
            Event::Post(p) if p.id == "r-1" => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(post.author_followers, Some(1_200));
    assert_eq!(post.source.as_str(), "reddit");

    // The DLQ holds each bad line, raw, with where it was and why.
    let dlq = read_all(&js, &streams.dlq).await;
    assert_eq!(dlq.len(), 5);
    let mut origins: Vec<&str> = dlq
        .iter()
        .map(|m| {
            m.header(insite_ingest::publisher::DLQ_ORIGIN_HEADER)
                .unwrap()
        })
        .collect();
    origins.sort_unstable();
    assert_eq!(
        origins,
        vec![
            "posts.jsonl:3",
            "quotes.csv:5",
            "trades.csv:5",
            "trades.csv:8",
            "trades.csv:9"
        ]
    );
    for m in &dlq {
        assert_eq!(m.subject, streams.subject("insite.dlq.ingest"));
        assert_eq!(m.header(wire::DLQ_STAGE_HEADER), Some("ingest"));
        assert!(!m.header(wire::DLQ_REASON_HEADER).unwrap().is_empty());
        assert!(m.header(wire::DLQ_KIND_HEADER).is_some());
    }
    let price_line = dlq
        .iter()
        .find(|m| m.header(insite_ingest::publisher::DLQ_ORIGIN_HEADER) == Some("trades.csv:5"))
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&price_line.payload).unwrap(),
        "AAPL,2024-03-01T14:30:00.250Z,not-a-price,100,1003,XNAS"
    );
    assert!(price_line
        .header(wire::DLQ_REASON_HEADER)
        .unwrap()
        .contains("price"));
    let size_line = dlq
        .iter()
        .find(|m| m.header(insite_ingest::publisher::DLQ_ORIGIN_HEADER) == Some("trades.csv:9"))
        .unwrap();
    assert!(size_line
        .header(wire::DLQ_REASON_HEADER)
        .unwrap()
        .contains("size"));

    // Replaying the same files again adds nothing, dead letters included.
    let again = insite_ingest::publish_files(&js, streams, config(4), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.duplicates, again.acked);
    assert_eq!(read_all(&js, &streams.dlq).await.len(), 5);
    let mut stored_again = decode_events(&read_all(&js, &streams.market).await);
    stored_again.extend(decode_events(&read_all(&js, &streams.social).await));
    assert_eq!(rows_of(&stored_again), expected);
}

#[tokio::test]
async fn replay_without_batching_sends_one_message_per_event() {
    let env = TestEnv::new("ingest_replay_single");
    let js = env.jetstream().await;
    let streams = &env.connections.nats.streams;
    let report = insite_ingest::publish_files(
        &js,
        streams,
        FilesConfig {
            speed: Some(1_000.0),
            ..config(1)
        },
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.events, 14);
    assert_eq!(report.acked, 14 + 5);
    let market = read_all(&js, &streams.market).await;
    assert_eq!(market.len(), 11);
    assert!(market.iter().all(|m| matches!(
        m.header(wire::SCHEMA_HEADER),
        Some("trade.v1") | Some("quote.v1")
    )));
}

#[tokio::test]
async fn replay_rejects_a_file_without_required_columns() {
    let env = TestEnv::new("ingest_replay_header");
    let js = env.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "symbol,when,price\nAAPL,1,2\n").unwrap();
    let err = insite_ingest::publish_files(
        &js,
        &env.connections.nats.streams,
        FilesConfig {
            trades: Some(path),
            ..FilesConfig::default()
        },
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), insite_ingest::ErrorClass::BadData);
    assert!(err.to_string().contains("\"ts\""), "{err}");
}
