//! The harness itself: real round trips through each server, and isolation
//! and clean-up between tests.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;
use insite_schemas::{subjects, wire, Interval, Trade};
use insite_sinks::clickhouse::{migrate, rows::BarRow};
use insite_testkit::fixtures::{bar, symbol, trade};
use insite_testkit::TestEnv;
use redis::AsyncCommands;

/// When the trades happened.
const TS: i64 = 1_700_000_000_000;

#[tokio::test]
async fn jetstream_round_trip_drops_duplicates_by_msg_id() {
    let env = TestEnv::new("js_dedup");
    let js = env.jetstream().await;
    let streams = &env.connections.nats.streams;
    js.create_stream(stream::Config {
        name: streams.market.clone(),
        subjects: vec![streams.subject("md.>")],
        duplicate_window: Duration::from_secs(streams.duplicate_window_s),
        ..Default::default()
    })
    .await
    .unwrap();

    let sym = symbol("AAPL");
    let subject = streams.subject(&subjects::trades(&sym));
    // Three publishes, two of them the same trade: JetStream keeps two.
    for t in [
        trade("AAPL", TS, "1"),
        trade("AAPL", TS, "2"),
        trade("AAPL", TS, "1"),
    ] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            wire::SCHEMA_HEADER,
            wire::schema_of::<Trade>().to_string().as_str(),
        );
        headers.insert(
            wire::MSG_ID_HEADER,
            insite_schemas::msgid::trade_msg_id(&t).as_str(),
        );
        let ack = js
            .publish_with_headers(subject.clone(), headers, wire::encode(&t).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.stream, streams.market);
    }

    let stream = js.get_stream(&streams.market).await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("harness".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        let schema = message
            .headers
            .as_ref()
            .and_then(|h| h.get(wire::SCHEMA_HEADER))
            .map(|v| v.as_str().to_owned());
        let inbound = wire::decode_inbound(schema.as_deref(), &message.payload).unwrap();
        got.push(inbound);
        message.ack().await.unwrap();
    }
    assert_eq!(
        got,
        vec![
            insite_schemas::Inbound::Trades(vec![trade("AAPL", TS, "1")]),
            insite_schemas::Inbound::Trades(vec![trade("AAPL", TS, "2")]),
        ]
    );
    let mut stream = js.get_stream(&streams.market).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    let _ = jetstream::Context::clone(&js);
}

#[tokio::test]
async fn migrations_apply_twice_then_bars_round_trip() {
    let env = TestEnv::new("ch_migrate");
    let every: Vec<u32> = insite_schemas::migrations::MIGRATIONS
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(every, vec![1, 2, 3, 4, 5]);
    let first = migrate(&env.connections.clickhouse).await.unwrap();
    assert_eq!(first.applied, every);
    assert!(first.already_applied.is_empty());
    let second = migrate(&env.connections.clickhouse).await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.already_applied, every);

    let client = env.clickhouse();
    let row = |version, close| {
        let bar = bar("AAPL", Interval::MINUTE, 1_700_000_040_000).close(close);
        BarRow::from_bar(&bar.build(), version)
    };
    // A recomputation (higher version) replaces, never duplicates.
    for r in [row(1, 11.0), row(2, 11.5)] {
        let mut insert = client.insert::<BarRow>("bars").await.unwrap();
        insert.write(&r).await.unwrap();
        insert.end().await.unwrap();
    }
    let rows = client
        .query("SELECT ?fields FROM bars FINAL WHERE symbol = ? AND interval_s = ? ORDER BY window_start_ms")
        .bind("AAPL")
        .bind(60u32)
        .fetch_all::<BarRow>()
        .await
        .unwrap();
    assert_eq!(rows, vec![row(2, 11.5)]);

    // A hostile value is bound, not interpolated.
    let none = client
        .query("SELECT count() FROM bars WHERE symbol = ?")
        .bind("AAPL' OR '1'='1")
        .fetch_one::<u64>()
        .await
        .unwrap();
    assert_eq!(none, 0);

    env.cleanup().await;
    let admin = insite_sinks::clickhouse::client_without_database(&env.connections.clickhouse);
    let exists = admin
        .query("SELECT count() FROM system.databases WHERE name = ?")
        .bind(env.connections.clickhouse.database.as_str())
        .fetch_one::<u64>()
        .await
        .unwrap();
    assert_eq!(exists, 0, "cleanup drops the test database");
}

