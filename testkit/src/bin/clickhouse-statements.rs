//! Prints, as a JSON array of `{"name", "sql"}`, every SQL statement insite
//! sends to ClickHouse, with sample values: the migrations in order, an
//! insert of a sample row into every table the sinks write (as
//! `JSONEachRow`: the same columns and values the client sends as
//! `RowBinary`), the sinks' own reads, and the query service's catalog
//! (`insite_query::store::statements`). `scripts/check-clickhouse-current.sh`
//! runs them all against a current ClickHouse engine.

use insite_schemas::fixtures::{bar, symbol, trade};
use insite_schemas::migrations::{MIGRATIONS, MIGRATIONS_TABLE, MIGRATIONS_TABLE_DDL};
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ts = 1_709_303_400_000;
    let window = 1_709_303_400_000;
    let mut out = vec![Statement {
        name: MIGRATIONS_TABLE.to_owned(),
        sql: MIGRATIONS_TABLE_DDL.to_owned(),
    }];
    for m in MIGRATIONS {
        for (i, sql) in m.statements().into_iter().enumerate() {
            out.push(Statement {
                name: format!("migration {} ({}) #{}", m.version, m.name, i + 1),
                sql,
            });
        }
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
