//! Versioned ClickHouse migrations, as data.
//!
//! The SQL lives in `schemas/migrations/NNNN_name.sql`, one file a version,
//! embedded at build time. Every statement is idempotent (`IF NOT EXISTS`,
//! or a copy-and-swap that converges when run again),
//! and the runner (in the `sinks` crate) records applied versions in
//! [`MIGRATIONS_TABLE`], so applying them at every start-up is safe.
//!
//! A migration renders per server ([`Migration::statements`] with the
//! [`Features`] of the server's version): the files as written are what
//! ClickHouse 18.16 runs, and two markers in them add the features of newer
//! servers: [`LOW_CARDINALITY_MARK`] after a column makes its `String` a
//! `LowCardinality(String)`, and a line starting with [`DATETIME64_MARK`]
//! is kept (without the marker) only where `DateTime64` exists. Both are
//! `--` comments, dropped for a server without the feature, so 18.16 gets
//! the statements the files held before the markers, byte for byte.
//! Neither changes what the sinks insert or the query service reads:
//! `LowCardinality(String)` travels as a `String` in RowBinary and in
//! answers, and the `DateTime64` columns are `ALIAS`es (computed on read,
//! never inserted or listed by `SELECT *`).

use crate::server::Features;

/// The table that records which migrations were applied.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";

/// DDL of [`MIGRATIONS_TABLE`].
pub const MIGRATIONS_TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
    version UInt32, name String, applied_at DateTime\
    ) ENGINE = ReplacingMergeTree() ORDER BY version";

/// One migration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its version: the number its file name starts with.
    pub version: u32,
    /// The rest of its file name.
    pub name: &'static str,
    /// The file's SQL (one or more statements separated by `;`).
    pub sql: &'static str,
}

/// After a column's definition: its `String` becomes
/// `LowCardinality(String)` on a server with [`Features::low_cardinality`].
pub const LOW_CARDINALITY_MARK: &str = "--@low_cardinality";

/// At the start of a line (after indentation): the rest of the line is part
/// of the statement on a server with [`Features::datetime64`], and left out
/// elsewhere.
pub const DATETIME64_MARK: &str = "--@datetime64 ";

impl Migration {
    /// The migration's statements for a server with `features`, without
    /// comments or the separating `;` (see the module docs).
    pub fn statements(&self, features: &Features) -> Vec<String> {
        split_statements(&render(self.sql, features))
    }
}

/// `sql` with its feature markers applied for `features`: marked lines
/// rendered or left out, the markers removed.
pub fn render(sql: &str, features: &Features) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in sql.lines() {
        if let Some(rest) = line.trim_start().strip_prefix(DATETIME64_MARK) {
            if features.datetime64 {
                let indent = &line[..line.len() - line.trim_start().len()];
                out.push(format!("{indent}{rest}"));
            }
        } else if let Some(at) = line
            .find(LOW_CARDINALITY_MARK)
            .filter(|&at| !line[..at].contains("--"))
        {
            let column = line[..at].trim_end();
            out.push(if features.low_cardinality {
                column.replacen(" String", " LowCardinality(String)", 1)
            } else {
                column.to_owned()
            });
        } else {
            out.push(line.to_owned());
        }
    }
    out.join("\n")
}

/// All migrations, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "pipeline_progress",
        sql: include_str!("../migrations/0002_pipeline_progress.sql"),
    },
    Migration {
        version: 3,
        name: "trades_key",
        sql: include_str!("../migrations/0003_trades_key.sql"),
    },
    Migration {
        version: 4,
        name: "pipeline_checkpoints",
        sql: include_str!("../migrations/0004_pipeline_checkpoints.sql"),
    },
    Migration {
        version: 5,
        name: "monthly_result_partitions",
        sql: include_str!("../migrations/0005_monthly_result_partitions.sql"),
    },
];

