//! Where a restarted pipeline picks up: for each input stream, its durable
//! frontier and its checkpoint, kept in ClickHouse (`pipeline_checkpoints`)
//! beside the results they describe.
//!
//! After a confirmed flush each process records its own frontier `F` for a
//! stream (row `<name>/<process>`); process 0 then records the pipeline's
//! row (`<name>`): the least `F` over the processes of the current topology,
//! and the checkpoint (`resume_seq`, `max_ts_ms`) that the least `F` allows
//! ([`crate::progress::CheckpointTracker`]). A restart reads only the
//! pipeline's row, so records of processes that a scale-down removed never
//! confuse it: every window of the stream ending before `durable_ms` is
//! complete in the result tables, and reading resumes at `resume_seq + 1`
//! with the stream's clock as it stood there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use insite_schemas::time::now_ms;
use insite_schemas::TimestampMs;
use insite_sinks::clickhouse as ch;
use insite_sinks::clickhouse::rows::{datetime_secs, CheckpointRow, Table};

use crate::source::InputSource;

/// The newest checkpoint row of every source of one pipeline row name
/// (`pipeline`, or `<pipeline>/<process>`), bound as the name: source,
/// durable_ms, resume_seq, max_ts_ms. A restart reads it ([`ProgressStore::load`]),
/// and so does each process for the others' frontiers.
pub fn checkpoints_sql() -> String {
    format!(
        "SELECT source, argMax(durable_ms, version), argMax(resume_seq, version), \
         argMax(max_ts_ms, version) FROM {} WHERE pipeline = ? GROUP BY source",
        CheckpointRow::TABLE
    )
}

/// Errors reading or writing the durable frontier.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// ClickHouse refused or could not be reached (retryable).
    #[error("pipeline_checkpoints of {pipeline}: {source}")]
    ClickHouse {
        /// The pipeline's name.
        pipeline: String,
        /// The client's error.
        #[source]
        source: clickhouse::error::Error,
    },
}

impl ResumeError {
    /// Whether trying again may succeed (ClickHouse unavailable, by its
    /// error code or status), rather than a bad statement or a bug.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::ClickHouse { source, .. } => ch::is_retryable(source),
        }
    }
}

/// Where one input stream stands, as a restart reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamCheckpoint {
    /// Every result of the stream's windows ending before this is durable
    /// (`None`: nothing recorded yet).
    pub durable_ms: Option<TimestampMs>,
    /// Every message at or below this sequence is finished with (0: none).
    pub resume_seq: u64,
    /// The stream's clock after `resume_seq`.
    pub max_ts: Option<TimestampMs>,
}

impl StreamCheckpoint {
    /// Windowed results stamped before this are already durable.
    pub fn floor(&self) -> TimestampMs {
        self.durable_ms.unwrap_or(TimestampMs::MIN)
    }
}

/// Where the whole pipeline stands, per input stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resume {
    /// MARKET.
    pub market: StreamCheckpoint,
    /// SOCIAL.
    pub social: StreamCheckpoint,
}

impl Resume {
    /// The checkpoint of `source`.
    pub fn of(&self, source: InputSource) -> StreamCheckpoint {
        match source {
            InputSource::Market => self.market,
            InputSource::Social => self.social,
        }
    }

    /// The least durable frontier over both streams, if both have one.
    pub fn durable(&self) -> Option<TimestampMs> {
        Some(self.market.durable_ms?.min(self.social.durable_ms?))
    }
}

