//! Applies the versioned migrations of `insite_schemas::migrations`.
//!
//! Every step (reaching the server, each statement, recording a version)
//! follows [`crate::retry`]'s policy: while ClickHouse is down or
//! overloaded it is retried forever with capped backoff, so a pipeline
//! started before its ClickHouse waits for it (logging every attempt)
//! instead of exiting; a refused statement ends the migration with its
//! error. Retrying a statement is safe: most are `IF [NOT] EXISTS`, a
//! version recorded twice is read back once, and a statement whose lost
//! answer hid that it took effect (migration 3's `RENAME`) fails again with
//! a non-retryable error, which ends this run; each migration is safe to
//! run again after such a failure or a crash, so the next start completes
//! it.
//!
//! The statements are rendered for the server: its `SELECT version()`
//! gives the [`Features`] the migrations use (`LowCardinality(String)`
//! columns and `DateTime64` aliases on current servers, the plain 18.16
//! schema elsewhere; see `insite_schemas::migrations`), and after the
//! migrations the raw tables' retention (`TTL`, `clickhouse.raw_ttl_days`)
//! is brought in line with the config where the server has `TTL`
//! (`super::retention`). A version that does not parse gets the 18.16
//! schema, which every server runs.

use std::future::Future;

use insite_schemas::config::ClickHouseConfig;
use insite_schemas::migrations::{Migration, MIGRATIONS, MIGRATIONS_TABLE, MIGRATIONS_TABLE_DDL};
use insite_schemas::server::{Features, ServerVersion};
use insite_schemas::time::now_ms;

use super::rows::{datetime_secs, Table};
use crate::retry::{retry_forever, Backoff};

/// The `op` of migrations in retry logs and `insite_clickhouse_retries_total`.
const OP: &str = "migrate";

/// Runs one migration step, retrying while ClickHouse is unavailable.
pub(super) async fn step<T, F, Fut>(attempt: F) -> Result<T, clickhouse::error::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, clickhouse::error::Error>>,
{
    retry_forever(OP, Backoff::standard(), super::is_retryable, attempt)
        .await
        .map(|done| done.value)
}

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The database name is not a plain identifier.
    #[error("invalid database name {0:?}: use letters, digits and '_' only")]
    InvalidDatabase(String),
    /// A statement failed.
    #[error("migration {version} ({name}) failed on `{statement}`: {source}")]
    Statement {
        /// The migration's version.
        version: u32,
        /// The migration's name.
        name: &'static str,
        /// The start of the failing statement.
        statement: String,
        /// The server's error.
        #[source]
        source: clickhouse::error::Error,
    },
    /// Setting a raw table's retention (`TTL`) failed.
    #[error("setting the retention of {table} failed on `{statement}`: {source}")]
    Retention {
        /// The table.
        table: &'static str,
        /// The statement.
        statement: String,
        /// The server's error.
        #[source]
        source: clickhouse::error::Error,
    },
    /// The server answered an error retrying cannot fix (it is retried
    /// while unreachable or overloaded).
    #[error("ClickHouse: {0}")]
    Server(#[from] clickhouse::error::Error),
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The server's version string.
    pub server_version: String,
    /// The features of that version the migrations rendered with.
    pub features: Features,
    /// Versions applied now.
    pub applied: Vec<u32>,
    /// Versions that were already applied.
    pub already_applied: Vec<u32>,
    /// The retention statements run (`ALTER TABLE … TTL`; none when the
    /// tables were already as configured, or the server has no `TTL`).
    pub retention: Vec<String>,
}

/// The features of the server that reported `version`: those of its
/// release, or none (the 18.16 schema) when it does not parse.
pub fn features_of(version: &str) -> Features {
    match ServerVersion::parse(version) {
        Ok(v) => Features::of(v),
        Err(e) => {
            tracing::warn!(error = %e, "unknown ClickHouse version: using the ClickHouse 18.16 schema");
            Features::NONE
        }
    }
}