/// Splits SQL text into statements at `;`, dropping `--` line comments and
/// blank statements. The migration files keep `;` and `--` out of string
/// literals, which this relies on.
pub fn split_statements(sql: &str) -> Vec<String> {
    let without_comments: String = sql
        .lines()
        .map(|line| match line.find("--") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::server::ServerVersion;

    fn current() -> Features {
        Features::of(ServerVersion::parse("26.9.2.1").unwrap())
    }

    #[test]
    fn versions_are_increasing_and_statements_idempotent() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last);
            last = m.version;
            let stmts = m.statements(&Features::NONE);
            assert!(!stmts.is_empty());
            assert_eq!(stmts.len(), m.statements(&current()).len());
            for s in stmts {
                assert!(
                    [
                        "CREATE TABLE IF NOT EXISTS",
                        "DROP TABLE IF EXISTS",
                        "INSERT INTO",
                        "RENAME TABLE"
                    ]
                    .iter()
                    .any(|start| s.starts_with(start)),
                    "{s}"
                );
                assert!(
                    !s.contains("DateTime64")
                        && !s.contains("TTL")
                        && !s.contains("LowCardinality"),
                    "{s}"
                );
            }
        }
    }

    #[test]
    fn trades_are_keyed_by_price_and_size_from_version_3() {
        let v3 = MIGRATIONS.iter().find(|m| m.version == 3).unwrap();
        let stmts = v3.statements(&current());
        assert!(stmts
            .iter()
            .any(|s| s.contains("ORDER BY (symbol, ts_ms, exchange, trade_id, price, size)")));
        // The old table is dropped only after the swap.
        let rename = stmts.iter().position(|s| s.starts_with("RENAME")).unwrap();
        let last_drop = stmts.iter().rposition(|s| s.starts_with("DROP")).unwrap();
        assert!(rename < last_drop);
    }

    #[test]
    fn the_first_migration_creates_every_table() {
        let stmts = MIGRATIONS[0].statements(&Features::NONE);
        for table in [
            "trades",
            "quotes",
            "posts",
            "bars",
            "sentiment",
            "trending",
            "alerts",
            "late_events",
        ] {
            assert!(
                stmts
                    .iter()
                    .any(|s| s.starts_with(&format!("CREATE TABLE IF NOT EXISTS {table} ("))),
                "{table}"
            );
        }
    }

    /// The CREATE statement of `table` in the migrations rendered for
    /// `features` (the last one: migration 3 recreates trades).
    fn create_of(table: &str, features: &Features) -> String {
        let all: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|m| m.statements(features))
            .collect();
        all.into_iter()
            .rev()
            .find(|s| {
                s.starts_with(&format!("CREATE TABLE IF NOT EXISTS {table} ("))
                    || (table == "trades"
                        && s.starts_with("CREATE TABLE IF NOT EXISTS trades_v3 ("))
            })
            .unwrap()
    }

    #[test]
    fn clickhouse_18_16_gets_none_of_the_newer_features() {
        let old = Features::of(ServerVersion::V18_16);
        for s in MIGRATIONS.iter().flat_map(|m| m.statements(&old)) {
            for newer in ["DateTime64", "TTL", "LowCardinality", "ALIAS", "--"] {
                assert!(!s.contains(newer), "{newer} in {s}");
            }
        }
        assert!(create_of("trades", &old).contains("    symbol String,\n"));
    }

    #[test]
    fn a_current_server_gets_low_cardinality_and_datetime64_aliases() {
        let f = current();
        for (table, columns, alias) in [
            ("trades", &["symbol", "exchange"][..], "ts64"),
            ("quotes", &["symbol"][..], "ts64"),
            ("posts", &["source"][..], "ts64"),
            ("late_events", &["kind", "symbol"][..], "ts64"),
            ("bars", &["symbol"][..], "window_start64"),
            ("sentiment", &["symbol"][..], "window_start64"),
            ("trending", &["symbol"][..], "window_start64"),
            ("alerts", &["symbol", "kind"][..], "window_start64"),
        ] {
            let create = create_of(table, &f);
            for column in columns {
                assert!(
                    create.contains(&format!("    {column} LowCardinality(String),")),
                    "{table}.{column}: {create}"
                );
            }
            assert!(
                create.contains(&format!(
                    "{alias} DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli("
                )),
                "{table}: {create}"
            );
            assert!(!create.contains("--"), "{create}");
        }
        // High-cardinality text stays String.
        assert!(create_of("trades", &f).contains("    trade_id String,"));
        assert!(create_of("posts", &f).contains("    author String,"));
        assert!(
            create_of("pipeline_checkpoints", &f).contains("    source LowCardinality(String),")
        );
    }

    #[test]
    fn every_marker_has_something_to_render() {
        for m in MIGRATIONS {
            for line in m.sql.lines() {
                if line.contains(LOW_CARDINALITY_MARK) {
                    assert!(line.contains(" String"), "{line}");
                }
                if line.contains("--@") {
                    assert!(
                        line.contains(LOW_CARDINALITY_MARK)
                            || line.trim_start().starts_with(DATETIME64_MARK),
                        "unknown marker: {line}"
                    );
                }
            }
        }
    }

    #[test]
    fn rendering_keeps_or_drops_marked_lines() {
        let sql = "CREATE TABLE t (\n    s String,  --@low_cardinality\n    n UInt64\n    --@datetime64 , d DateTime64(3) ALIAS n\n) ENGINE = Memory";
        assert_eq!(
            render(sql, &Features::NONE),
            "CREATE TABLE t (\n    s String,\n    n UInt64\n) ENGINE = Memory"
        );
        assert_eq!(
            render(sql, &current()),
            "CREATE TABLE t (\n    s LowCardinality(String),\n    n UInt64\n    , d DateTime64(3) ALIAS n\n) ENGINE = Memory"
        );
    }

    #[test]
    fn splitter_drops_comments_and_blanks() {
        let stmts = split_statements("-- a\nSELECT 1; -- b\n\n;SELECT 2;");
        assert_eq!(stmts, vec!["SELECT 1", "SELECT 2"]);
    }
}