/// Reads and writes one pipeline's durable frontiers and checkpoints; see
/// the module docs.
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
    /// The last version written: versions grow with every write.
    version: Arc<AtomicU64>,
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
            version: Arc::new(AtomicU64::new(0)),
        }
    }

    fn error(&self, source: clickhouse::error::Error) -> ResumeError {
        ResumeError::ClickHouse {
            pipeline: self.pipeline.clone(),
            source,
        }
    }

    /// A version above every one this store wrote (and the wall clock's
    /// nanoseconds, so a later run's rows win over an earlier one's).
    fn next_version(&self) -> u64 {
        let now = u64::try_from(now_ms())
            .unwrap_or(0)
            .saturating_mul(1_000_000);
        let mut last = self.version.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .version
                .compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The newest row of `name` for every source recorded.
    async fn rows(
        &self,
        name: &str,
    ) -> Result<Vec<(String, TimestampMs, u64, TimestampMs)>, ResumeError> {
        self.client
            .query(&checkpoints_sql())
            .bind(name)
            .fetch_all::<(String, TimestampMs, u64, TimestampMs)>()
            .await
            .map_err(|e| self.error(e))
    }

    /// Where a restart of the pipeline resumes (the pipeline's own row).
    pub async fn load(&self) -> Result<Resume, ResumeError> {
        let mut resume = Resume::default();
        for (source, durable_ms, resume_seq, max_ts) in self.rows(&self.pipeline).await? {
            let checkpoint = StreamCheckpoint {
                durable_ms: Some(durable_ms),
                resume_seq,
                max_ts: (max_ts != TimestampMs::MIN).then_some(max_ts),
            };
            match source.as_str() {
                "market" => resume.market = checkpoint,
                "social" => resume.social = checkpoint,
                _ => {}
            }
        }
        Ok(resume)
    }

    /// The least frontier of `source` over the processes of the current
    /// topology (`None` while one of them has recorded none). One process
    /// needs no query.
    pub async fn global(
        &self,
        source: InputSource,
        own: TimestampMs,
    ) -> Result<Option<TimestampMs>, ResumeError> {
        if self.processes == 1 {
            return Ok(Some(own));
        }
        let mut least: Option<TimestampMs> = None;
        for process in 0..self.processes {
            let name = format!("{}/{process}", self.pipeline);
            let durable = if process == self.process {
                Some(own)
            } else {
                self.rows(&name)
                    .await?
                    .into_iter()
                    .find(|(s, ..)| s == source.name())
                    .map(|(_, d, ..)| d)
            };
            let Some(durable) = durable else {
                return Ok(None);
            };
            least = Some(least.map_or(durable, |l| l.min(durable)));
        }
        Ok(least)
    }

    /// Writes `rows` in one `INSERT` (one part on the server).
    pub async fn write_rows(&self, rows: &[CheckpointRow]) -> Result<(), ResumeError> {
        if rows.is_empty() {
            return Ok(());
        }
        ch::insert(&self.client, CheckpointRow::TABLE, rows)
            .await
            .map_err(|e| self.error(e))
    }

    /// The row recording `durable` as this process's frontier of `source`.
    pub fn process_row(&self, source: InputSource, durable: TimestampMs) -> CheckpointRow {
        CheckpointRow {
            pipeline: format!("{}/{}", self.pipeline, self.process),
            source: source.name().to_owned(),
            durable_ms: durable,
            resume_seq: 0,
            max_ts_ms: TimestampMs::MIN,
            updated_at: datetime_secs(now_ms()),
            version: self.next_version(),
        }
    }

    /// The pipeline's row of `source` (process 0 only): its durable frontier
    /// over every process and its checkpoint.
    pub fn pipeline_row(&self, source: InputSource, checkpoint: StreamCheckpoint) -> CheckpointRow {
        CheckpointRow {
            pipeline: self.pipeline.clone(),
            source: source.name().to_owned(),
            durable_ms: checkpoint.floor(),
            resume_seq: checkpoint.resume_seq,
            max_ts_ms: checkpoint.max_ts.unwrap_or(TimestampMs::MIN),
            updated_at: datetime_secs(now_ms()),
            version: self.next_version(),
        }
    }

    /// Records `durable` as this process's frontier of `source`.
    pub async fn save_process(
        &self,
        source: InputSource,
        durable: TimestampMs,
    ) -> Result<(), ResumeError> {
        self.write_rows(&[self.process_row(source, durable)]).await
    }

    /// Records the pipeline's row of `source` (process 0 only): its durable
    /// frontier over every process and its checkpoint.
    pub async fn save_pipeline(
        &self,
        source: InputSource,
        checkpoint: StreamCheckpoint,
    ) -> Result<(), ResumeError> {
        self.write_rows(&[self.pipeline_row(source, checkpoint)])
            .await
    }
}
