//! Prints, as a JSON array of `{"name", "sql"}`, every SQL statement insite
//! sends to ClickHouse, with sample values, as it sends them to a server of
//! the version given (`clickhouse-statements 26.9.2.1`): the migrations in
//! order, rendered for that version's features; the raw tables' retention
//! (`TTL`, with a sample 3650 days) where it has `TTL`; an insert of a sample
//! row into every table the sinks write (as `JSONEachRow`: the same columns
//! and values the client sends as `RowBinary`); the sinks' own reads; the
//! pipeline's checkpoint reads (its restart's and a backfill's); and the
//! query service's catalog, `/v1` and vendor routes
//! (`insite_query::store::statements`). Each text comes from the function or
//! constant the code sends it from. `scripts/check-clickhouse-current.sh`
//! runs them all against a current ClickHouse engine.

use insite_schemas::fixtures::{bar, symbol, trade};
use insite_schemas::migrations::{MIGRATIONS, MIGRATIONS_TABLE, MIGRATIONS_TABLE_DDL};
use insite_schemas::retention::{modify_ttl, remove_ttl, RAW_TABLES, TABLE_ENGINES};
use insite_schemas::server::{Features, ServerVersion};
use insite_schemas::{
    Alert, AlertKind, EventKind, Finality, Interval, LateEvent, Post, Quote, SentimentWindow,
    SourceName, Trending, TrendingEntry,
};
use insite_sinks::clickhouse::rows::{
    AlertRow, BarRow, CheckpointRow, LateEventRow, PostRow, ProgressRow, QuoteRow, SentimentRow,
    Table, TradeRow, TrendingRow,
};
use serde::Serialize;

#[derive(Serialize)]
struct Statement {
    name: String,
    sql: String,
}

fn insert<R: Table + Serialize>(rows: &[R]) -> Result<Statement, serde_json::Error> {
    let mut sql = format!("INSERT INTO {} FORMAT JSONEachRow", R::TABLE);
    for row in rows {
        sql.push('\n');
        sql.push_str(&serde_json::to_string(row)?);
    }
    Ok(Statement {
        name: format!("insert {}", R::TABLE),
        sql,
    })
}

/// The database the check creates and runs in.
const DATABASE: &str = "insite";

/// The sample retention, in days: longer than the sample rows are old
/// (March 2024), so that no merge expires them before they are read.
const SAMPLE_TTL_DAYS: u32 = 3650;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let version = match std::env::args().nth(1) {
        Some(v) => ServerVersion::parse(&v)?,
        None => return Err("usage: clickhouse-statements <server version, e.g. 26.9.2.1>".into()),
    };
    let features = Features::of(version);
    eprintln!(
        "clickhouse-statements: ClickHouse {version}, features: {}",
        features.names()
    );
    let ts = 1_709_303_400_000;
    let window = 1_709_303_400_000;
    let mut out = vec![Statement {
        name: MIGRATIONS_TABLE.to_owned(),
        sql: MIGRATIONS_TABLE_DDL.to_owned(),
    }];
    for m in MIGRATIONS {
        for (i, sql) in m.statements(&features).into_iter().enumerate() {
            out.push(Statement {
                name: format!("migration {} ({}) #{}", m.version, m.name, i + 1),
                sql,
            });
        }
    }
    if features.ttl {
        let client = clickhouse::Client::default();
        out.push(Statement {
            name: "retention: table_engines".into(),
            sql: client
                .query(TABLE_ENGINES)
                .bind(DATABASE)
                .bind(RAW_TABLES.to_vec())
                .sql_display()
                .to_string(),
        });
        for table in RAW_TABLES {
            out.push(Statement {
                name: format!("retention: {table}"),
                sql: modify_ttl(table, SAMPLE_TTL_DAYS),
            });
        }
        // A retention set to 0 later removes the TTL (then it is set again,
        // for the check of the TTL that follows).
        out.push(Statement {
            name: "retention: trades, removed".into(),
            sql: remove_ttl("trades"),
        });
        out.push(Statement {
            name: "retention: trades".into(),
            sql: modify_ttl("trades", SAMPLE_TTL_DAYS),
        });
    }
    let quote = Quote {
        symbol: symbol("AAPL"),
        ts,
        bid: 189.4,
        bid_size: 3,
        ask: 189.6,
        ask_size: 4,
    };
    let post = Post {
        id: "p1".into(),
        source: SourceName::new("rss")?,
        author: "desk".into(),
        ts,
        text: "$AAPL up 'quoted' \\ text".into(),
        cashtags: vec![symbol("AAPL")],
        author_followers: Some(12),
    };
    let sentiment = SentimentWindow {
        symbol: symbol("AAPL"),
        interval: Interval::MINUTE,
        window_start: window,
        posts: 3,
        score: 0.2,
        positive: 2,
        negative: 1,
        neutral: 0,
        weighted_score: 0.3,
        finality: Finality::Final,
    };
    let trending = Trending {
        interval: Interval::MINUTE,
        window_start: window,
        entries: vec![TrendingEntry {
            symbol: symbol("AAPL"),
            mentions: 4,
            zscore: 2.5,
        }],
        finality: Finality::Final,
    };
    let alert = Alert {
        symbol: symbol("AAPL"),
        kind: AlertKind::PriceMove,
        interval: Interval::MINUTE,
        window_start: window,
        value: 0.05,
        threshold: 0.02,
        message: "moved 5%".into(),
    };
    let late = LateEvent {
        kind: EventKind::Trade,
        symbol: symbol("AAPL"),
        ts,
        watermark: ts + 60_000,
        event_id: "42".into(),
    };
    out.push(insert(&[TradeRow::from(&trade("AAPL", ts, "42"))])?);
    out.push(insert(&[QuoteRow::from(&quote)])?);
    out.push(insert(&[PostRow::from_post(&post, 0.5)])?);
    out.push(insert(&[BarRow::from_bar(
        &bar("AAPL", Interval::MINUTE, window).build(),
        1,
    )])?);
    out.push(insert(&[SentimentRow::from_window(&sentiment, 1)])?);
    out.push(insert(&TrendingRow::from_trending(&trending, 1))?);
    out.push(insert(&[AlertRow::from_alert(&alert, 1)])?);
    out.push(insert(&[LateEventRow::from_late(&late, ts + 61_000)])?);
    out.push(insert(&[ProgressRow {
        pipeline: "insite".into(),
        durable_ms: ts,
        updated_at: 1_709_303_460,
        version: 1,
    }])?);
    out.push(insert(&[CheckpointRow {
        pipeline: "insite".into(),
        source: "market".into(),
        durable_ms: ts,
        resume_seq: 7,
        max_ts_ms: ts,
        updated_at: 1_709_303_460,
        version: 1,
    }])?);
    let client = clickhouse::Client::default();
    out.push(Statement {
        name: "pipeline: checkpoints".into(),
        sql: client
            .query(&insite_pipeline::resume::checkpoints_sql())
            .bind("insite")
            .sql_display()
            .to_string(),
    });
    out.push(Statement {
        name: "pipeline: backfill live_frontiers".into(),
        sql: insite_pipeline::backfill::live_frontiers_sql(DATABASE),
    });
    out.push(Statement {
        name: "sinks: server_version".into(),
        sql: "SELECT version()".into(),
    });
    out.push(Statement {
        name: "sinks: applied_versions".into(),
        sql: format!("SELECT DISTINCT version FROM {MIGRATIONS_TABLE}"),
    });
    for (name, sql) in insite_query::store::statements::catalog() {
        out.push(Statement {
            name: format!("query: {name}"),
            sql,
        });
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
