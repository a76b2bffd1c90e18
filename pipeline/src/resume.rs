//! Where a restarted pipeline picks up: its durable frontier, kept in
//! ClickHouse beside the results it describes.
//!
//! After every confirmed flush the output task records the new durable
//! frontier `D` in `pipeline_progress` *before* any message is acknowledged
//! on its strength. A restarted pipeline reads `D` back: every window ending
//! before `D` is complete in the result tables, and the messages it sees
//! again (those not acknowledged, and a few acknowledged ones above the ack
//! floor) must not recompute it from part of its input (see
//! [`crate::bridge::output`]).

use insite_schemas::TimestampMs;
use insite_sinks::clickhouse::rows::{datetime_secs, ProgressRow};

/// Errors reading or writing the durable frontier.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// ClickHouse refused or could not be reached (retryable).
    #[error("pipeline_progress of {pipeline}: {source}")]
    ClickHouse {
        /// The pipeline's name.
        pipeline: String,
        /// The client's error.
        #[source]
        source: clickhouse::error::Error,
    },
}

/// Reads and writes one pipeline's durable frontier.
#[derive(Clone)]
pub struct ProgressStore {
    /// The client, on the results' database.
    client: clickhouse::Client,
    /// The pipeline's name.
    pipeline: String,
}

impl std::fmt::Debug for ProgressStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressStore")
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

impl ProgressStore {
    /// The store of `pipeline` in `client`'s database.
    pub fn new(client: clickhouse::Client, pipeline: impl Into<String>) -> Self {
        Self {
            client,
            pipeline: pipeline.into(),
        }
    }

    fn error(&self, source: clickhouse::error::Error) -> ResumeError {
        ResumeError::ClickHouse {
            pipeline: self.pipeline.clone(),
            source,
        }
    }

    /// The last recorded durable frontier, if any.
    pub async fn load(&self) -> Result<Option<TimestampMs>, ResumeError> {
        let rows: Vec<(u64, i64)> = self
            .client
            .query(
                "SELECT count(), argMax(durable_ms, version) FROM pipeline_progress \
                 WHERE pipeline = ?",
            )
            .bind(&self.pipeline)
            .fetch_all()
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .first()
            .and_then(|&(count, durable)| (count > 0).then_some(durable)))
    }

    /// Records `durable` as the pipeline's durable frontier.
    pub async fn save(&self, durable: TimestampMs) -> Result<(), ResumeError> {
        let now = crate::progress::wall_clock_ms();
        let row = ProgressRow {
            pipeline: self.pipeline.clone(),
            durable_ms: durable,
            updated_at: datetime_secs(now),
            // Frontiers only grow, so the frontier itself orders the rows;
            // the offset keeps the version unsigned.
            version: (durable as u64) ^ (1 << 63),
        };
        let mut insert = self
            .client
            .insert::<ProgressRow>("pipeline_progress")
            .await
            .map_err(|e| self.error(e))?;
        insert.write(&row).await.map_err(|e| self.error(e))?;
        insert.end().await.map_err(|e| self.error(e))
    }
}
