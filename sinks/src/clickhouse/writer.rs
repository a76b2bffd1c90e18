//! A batching, retrying writer for one ClickHouse table.
//!
//! The shape every insite sink shares: rows are written into a bounded
//! buffer, flushed as one RowBinary `INSERT` when the buffer reaches a size
//! or an age, and a flush is confirmed only once ClickHouse has accepted the
//! whole batch. A failed flush keeps the batch and retries with capped
//! exponential backoff, forever, while the error is retryable (network,
//! timeouts, server overload: [`super::classify`]), so nothing is lost
//! while ClickHouse is down; meanwhile the caller awaits the flush and takes
//! no input, and [`TableWriter::is_full`] keeps it from taking more than the
//! buffer holds (back-pressure instead of unbounded memory). A
//! non-retryable error ends the flush with [`WriteError::Rejected`], the
//! batch still buffered. This is [`crate::retry`]'s policy, the one every
//! ClickHouse writer follows.
//!
//! Tables are `ReplacingMergeTree`s keyed on the result's identity, so a
//! batch retried after an ambiguous failure (the server got it, the answer
//! was lost) replaces itself rather than doubling.

use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::rows::Table;
use crate::retry::{retry_forever, Backoff};

/// Whether retrying `error` may succeed (kept here for existing callers;
/// see [`super::classify`]).
pub use super::classify::is_retryable;

/// When a writer flushes and how it retries.
///
/// The defaults follow ClickHouse's advice of about one `INSERT` per table
/// per second: every insert makes a part, which merges later rewrite and
/// replace, so the flush age, not the row rate, sets the server's part
/// churn. A second's age keeps that to one part per table per second;
/// readers of live state never wait for it, since Redis and the DERIVED
/// stream carry the hot path (see `docs/pipeline.md`, "Flush policy").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// Flush when this many rows are buffered.
    pub max_rows: usize,
    /// Flush when the oldest buffered row is this old, in milliseconds.
    pub max_age_ms: u64,
    /// Refuse more input (back-pressure) beyond this many buffered rows.
    pub capacity_rows: usize,
    /// First retry delay, in milliseconds.
    pub retry_initial_ms: u64,
    /// Longest retry delay, in milliseconds. A flush retries retryable
    /// errors forever (see [`crate::retry`]).
    pub retry_max_ms: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_rows: 100_000,
            max_age_ms: 1_000,
            capacity_rows: 200_000,
            retry_initial_ms: 100,
            retry_max_ms: 5_000,
        }
    }
}

/// Why a flush failed for good.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The batch failed for a reason retrying cannot fix: the server refused
    /// it (a schema mismatch, a syntax error: a bug or a wrong migration) or
    /// the client failed ([`super::classify`] is not `Retryable`). The rows
    /// stay buffered.
    #[error("ClickHouse rejected {rows} rows for table {table}: {source}")]
    Rejected {
        /// The table.
        table: &'static str,
        /// Rows in the batch.
        rows: usize,
        /// The server's error.
        #[source]
        source: clickhouse::error::Error,
    },
}

/// What a confirmed flush wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushReport {
    /// Rows written.
    pub rows: usize,
    /// Failed attempts before the one that succeeded.
    pub retries: u32,
    /// Time from the first attempt to the confirmation.
    pub elapsed: Duration,
}

/// Buffers rows for one table and writes them in batches.
#[derive(Debug)]
pub struct TableWriter<R> {
    /// The client (with database and credentials).
    client: clickhouse::Client,
    /// The table written to.
    table: &'static str,
    /// Flush and retry policy.
    config: WriterConfig,
    /// Rows not yet confirmed.
    buffer: Vec<R>,
    /// When the oldest buffered row arrived.
    oldest: Option<Instant>,
}

