//! The versioned migrations against a real server: distinct trades never
//! merge, a database made by an older insite is upgraded in place, and
//! ClickHouse 18.16 gets the plain schema (no feature of newer servers, no
//! retention even when configured).

use insite_schemas::config::ClickHouseConfig;
use insite_schemas::migrations::MIGRATIONS;
use insite_schemas::server::{Features, ServerVersion};
use insite_sinks::clickhouse::rows::TradeRow;
use insite_sinks::clickhouse::{client_without_database, connect, migrate};
use insite_testkit::TestEnv;

fn trade(ts_ms: u64, price: f64, size: u64, trade_id: &str) -> TradeRow {
    TradeRow {
        symbol: "ACME".into(),
        ts: (ts_ms / 1_000) as u32,
        ts_ms,
        price,
        size,
        exchange: String::new(),
        trade_id: trade_id.into(),
        conditions: Vec::new(),
    }
}

async fn write(client: &clickhouse::Client, rows: &[TradeRow]) {
    let mut insert = client.insert::<TradeRow>("trades").await.unwrap();
    for row in rows {
        insert.write(row).await.unwrap();
    }
    insert.end().await.unwrap();
}

async fn trades_final(client: &clickhouse::Client) -> Vec<(u64, f64, u64, String)> {
    client
        .query(
            "SELECT ts_ms, price, size, trade_id FROM trades FINAL \
             ORDER BY ts_ms, price, size, trade_id",
        )
        .fetch_all::<(u64, f64, u64, String)>()
        .await
        .unwrap()
}

#[tokio::test]
async fn trades_without_ids_in_one_millisecond_stay_distinct() {
    let env = TestEnv::new("ch_trades_key");
    migrate(&env.connections.clickhouse).await.unwrap();
    let client = env.clickhouse();
    let ms = 1_767_623_400_123;
    // Two prints in one millisecond without venue ids, at different prices
    // and sizes; and the first one delivered twice.
    write(
        &client,
        &[
            trade(ms, 242.87, 5, ""),
            trade(ms, 242.97, 100, ""),
            trade(ms, 242.97, 200, ""),
        ],
    )
    .await;
    write(&client, &[trade(ms, 242.87, 5, "")]).await;
    assert_eq!(
        trades_final(&client).await,
        vec![
            (ms, 242.87, 5, String::new()),
            (ms, 242.97, 100, String::new()),
            (ms, 242.97, 200, String::new()),
        ]
    );
}

#[tokio::test]
async fn a_version_2_database_is_upgraded_keeping_every_row() {
    let env = TestEnv::new("ch_upgrade");
    let config = &env.connections.clickhouse;
    // A database as insite left it at schema version 2.
    client_without_database(config)
        .query(&format!("CREATE DATABASE {}", config.database))
        .execute()
        .await
        .unwrap();
    let client = connect(config);
    client
        .query(insite_schemas::migrations::MIGRATIONS_TABLE_DDL)
        .execute()
        .await
        .unwrap();
    for migration in MIGRATIONS.iter().filter(|m| m.version <= 2) {
        for statement in migration.statements(&insite_schemas::server::Features::NONE) {
            client.query(&statement).execute().await.unwrap();
        }
        client
            .query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, now())")
            .bind(migration.version)
            .bind(migration.name)
            .execute()
            .await
            .unwrap();
    }
    let old: Vec<TradeRow> = (0..500)
        .map(|i| {
            trade(
                1_767_623_400_000 + i,
                100.0 + i as f64,
                10,
                &format!("id-{i}"),
            )
        })
        .collect();
    write(&client, &old).await;

    let report = migrate(config).await.unwrap();
    assert!(report.applied.contains(&3), "{report:?}");
    assert_eq!(trades_final(&client).await.len(), 500, "every old row kept");
    // The upgraded table is keyed by price and size too.
    let ms = 1_767_623_500_000;
    write(&client, &[trade(ms, 1.0, 1, ""), trade(ms, 2.0, 1, "")]).await;
    assert_eq!(trades_final(&client).await.len(), 502);
    // Applying again is a no-op.
    let again = migrate(config).await.unwrap();
    assert!(again.applied.is_empty(), "{again:?}");
    assert_eq!(trades_final(&client).await.len(), 502);
}

#[tokio::test]
async fn clickhouse_18_16_gets_the_plain_schema_and_no_retention() {
    let env = TestEnv::new("ch_gated");
    let config = ClickHouseConfig {
        raw_ttl_days: 30,
        ..env.connections.clickhouse.clone()
    };
    let report = migrate(&config).await.unwrap();
    let version = ServerVersion::parse(&report.server_version).unwrap();
    assert!(
        version < Features::TTL_FROM,
        "this suite runs on 18.16: {version}"
    );
    assert_eq!(report.features, Features::NONE, "{report:?}");
    assert!(report.retention.is_empty(), "{report:?}");
    let client = env.clickhouse();
    // No LowCardinality, DateTime64 alias or TTL in the tables made.
    let columns: Vec<(String, String, String)> = client
        .query(
            "SELECT table, name, type FROM system.columns WHERE database = ? \
             AND (type LIKE '%LowCardinality%' OR type LIKE '%DateTime64%')",
        )
        .bind(config.database.as_str())
        .fetch_all()
        .await
        .unwrap();
    assert!(columns.is_empty(), "{columns:?}");
    let ddl: String = client
        .query("SHOW CREATE TABLE trades")
        .fetch_one()
        .await
        .unwrap();
    assert!(!ddl.contains("TTL"), "{ddl}");
    assert!(ddl.contains("symbol String"), "{ddl}");
    // The sinks' rows go in and come back as before.
    write(&client, &[trade(1_767_623_400_000, 1.5, 2, "a")]).await;
    assert_eq!(trades_final(&client).await.len(), 1);
}