/// A row of [`MIGRATIONS_TABLE`].
#[derive(Debug, clickhouse::Row, serde::Serialize, serde::Deserialize)]
struct AppliedRow {
    version: u32,
    name: String,
    applied_at: u32,
}

impl Table for AppliedRow {
    const TABLE: &'static str = MIGRATIONS_TABLE;
}

/// The server's version, e.g. `18.16.1` or `24.8.4.13`.
pub async fn server_version(
    client: &clickhouse::Client,
) -> Result<String, clickhouse::error::Error> {
    client.query("SELECT version()").fetch_one::<String>().await
}

/// The migration versions recorded as applied in `client`'s database (an
/// error if `schema_migrations` does not exist yet).
pub async fn applied_versions(
    client: &clickhouse::Client,
) -> Result<Vec<u32>, clickhouse::error::Error> {
    client
        .query(&format!("SELECT DISTINCT version FROM {MIGRATIONS_TABLE}"))
        .fetch_all::<u32>()
        .await
}

/// Whether every migration of this build is recorded as applied in
/// `client`'s database (another process may be applying them).
pub async fn is_migrated(client: &clickhouse::Client) -> bool {
    match applied_versions(client).await {
        Ok(applied) => MIGRATIONS.iter().all(|m| applied.contains(&m.version)),
        Err(_) => false,
    }
}

/// Creates the database if missing and applies every migration not yet
/// recorded in `schema_migrations`. Safe to run at every start-up. Waits,
/// retrying, while ClickHouse is unavailable (see the module docs).
///
/// Two runs at once on one database (the processes of a cluster starting
/// together) are not safe while a migration that has not been applied yet
/// moves tables (migration 3, `trades_key`): one of them may fail with
/// `TABLE_ALREADY_EXISTS` or `UNKNOWN_TABLE`; the pipeline has process 0
/// migrate and the others wait for [`is_migrated`].
pub async fn migrate(config: &ClickHouseConfig) -> Result<MigrationReport, MigrateError> {
    let db = &config.database;
    if db.is_empty() || !db.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(MigrateError::InvalidDatabase(db.clone()));
    }
    let admin = super::client_without_database(config);
    let server_version = step(|| server_version(&admin)).await?;
    let create = format!("CREATE DATABASE IF NOT EXISTS {db}");
    step(|| admin.query(&create).execute()).await?;
    let client = super::connect(config);
    step(|| client.query(MIGRATIONS_TABLE_DDL).execute()).await?;
    let done: Vec<u32> = step(|| applied_versions(&client)).await?;
    let features = features_of(&server_version);
    let mut report = MigrationReport {
        server_version,
        features,
        applied: Vec::new(),
        already_applied: Vec::new(),
        retention: Vec::new(),
    };
    for migration in MIGRATIONS {
        if done.contains(&migration.version) {
            report.already_applied.push(migration.version);
            continue;
        }
        apply(&client, migration, &features).await?;
        report.applied.push(migration.version);
    }
    report.retention = super::retention::apply(
        &client,
        db,
        config.raw_ttl_days,
        &report.server_version,
        &features,
    )
    .await?;
    tracing::info!(database = %db, applied = ?report.applied, server = %report.server_version, features = %features.names(), "ClickHouse migrations up to date");
    Ok(report)
}

async fn apply(
    client: &clickhouse::Client,
    migration: &Migration,
    features: &Features,
) -> Result<(), MigrateError> {
    for statement in migration.statements(features) {
        step(|| client.query(&statement).execute())
            .await
            .map_err(|source| MigrateError::Statement {
                version: migration.version,
                name: migration.name,
                statement: statement.chars().take(80).collect(),
                source,
            })?;
    }
    let applied = AppliedRow {
        version: migration.version,
        name: migration.name.to_owned(),
        applied_at: datetime_secs(now_ms()),
    };
    let applied = [applied];
    step(|| super::insert(client, AppliedRow::TABLE, &applied)).await?;
    tracing::info!(
        version = migration.version,
        name = migration.name,
        "applied migration"
    );
    Ok(())
}