impl<R> TableWriter<R>
where
    R: Row + Serialize + Send + Sync + 'static,
    for<'a> R: Row<Value<'a> = R>,
{
    /// A writer for `table`.
    pub fn new(client: clickhouse::Client, table: &'static str, config: WriterConfig) -> Self {
        Self {
            client,
            table,
            config,
            buffer: Vec::new(),
            oldest: None,
        }
    }

    /// A writer for `R`'s own table ([`Table::TABLE`]).
    pub fn for_table(client: clickhouse::Client, config: WriterConfig) -> Self
    where
        R: Table,
    {
        Self::new(client, R::TABLE, config)
    }

    /// The table written to.
    pub fn table(&self) -> &'static str {
        self.table
    }

    /// Buffers a row. The caller checks [`Self::is_full`] and flushes before
    /// pushing more.
    pub fn push(&mut self, row: R) {
        if self.buffer.is_empty() {
            self.oldest = Some(Instant::now());
        }
        self.buffer.push(row);
    }

    /// Rows buffered and not yet confirmed.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// Whether the buffer holds its capacity: take no more input until a
    /// flush succeeds.
    pub fn is_full(&self) -> bool {
        self.buffer.len() >= self.config.capacity_rows
    }

    /// Whether the buffer reached its size or age limit.
    pub fn should_flush(&self, now: Instant) -> bool {
        self.buffer.len() >= self.config.max_rows
            || self.oldest.is_some_and(|t| {
                now.duration_since(t) >= Duration::from_millis(self.config.max_age_ms)
            })
    }

    /// How long until the age limit forces a flush (`None` when empty).
    pub fn time_to_flush(&self, now: Instant) -> Option<Duration> {
        self.oldest.map(|t| {
            (t + Duration::from_millis(self.config.max_age_ms)).saturating_duration_since(now)
        })
    }

    /// Writes every buffered row, retrying retryable failures with capped
    /// exponential backoff. On success the rows are durable in ClickHouse
    /// and leave the buffer; on failure they stay.
    pub async fn flush(&mut self) -> Result<FlushReport, WriteError> {
        let started = Instant::now();
        match write_rows(&self.client, self.table, &self.config, &self.buffer).await {
            Ok(retries) => {
                let rows = self.buffer.len();
                self.buffer.clear();
                self.oldest = None;
                Ok(FlushReport {
                    rows,
                    retries,
                    elapsed: started.elapsed(),
                })
            }
            Err(error) => Err(error),
        }
    }

    /// Takes every buffered row out as a [`Batch`] that writes on its own,
    /// leaving the writer empty and taking rows again at once: the caller
    /// can buffer the next batch while this one is in flight.
    ///
    /// The next batch is reserved as long as this one (at most `max_rows`):
    /// batches of a table are about as long as the one before, and growing
    /// a buffer of a few hundred thousand rows by doubling copies it over
    /// and over.
    pub fn take_batch(&mut self) -> Batch<R> {
        self.oldest = None;
        let next = Vec::with_capacity(self.buffer.len().min(self.config.max_rows));
        Batch {
            client: self.client.clone(),
            table: self.table,
            config: self.config.clone(),
            rows: std::mem::replace(&mut self.buffer, next),
        }
    }
}

/// Rows taken out of a [`TableWriter`] ([`TableWriter::take_batch`]), to be
/// written as one batch with the writer's retry policy.
#[derive(Debug)]
pub struct Batch<R> {
    client: clickhouse::Client,
    table: &'static str,
    config: WriterConfig,
    rows: Vec<R>,
}

impl<R> Batch<R>
where
    R: Row + Serialize + Send + Sync + 'static,
    for<'a> R: Row<Value<'a> = R>,
{
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the batch holds no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the batch, retrying retryable failures like
    /// [`TableWriter::flush`]; on success the rows are durable. On a
    /// non-retryable failure the rows are dropped with the batch: the
    /// caller has not reported them durable, so their input is delivered
    /// again.
    pub async fn write(self) -> Result<FlushReport, WriteError> {
        let started = Instant::now();
        let retries = write_rows(&self.client, self.table, &self.config, &self.rows).await?;
        Ok(FlushReport {
            rows: self.rows.len(),
            retries,
            elapsed: started.elapsed(),
        })
    }
}

/// Writes `rows` into `table` as one `INSERT` (nothing for no rows),
/// retrying retryable failures with `config`'s backoff, forever; returns
/// the failed attempts before the one that succeeded.
async fn write_rows<R>(
    client: &clickhouse::Client,
    table: &'static str,
    config: &WriterConfig,
    rows: &[R],
) -> Result<u32, WriteError>
where
    R: Row + Serialize + Send + Sync + 'static,
    for<'a> R: Row<Value<'a> = R>,
{
    if rows.is_empty() {
        return Ok(0);
    }
    let backoff = Backoff::new(
        Duration::from_millis(config.retry_initial_ms),
        Duration::from_millis(config.retry_max_ms),
    );
    retry_forever(table, backoff, is_retryable, || {
        super::insert(client, table, rows)
    })
    .await
    .map(|done| done.retries)
    .map_err(|source| WriteError::Rejected {
        table,
        rows: rows.len(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errors() {
        use clickhouse::error::Error;
        assert!(is_retryable(&Error::TimedOut));
        assert!(is_retryable(&Error::BadResponse(
            "Code: 252, e.displayText() = DB::Exception: Too many parts".into()
        )));
        assert!(!is_retryable(&Error::BadResponse(
            "Code: 62, Syntax error".into()
        )));
        assert!(!is_retryable(&Error::NotEnoughData));
    }

    #[test]
    fn classifies_by_code_and_status_not_by_substrings() {
        use clickhouse::error::Error;
        // A syntax error whose text happens to hold "503".
        assert!(!is_retryable(&Error::BadResponse(
            "Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 503"
                .into()
        )));
        // An unknown table named like a status.
        assert!(!is_retryable(&Error::BadResponse(
            "Code: 60. DB::Exception: Table insite.t503 doesn't exist. (UNKNOWN_TABLE)".into()
        )));
        // A proxy's empty 502 answer (the client reports the status line).
        assert!(is_retryable(&Error::BadResponse("502 Bad Gateway".into())));
    }
}
