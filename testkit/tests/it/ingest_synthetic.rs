//! `insite ingest synthetic` against a real JetStream: exactly the simulated
//! events arrive (count and content), every message has its schema and id,
//! repeated posts and a whole republished run are dropped by JetStream.

use std::time::Duration;

use insite_ingest::synthetic::Simulator;
use insite_ingest::{BatchConfig, Batcher, Event, SyntheticConfig};
use insite_schemas::wire::{self, Inbound};
use insite_testkit::jetstream::{decode_events, read_all};
use insite_testkit::TestEnv;
use tokio_util::sync::CancellationToken;

/// Events in a canonical order, to compare as multisets.
pub fn canonical(events: &[Event]) -> Vec<String> {
    let mut keys: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
    keys.sort_unstable();
    keys
}

fn config() -> SyntheticConfig {
    SyntheticConfig {
        seed: 7,
        symbols: 20,
        start_ms: 1_709_303_400_000,
        count: Some(4_000),
        rate: 20_000.0,
        max_speed: true,
        posts_per_s: 500.0,
        duplicate_share: 0.05,
        jitter_ms: 30,
        batch: BatchConfig {
            max_events: 16,
            max_posts: 1,
            slice_ms: 50,
        },
        ..SyntheticConfig::default()
    }
}

#[tokio::test]
async fn synthetic_publishes_exactly_the_simulated_events_and_dedups() {
    let env = TestEnv::new("ingest_synthetic");
    let js = env.jetstream().await;
    let streams = &env.connections.nats.streams;

    let report = insite_ingest::run_synthetic(&js, streams, config(), CancellationToken::new())
        .await
        .unwrap();

    // What the simulator produces, and the messages the batcher makes of it.
    let expected: Vec<Event> = Simulator::new(config()).unwrap().collect();
    assert_eq!(expected.len(), 4_000);
    let mut batcher = Batcher::new(config().batch, streams.clone());
    let mut messages = Vec::new();
    for e in expected.iter().cloned() {
        batcher.push(e, &mut messages).unwrap();
    }
    batcher.close_all(&mut messages).unwrap();
    let mut seen_ids = std::collections::HashSet::new();
    let repeats = messages
        .iter()
        .filter(|m| !seen_ids.insert(m.msg_id.clone()))
        .count();
    assert!(repeats > 0, "the run should repeat some posts");

    assert_eq!(report.published, messages.len() as u64);
    assert_eq!(report.acked, report.published);
    assert_eq!(report.duplicates, repeats as u64);
    assert_eq!(report.retried, 0);

    let market = read_all(&js, &streams.market).await;
    let social = read_all(&js, &streams.social).await;
    assert_eq!(market.len() + social.len(), seen_ids.len());
    // Every stored message is on the subject its events belong to.
    for m in &market {
        let schema = m.header(wire::SCHEMA_HEADER).unwrap();
        assert!(
            schema.starts_with("trade") || schema.starts_with("quote"),
            "{schema}"
        );
        let rest = streams.strip_prefix(&m.subject).unwrap();
        match wire::decode_inbound(Some(schema), &m.payload).unwrap() {
            Inbound::Trades(v) => assert!(v
                .iter()
                .all(|t| rest == insite_schemas::subjects::trades(&t.symbol))),
            Inbound::Quotes(v) => assert!(v
                .iter()
                .all(|q| rest == insite_schemas::subjects::quotes(&q.symbol))),
            Inbound::Posts(_) => panic!("post on the market stream"),
        }
    }

    // The stored events are exactly the simulated ones, repeated posts once.
    let mut unique_posts = std::collections::HashSet::new();
    let expected_stored: Vec<Event> = expected
        .into_iter()
        .filter(|e| match e {
            Event::Post(p) => unique_posts.insert(p.id.clone()),
            _ => true,
        })
        .collect();
    let mut stored = decode_events(&market);
    stored.extend(decode_events(&social));
    assert_eq!(canonical(&stored), canonical(&expected_stored));

    // A second identical run is dropped whole by the duplicate window.
    let again = insite_ingest::run_synthetic(&js, streams, config(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.published, report.published);
    assert_eq!(again.duplicates, again.acked);
    let market_after = read_all(&js, &streams.market).await;
    let social_after = read_all(&js, &streams.social).await;
    assert_eq!(market_after.len(), market.len());
    assert_eq!(social_after.len(), social.len());
}

#[tokio::test]
async fn synthetic_handles_ten_thousand_symbols_and_stops_on_shutdown() {
    let env = TestEnv::new("ingest_synthetic_10k");
    let js = env.jetstream().await;
    let streams = &env.connections.nats.streams;
    let config = SyntheticConfig {
        seed: 3,
        symbols: 10_000,
        start_ms: 1_709_303_400_000,
        count: Some(20_000),
        rate: 100_000.0,
        max_speed: true,
        posts_per_s: 0.0,
        ..SyntheticConfig::default()
    };
    let report =
        insite_ingest::run_synthetic(&js, streams, config.clone(), CancellationToken::new())
            .await
            .unwrap();
    assert_eq!(report.events, 20_000);
    let stored = decode_events(&read_all(&js, &streams.market).await);
    assert_eq!(stored.len(), 20_000);
    let symbols: std::collections::HashSet<String> = stored
        .iter()
        .map(|e| match e {
            Event::Trade(t) => t.symbol.to_string(),
            Event::Quote(q) => q.symbol.to_string(),
            Event::Post(_) => unreachable!(),
        })
        .collect();
    assert!(symbols.len() > 1_000, "{} symbols", symbols.len());

    // A cancelled unbounded run stops and flushes: everything it counted as
    // acknowledged is stored.
    let env2 = TestEnv::new("ingest_synthetic_stop");
    let streams2 = &env2.connections.nats.streams;
    let shutdown = CancellationToken::new();
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stopper.cancel();
    });
    let unbounded = SyntheticConfig {
        count: None,
        symbols: 50,
        ..config
    };
    let report = insite_ingest::run_synthetic(&js, streams2, unbounded, shutdown)
        .await
        .unwrap();
    assert!(report.acked > 0);
    assert_eq!(report.acked, report.published);
    let stored = decode_events(&read_all(&js, &streams2.market).await);
    assert_eq!(stored.len() as u64, report.events);
}