#[tokio::test]
async fn redis_set_get_with_ttl_under_the_test_prefix() {
    let env = TestEnv::new("redis_ttl");
    let mut conn = env.redis().await;
    let key = format!("{}{{AAPL}}:latest_trade", env.connections.redis.key_prefix);
    let payload = wire::encode(&trade("AAPL", TS, "9")).unwrap();
    let () = conn.set_ex(&key, payload.clone(), 30).await.unwrap();
    let back: Vec<u8> = conn.get(&key).await.unwrap();
    assert_eq!(back, payload);
    let ttl: i64 = conn.ttl(&key).await.unwrap();
    assert!((1..=30).contains(&ttl), "ttl {ttl}");

    let () = conn
        .set_ex(format!("{}other", env.connections.redis.key_prefix), 1, 30)
        .await
        .unwrap();
    env.cleanup().await;
    let left: Vec<String> = conn
        .keys(format!("{}*", env.connections.redis.key_prefix))
        .await
        .unwrap();
    assert!(left.is_empty(), "cleanup removes the test's keys: {left:?}");
}

#[tokio::test]
async fn environments_do_not_share_names() {
    let a = TestEnv::new("same");
    let b = TestEnv::new("same");
    assert_ne!(a.id, b.id);
    assert_ne!(
        a.connections.clickhouse.database,
        b.connections.clickhouse.database
    );
    assert_ne!(
        a.connections.redis.key_prefix,
        b.connections.redis.key_prefix
    );
    assert_ne!(
        a.connections.nats.streams.market,
        b.connections.nats.streams.market
    );
    assert_ne!(
        a.connections.nats.streams.subject_prefix,
        b.connections.nats.streams.subject_prefix
    );
}

/// Migration 5 moves `bars` and `sentiment` to monthly partitions on a
/// database that has rows already: every row is kept, a month's bars share
/// one partition, and running it again changes nothing.
#[tokio::test]
async fn monthly_partitions_keep_every_existing_bar() {
    let env = TestEnv::new("ch_monthly");
    let c = &env.connections.clickhouse;
    let admin = insite_sinks::clickhouse::connect(&insite_schemas::config::ClickHouseConfig {
        database: "default".into(),
        ..c.clone()
    });
    admin
        .query(&format!("CREATE DATABASE IF NOT EXISTS {}", c.database))
        .execute()
        .await
        .unwrap();
    let client = env.clickhouse();
    // The database as versions 1 to 4 left it: bars partitioned by day.
    client
        .query(insite_schemas::migrations::MIGRATIONS_TABLE_DDL)
        .execute()
        .await
        .unwrap();
    let plain = insite_schemas::server::Features::NONE;
    for m in &insite_schemas::migrations::MIGRATIONS[..4] {
        for statement in m.statements(&plain) {
            client.query(&statement).execute().await.unwrap();
        }
        client
            .query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, now())")
            .bind(m.version)
            .bind(m.name)
            .execute()
            .await
            .unwrap();
    }
    // 40 days of one bar a day, two versions of the first.
    const DAY: i64 = 86_400_000;
    let start = 1_704_067_200_000; // 2024-01-01
    let mut insert = client.insert::<BarRow>("bars").await.unwrap();
    for d in 0..40 {
        let b = bar("AAPL", Interval::MINUTE, start + d * DAY).close(10.0 + d as f64);
        insert
            .write(&BarRow::from_bar(&b.build(), 1))
            .await
            .unwrap();
    }
    let replaced = bar("AAPL", Interval::MINUTE, start).close(99.0);
    insert
        .write(&BarRow::from_bar(&replaced.build(), 2))
        .await
        .unwrap();
    insert.end().await.unwrap();
    let partitions = |c: clickhouse::Client, db: String| async move {
        c.query("SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = 'bars' AND active ORDER BY partition")
            .bind(db)
            .fetch_all::<String>()
            .await
            .unwrap()
    };
    assert_eq!(
        partitions(env.clickhouse(), c.database.clone()).await.len(),
        40
    );

    for _ in 0..2 {
        let report = migrate(c).await.unwrap();
        assert!(
            report.applied.iter().all(|v| *v == 5),
            "{:?}",
            report.applied
        );
    }
    assert_eq!(
        partitions(env.clickhouse(), c.database.clone()).await,
        ["202401", "202402"]
    );
    let closes: Vec<f64> = client
        .query("SELECT close FROM bars FINAL ORDER BY window_start_ms")
        .fetch_all()
        .await
        .unwrap();
    let mut want: Vec<f64> = (0..40).map(|d| 10.0 + d as f64).collect();
    want[0] = 99.0;
    assert_eq!(closes, want);
    env.cleanup().await;
}
