//! Versioned ClickHouse migrations, as data.
//!
//! The SQL lives in `schemas/migrations/NNNN_name.sql`, one file a version,
//! embedded at build time. Every statement is idempotent (`IF NOT EXISTS`,
//! or a copy-and-swap that converges when run again),
//! and the runner (in the `sinks` crate) records applied versions in
//! [`MIGRATIONS_TABLE`], so applying them at every start-up is safe. All SQL
//! runs on ClickHouse 18.16 and on current releases.

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

impl Migration {
    /// The migration's statements, without comments or the separating `;`.
    pub fn statements(&self) -> Vec<String> {
        split_statements(self.sql)
    }
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

    #[test]
    fn versions_are_increasing_and_statements_idempotent() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last);
            last = m.version;
            let stmts = m.statements();
            assert!(!stmts.is_empty());
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
        let stmts = v3.statements();
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
        let stmts = MIGRATIONS[0].statements();
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

    #[test]
    fn splitter_drops_comments_and_blanks() {
        let stmts = split_statements("-- a\nSELECT 1; -- b\n\n;SELECT 2;");
        assert_eq!(stmts, vec!["SELECT 1", "SELECT 2"]);
    }
}
