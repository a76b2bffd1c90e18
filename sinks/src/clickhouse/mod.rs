//! ClickHouse: connection, one-shot inserts ([`insert`]), migrations, row
//! types and their tables ([`rows::Table`]), and the batching writer.
//!
//! The client speaks RowBinary over HTTP with schema validation off, which
//! works on ClickHouse 18.16 (no `RowBinaryWithNamesAndTypes` there) as on
//! current releases; every value reaches SQL through `.bind()`.

mod migrate;
pub mod rows;
pub mod writer;

pub use migrate::{migrate, server_version, MigrateError, MigrationReport};
pub use writer::{FlushReport, TableWriter, WriteError, WriterConfig};

use clickhouse::Row;
use insite_schemas::config::ClickHouseConfig;
use serde::Serialize;

/// A client for the configured server, user and database.
pub fn connect(config: &ClickHouseConfig) -> clickhouse::Client {
    client_without_database(config).with_database(&config.database)
}

/// A client for the configured server and user, on the `default` database
/// (to create or drop the configured one).
pub fn client_without_database(config: &ClickHouseConfig) -> clickhouse::Client {
    let client = clickhouse::Client::default()
        .with_url(&config.url)
        .with_user(&config.user)
        .with_validation(false);
    if config.password.is_empty() {
        client
    } else {
        client.with_password(&config.password)
    }
}

/// Writes `rows` into `table` as one RowBinary `INSERT`: every row is in
/// ClickHouse when this returns `Ok`, none is retried on error.
pub async fn insert<R>(
    client: &clickhouse::Client,
    table: &str,
    rows: &[R],
) -> Result<(), clickhouse::error::Error>
where
    R: Row + Serialize + Send + Sync + 'static,
    for<'a> R: Row<Value<'a> = R>,
{
    let mut insert = client.insert::<R>(table).await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}
