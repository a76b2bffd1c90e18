//! Where a restarted pipeline picks up: its durable frontier, kept in
//! ClickHouse beside the results it describes.
//!
//! After every confirmed flush the output task records the new durable
//! frontier `D` in `pipeline_progress` *before* any message is acknowledged
//! on its strength (in a cluster, the least `D` over all processes). A
//! restarted pipeline reads `D` back: every window ending before `D` is
//! complete in the result tables, and the messages it sees again (those not
//! acknowledged, and a few acknowledged ones above the ack floor) must not
//! recompute it from part of its input (see [`crate::bridge::output`]).

use insite_schemas::time::now_ms;
use insite_schemas::TimestampMs;
use insite_sinks::clickhouse as ch;
use insite_sinks::clickhouse::rows::{datetime_secs, ProgressRow, Table};

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
///
/// Each process of a pipeline records its own frontier, under
/// `<pipeline>/<process>`: a process's frontier says its own output task has
/// written everything before it. Results of one message may be written by
/// any process (data is exchanged by symbol), so a message is acknowledged
/// only once the *least* frontier over all processes passes its deadline
/// ([`ProgressStore::global`]), and a restarted pipeline resumes from the
/// least frontier ever recorded under its name ([`ProgressStore::load`]).
#[derive(Clone)]
pub struct ProgressStore {
    /// The client, on the results' database.
    client: clickhouse::Client,
    /// The pipeline's name.
    pipeline: String,
    /// This process's index.
    process: usize,
    /// Number of processes.
    processes: usize,
}

impl std::fmt::Debug for ProgressStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressStore")
            .field("pipeline", &self.pipeline)
            .field("process", &self.process)
            .field("processes", &self.processes)
            .finish()
    }
}

impl ProgressStore {
    /// The store of process `process` of `processes` of `pipeline`, in
    /// `client`'s database.
    pub fn new(
        client: clickhouse::Client,
        pipeline: impl Into<String>,
        process: usize,
        processes: usize,
    ) -> Self {
        Self {
            client,
            pipeline: pipeline.into(),
            process,
            processes: processes.max(1),
        }
    }

    fn error(&self, source: clickhouse::error::Error) -> ResumeError {
        ResumeError::ClickHouse {
            pipeline: self.pipeline.clone(),
            source,
        }
    }

    /// The newest frontier of each process ever recorded under this
    /// pipeline's name.
    async fn frontiers(&self) -> Result<Vec<(String, TimestampMs)>, ResumeError> {
        let prefix = format!("{}/", self.pipeline);
        // `substring` rather than LIKE, whose `_` and `%` a name may hold.
        let sql = format!(
            "SELECT pipeline, argMax(durable_ms, version) FROM {} \
             WHERE substring(pipeline, 1, {}) = ? GROUP BY pipeline",
            ProgressRow::TABLE,
            prefix.len()
        );
        self.client
            .query(&sql)
            .bind(&prefix)
            .fetch_all::<(String, TimestampMs)>()
            .await
            .map_err(|e| self.error(e))
    }

    /// Where a restarted pipeline resumes: the least frontier recorded by
    /// any of its processes, if any was.
    pub async fn load(&self) -> Result<Option<TimestampMs>, ResumeError> {
        Ok(self.frontiers().await?.into_iter().map(|(_, d)| d).min())
    }

    /// The least frontier over the current processes (`None` while one of
    /// them has recorded none yet). One process needs no query.
    pub async fn global(&self, own: TimestampMs) -> Result<Option<TimestampMs>, ResumeError> {
        if self.processes == 1 {
            return Ok(Some(own));
        }
        let names: Vec<String> = (0..self.processes)
            .map(|i| format!("{}/{i}", self.pipeline))
            .collect();
        let frontiers = self.frontiers().await?;
        let mut least: Option<TimestampMs> = None;
        for name in &names {
            let Some((_, d)) = frontiers.iter().find(|(n, _)| n == name) else {
                return Ok(None);
            };
            least = Some(least.map_or(*d, |l| l.min(*d)));
        }
        Ok(least)
    }

    /// Records `durable` as this process's durable frontier.
    pub async fn save(&self, durable: TimestampMs) -> Result<(), ResumeError> {
        let row = ProgressRow {
            pipeline: format!("{}/{}", self.pipeline, self.process),
            durable_ms: durable,
            updated_at: datetime_secs(now_ms()),
            // Frontiers only grow, so the frontier itself orders the rows;
            // flipping the sign bit keeps that order in an unsigned column.
            version: (durable as u64) ^ (1 << 63),
        };
        ch::insert(&self.client, ProgressRow::TABLE, &[row])
            .await
            .map_err(|e| self.error(e))
    }
}
