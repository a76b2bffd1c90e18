//! Retention of the raw tables by ClickHouse `TTL`, on servers that have it
//! ([`crate::server::Features::ttl`], 19.6 and later).
//!
//! The raw tables ([`RAW_TABLES`]: trades, quotes, posts, late events) keep
//! rows `clickhouse.raw_ttl_days` days past their event time (`ts`), then
//! ClickHouse drops them as it merges; 0 keeps them for ever (the default:
//! a backfill of older history would otherwise lose its raw rows, while its
//! bars, sentiment and the other results are never expired). The results
//! are what the query service serves, so expiring raw rows changes no answer
//! but the latest trade and quote of a symbol silent for longer than that.
//!
//! Retention is not a versioned migration: the setting may change between
//! runs, so every start-up compares each table's `TTL` (from
//! `system.tables`) with the configured one and changes only what differs
//! ([`plan`]). Only `MergeTree` tables are changed: on a cluster schema the
//! raw tables are `Distributed`, and their shards' tables need `ON CLUSTER`
//! DDL that insite does not send ([`Step::NotMergeTree`]).

/// The raw tables that retention applies to, each expired by its `ts`.
pub const RAW_TABLES: &[&str] = &["trades", "quotes", "posts", "late_events"];

/// The engines of tables of a database: database, then the table names (an
/// array). Answers `(name, engine, engine_full)` per table found.
pub const TABLE_ENGINES: &str = "SELECT name, engine, engine_full FROM system.tables \
     WHERE database = ? AND has(?, name) ORDER BY name";

/// The `TTL` expression of `days` days past a row's event time, as current
/// servers print it back in `engine_full`.
pub fn ttl_expression(days: u32) -> String {
    format!("ts + toIntervalDay({days})")
}

/// Sets `table`'s retention to `days` days.
pub fn modify_ttl(table: &str, days: u32) -> String {
    format!("ALTER TABLE {table} MODIFY TTL {}", ttl_expression(days))
}

/// Removes `table`'s retention.
pub fn remove_ttl(table: &str) -> String {
    format!("ALTER TABLE {table} REMOVE TTL")
}

/// The table `TTL` in an `engine_full` (`… ORDER BY (…) TTL <expr>
/// SETTINGS …`), if any.
pub fn current_ttl(engine_full: &str) -> Option<&str> {
    let (_, rest) = engine_full.split_once(" TTL ")?;
    let expr = rest.split(" SETTINGS ").next().unwrap_or(rest);
    Some(expr.trim())
}

/// What retention does to one raw table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Already as configured.
    Unchanged,
    /// Run this statement.
    Alter(String),
    /// The table is not a `MergeTree` (it has this engine): left alone.
    NotMergeTree(String),
    /// The table does not exist.
    Missing,
}

/// What to do to each of [`RAW_TABLES`] for a retention of `days` (0: none),
/// given `found`: `(name, engine, engine_full)` from [`TABLE_ENGINES`].
pub fn plan(days: u32, found: &[(String, String, String)]) -> Vec<(&'static str, Step)> {
    RAW_TABLES
        .iter()
        .map(|&table| {
            let step = match found.iter().find(|(name, ..)| name == table) {
                None => Step::Missing,
                Some((_, engine, _)) if !engine.ends_with("MergeTree") => {
                    Step::NotMergeTree(engine.clone())
                }
                Some((_, _, engine_full)) => {
                    let want = (days > 0).then(|| ttl_expression(days));
                    match (current_ttl(engine_full), want) {
                        (now, Some(want)) if now == Some(want.as_str()) => Step::Unchanged,
                        (_, Some(_)) => Step::Alter(modify_ttl(table, days)),
                        (Some(_), None) => Step::Alter(remove_ttl(table)),
                        (None, None) => Step::Unchanged,
                    }
                }
            };
            (table, step)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, engine: &str, full: &str) -> (String, String, String) {
        (name.into(), engine.into(), full.into())
    }

    const PLAIN: &str = "ReplacingMergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (symbol, ts_ms) \
                         SETTINGS index_granularity = 8192";
    const KEPT_30: &str =
        "ReplacingMergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (symbol, ts_ms) \
                           TTL ts + toIntervalDay(30) SETTINGS index_granularity = 8192";

    #[test]
    fn reads_the_ttl_of_an_engine() {
        assert_eq!(current_ttl(PLAIN), None);
        assert_eq!(current_ttl(KEPT_30), Some("ts + toIntervalDay(30)"));
        assert_eq!(
            current_ttl("MergeTree ORDER BY x TTL ts + toIntervalDay(7)"),
            Some("ts + toIntervalDay(7)")
        );
    }

    #[test]
    fn changes_only_what_differs_from_the_setting() {
        let found = vec![
            table("posts", "ReplacingMergeTree", KEPT_30),
            table("quotes", "ReplacingMergeTree", PLAIN),
            table(
                "trades",
                "Distributed",
                "Distributed(c, db, trades_local, cityHash64(symbol))",
            ),
        ];
        let steps = plan(30, &found);
        assert_eq!(
            steps,
            vec![
                ("trades", Step::NotMergeTree("Distributed".into())),
                (
                    "quotes",
                    Step::Alter("ALTER TABLE quotes MODIFY TTL ts + toIntervalDay(30)".into())
                ),
                ("posts", Step::Unchanged),
                ("late_events", Step::Missing),
            ]
        );
        let steps = plan(7, &found);
        assert_eq!(
            steps[2].1,
            Step::Alter("ALTER TABLE posts MODIFY TTL ts + toIntervalDay(7)".into())
        );
    }

    #[test]
    fn zero_days_removes_a_ttl_and_leaves_tables_without_one() {
        let found = vec![
            table("posts", "ReplacingMergeTree", KEPT_30),
            table("quotes", "ReplacingMergeTree", PLAIN),
        ];
        let steps = plan(0, &found);
        assert_eq!(steps[1], ("quotes", Step::Unchanged));
        assert_eq!(
            steps[2],
            ("posts", Step::Alter("ALTER TABLE posts REMOVE TTL".into()))
        );
    }
}
