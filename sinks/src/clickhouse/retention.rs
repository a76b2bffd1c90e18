//! Applies the raw tables' retention (`clickhouse.raw_ttl_days`) as
//! ClickHouse `TTL`, after the migrations, on servers that have it: reads
//! each raw table's engine and `TTL` and changes only what differs from the
//! setting (the statements and the plan are `insite_schemas::retention`'s).
//! A server without `TTL` (18.16) keeps every row; a retention configured
//! there is logged as not applied.

use insite_schemas::retention::{plan, Step, RAW_TABLES, TABLE_ENGINES};
use insite_schemas::server::Features;

use super::migrate::{step, MigrateError};

/// One raw table's engine, as [`TABLE_ENGINES`] answers it.
#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct EngineRow {
    name: String,
    engine: String,
    engine_full: String,
}

/// Sets the raw tables of `database` to keep `days` days (0: for ever) on
/// a server with `features.ttl`; returns the statements run (none when
/// nothing differed). Each step retries while ClickHouse is unavailable.
pub(super) async fn apply(
    client: &clickhouse::Client,
    database: &str,
    days: u32,
    server: &str,
    features: &Features,
) -> Result<Vec<String>, MigrateError> {
    if !features.ttl {
        if days > 0 {
            tracing::warn!(
                server,
                raw_ttl_days = days,
                needs = %Features::TTL_FROM,
                "raw-table retention not applied: this ClickHouse has no TTL; raw rows are kept"
            );
        }
        return Ok(Vec::new());
    }
    let tables = RAW_TABLES.to_vec();
    let rows: Vec<EngineRow> = step(|| {
        client
            .query(TABLE_ENGINES)
            .bind(database)
            .bind(tables.clone())
            .fetch_all()
    })
    .await?;
    let found: Vec<(String, String, String)> = rows
        .into_iter()
        .map(|r| (r.name, r.engine, r.engine_full))
        .collect();
    let mut ran = Vec::new();
    for (table, action) in plan(days, &found) {
        match action {
            Step::Unchanged | Step::Missing => {}
            Step::NotMergeTree(engine) => tracing::warn!(
                table,
                engine = %engine,
                raw_ttl_days = days,
                "raw-table retention not applied to a table that is not a MergeTree: set the TTL on its shards' tables"
            ),
            Step::Alter(sql) => {
                step(|| client.query(&sql).execute())
                    .await
                    .map_err(|source| MigrateError::Retention {
                        table,
                        statement: sql.clone(),
                        source,
                    })?;
                tracing::info!(table, raw_ttl_days = days, statement = %sql, "raw-table retention set");
                ran.push(sql);
            }
        }
    }
    Ok(ran)
}
