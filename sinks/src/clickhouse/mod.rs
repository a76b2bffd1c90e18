//! ClickHouse: connection ([`connect`]), one-shot inserts ([`insert`]),
//! migrations (rendered for the server's version) and the raw tables'
//! retention, row types and their tables ([`rows::Table`]), the batching
//! writer, and what a failure means ([`classify`]).
//!
//! The client speaks RowBinary over HTTP with schema validation off, which
//! works on ClickHouse 18.16 (no `RowBinaryWithNamesAndTypes` there) as on
//! current releases; every value reaches SQL through `.bind()`.
//!
//! ## Durable inserts on a cluster
//!
//! On replicated shards behind `Distributed` tables, durability when
//! acknowledged takes two server settings and one of ours: the server's
//! `insert_distributed_sync = 1` (an insert returns once every shard has
//! written its part, not once it is queued), and `insert_quorum`
//! ([`connect_for_writes`], from `ClickHouseConfig::insert_quorum`): each
//! shard's part is acknowledged once that many replicas hold it. The
//! checkpoint rows (`pipeline_checkpoints`) are written without a quorum:
//! they are written after the results they cover are acknowledged, and a
//! checkpoint lost with a replica only makes a restart re-read more.
//!
//! ## Timeouts, errors, retries
//!
//! - Every client [`connect`] and [`client_without_database`] make runs over
//!   a transport with timeouts (`ClickHouseConfig::connect_timeout_ms` to
//!   connect, `request_timeout_ms` of server silence on a request), so no
//!   call waits forever on a server that is down or hung: it fails with a
//!   retryable network error (see `transport`'s docs).
//! - [`classify`] tells a retryable failure (an outage) from a refused
//!   statement or a client bug, by error variant, ClickHouse exception code
//!   and HTTP status ([`ErrorClass`]).
//! - [`crate::retry::retry_forever`] is the one policy: retryable failures
//!   are retried forever with capped backoff (back-pressure), the others
//!   stop the caller. The [`TableWriter`]'s flush and [`migrate`] use it;
//!   [`insert`] and plain queries do not retry by themselves.

mod classify;
mod migrate;
mod retention;
pub mod rows;
mod transport;
pub mod writer;

pub use classify::{
    classify, classify_code, classify_status, exception_code, is_retryable, is_timeout, ErrorClass,
    BAD_DATA_CODES, RETRYABLE_CODES,
};
pub use migrate::{
    applied_versions, features_of, is_migrated, migrate, server_version, MigrateError,
    MigrationReport,
};
pub use writer::{Batch, FlushReport, TableWriter, WriteError, WriterConfig};

use std::time::Duration;

use clickhouse::Row;
use insite_schemas::config::ClickHouseConfig;
use serde::Serialize;

/// A client for the configured server, user and database, with the
/// configured timeouts.
pub fn connect(config: &ClickHouseConfig) -> clickhouse::Client {
    client_without_database(config).with_database(&config.database)
}

/// A client for the table writers: [`connect`]'s, with the configured
/// `insert_quorum` (if any) sent with every insert, so that a write is
/// acknowledged only once that many replicas of its shard hold it.
pub fn connect_for_writes(config: &ClickHouseConfig) -> clickhouse::Client {
    let client = connect(config);
    if config.insert_quorum > 0 {
        client.with_setting("insert_quorum", config.insert_quorum.to_string())
    } else {
        client
    }
}

/// A client for the configured server and user, on the `default` database
/// (to create or drop the configured one), with the configured timeouts.
pub fn client_without_database(config: &ClickHouseConfig) -> clickhouse::Client {
    let http = transport::http_client(
        Duration::from_millis(config.connect_timeout_ms),
        Duration::from_millis(config.request_timeout_ms),
    );
    let client = clickhouse::Client::with_http_client(http)
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
/// ClickHouse when this returns `Ok`, none is retried on error (retry with
/// [`crate::retry::retry_forever`] and [`is_retryable`]). The client's
/// transport bounds the call (`request_timeout_ms` of server silence).
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that accepts connections and never answers.
    async fn silent_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        format!("http://{addr}")
    }

    fn config(url: String) -> ClickHouseConfig {
        ClickHouseConfig {
            url,
            connect_timeout_ms: 200,
            request_timeout_ms: 200,
            ..ClickHouseConfig::default()
        }
    }

    /// Generous: only a hang (the defect) exceeds it.
    const HANG: std::time::Duration = std::time::Duration::from_secs(30);

    #[tokio::test]
    async fn a_query_to_a_silent_server_times_out() {
        let client = connect(&config(silent_server().await));
        let answer = tokio::time::timeout(HANG, server_version(&client))
            .await
            .expect("the query times out by itself");
        let err = answer.unwrap_err();
        assert!(is_timeout(&err), "{err:?}");
        assert_eq!(classify(&err), ErrorClass::Retryable);
    }

    #[tokio::test]
    async fn an_insert_to_a_silent_server_times_out() {
        #[derive(clickhouse::Row, serde::Serialize)]
        struct One {
            n: u32,
        }
        let client = connect(&config(silent_server().await));
        let rows: Vec<One> = (0..1_000).map(|n| One { n }).collect();
        let answer = tokio::time::timeout(HANG, insert(&client, "t", &rows))
            .await
            .expect("the insert times out by itself");
        let err = answer.unwrap_err();
        assert!(is_timeout(&err), "{err:?}");
        assert!(is_retryable(&err));
    }

    #[tokio::test]
    async fn a_refused_connection_is_retryable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = connect(&config(url));
        let err = tokio::time::timeout(HANG, server_version(&client))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(classify(&err), ErrorClass::Retryable, "{err:?}");
        assert!(!is_timeout(&err));
    }
}
