//! The Redis hot-state sink against a real server.

use insite_schemas::{Alert, AlertKind, Bar, Finality, Interval, Trade, Trending, TrendingEntry};
use insite_sinks::redis::{HotUpdate, RedisSink, RedisSinkConfig};
use insite_testkit::fixtures::{bar, symbol};
use insite_testkit::TestEnv;
use redis::AsyncCommands;

#[tokio::test]
async fn coalesces_keeps_history_and_sets_ttls() {
    let env = TestEnv::new("redis_sink");
    let config = RedisSinkConfig {
        history_len: 2,
        alerts_len: 2,
        ..RedisSinkConfig::default()
    };
    let mut sink = RedisSink::connect(&env.connections.redis, config)
        .await
        .unwrap();
    let keys = sink.keys().clone();
    let sym = symbol("BRK.B");
    let t0 = 1_700_000_040_000;

    // Many provisional updates of one window coalesce into one write; the
    // final one wins over provisional ones whatever the push order.
    let minute = |start| bar("BRK.B", Interval::MINUTE, start);
    for i in 0..100 {
        sink.push(HotUpdate::Bar(
            minute(t0)
                .close(1.0 + f64::from(i))
                .finality(Finality::Provisional)
                .build(),
        ))
        .unwrap();
    }
    sink.push(HotUpdate::Bar(minute(t0).close(2.0).build()))
        .unwrap();
    sink.push(HotUpdate::Bar(
        minute(t0)
            .close(9.0)
            .finality(Finality::Provisional)
            .build(),
    ))
    .unwrap();
    // Three more final windows; the history keeps the newest two.
    for w in 1..=3 {
        sink.push(HotUpdate::Bar(minute(t0 + w * 60_000).close(5.0).build()))
            .unwrap();
    }
    // A re-delivered final bar replaces its window's entry.
    sink.push(HotUpdate::Bar(minute(t0 + 3 * 60_000).close(5.0).build()))
        .unwrap();
    sink.push(HotUpdate::Trade(Trade {
        symbol: sym.clone(),
        ts: t0 + 5,
        price: 2.5,
        size: 1,
        exchange: "".into(),
        trade_id: "b".into(),
        conditions: vec![],
    }))
    .unwrap();
    sink.push(HotUpdate::Trade(Trade {
        symbol: sym.clone(),
        ts: t0 + 1,
        price: 9.9,
        size: 1,
        exchange: "".into(),
        trade_id: "a".into(),
        conditions: vec![],
    }))
    .unwrap();
    for i in 0..3 {
        sink.push(HotUpdate::Alert(Alert {
            symbol: sym.clone(),
            kind: AlertKind::PriceMove,
            interval: Interval::MINUTE,
            window_start: t0 + i * 60_000,
            value: 0.05,
            threshold: 0.02,
            message: format!("alert {i}"),
        }))
        .unwrap();
    }
    sink.push(HotUpdate::Trending(Trending {
        interval: Interval::FIVE_MINUTES,
        window_start: t0,
        entries: vec![TrendingEntry {
            symbol: sym.clone(),
            mentions: 42,
            zscore: 3.5,
        }],
        finality: Finality::Final,
    }))
    .unwrap();
    sink.flush().await.unwrap();
    assert_eq!(sink.pending(), 0);

    let mut conn = env.redis().await;
    let current: String = conn.get(keys.bar(&sym, Interval::MINUTE)).await.unwrap();
    let current: Bar = serde_json::from_str(&current).unwrap();
    assert_eq!(
        (current.window_start, current.finality),
        (t0 + 3 * 60_000, Finality::Final)
    );

    let history: Vec<String> = conn
        .zrange(keys.bars(&sym, Interval::MINUTE), 0, -1)
        .await
        .unwrap();
    let starts: Vec<i64> = history
        .iter()
        .map(|j| serde_json::from_str::<Bar>(j).unwrap().window_start)
        .collect();
    assert_eq!(starts, vec![t0 + 2 * 60_000, t0 + 3 * 60_000]);

    let trade: String = conn.get(keys.trade(&sym)).await.unwrap();
    assert!(
        trade.contains("\"trade_id\":\"b\""),
        "latest by event time: {trade}"
    );

    let alerts: Vec<String> = conn.lrange(keys.alerts(&sym), 0, -1).await.unwrap();
    assert_eq!(alerts.len(), 2);
    assert!(alerts[0].contains("alert 2"), "newest first: {alerts:?}");
    let rank: Vec<(String, f64)> = conn
        .zrange_withscores(keys.trending_rank(Interval::FIVE_MINUTES), 0, -1)
        .await
        .unwrap();
    assert_eq!(rank, vec![("BRK.B".to_owned(), 42.0)]);

    for key in [
        keys.trade(&sym),
        keys.bars(&sym, Interval::MINUTE),
        keys.recent_alerts(),
    ] {
        let ttl: i64 = conn.ttl(&key).await.unwrap();
        assert!(ttl > 0, "{key} has ttl {ttl}");
    }
    assert!(
        keys.bar(&sym, Interval::MINUTE).contains("{BRK.B}"),
        "hash tag"
    );
}
