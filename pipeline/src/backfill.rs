//! Backfill: the dataflow over a bounded input (history read from files),
//! written to ClickHouse so that it is safe next to the live pipeline.
//!
//! The caller (`insite backfill`) reads the files and feeds the messages,
//! batched exactly as `insite ingest files` would publish them, into the
//! two input channels of [`channels`]; [`backfill`] runs the same operators
//! as the live job over them, as a bounded input (every window closes at
//! the end), and then:
//!
//! 1. **Staging.** Every row (raw trades, quotes and posts, results, late
//!    events) goes first into a staging database of its own,
//!    `<database>_backfill_<second>_<pid>`, migrated like the target. Result
//!    rows carry the backfill's version ([`rows::backfill_version`]: the
//!    wall clock in seconds), below every live version
//!    ([`rows::LIVE_VERSION_FLOOR`]), so a live final can never be replaced
//!    by a backfilled row, and a later backfill replaces an earlier one.
//! 2. **The overlap check.** The backfill is refused, and nothing reaches
//!    the target, if any window it produced is already final there from a
//!    live pipeline or a replay (a row with a live version: the target's
//!    value would stay the live one, which lacks the file's events), or if
//!    a window ends at or after a live pipeline's durable frontier recorded
//!    in the target's `pipeline_checkpoints` (that pipeline may still write
//!    it). The error names the tables, symbols and window ranges.
//! 3. **Copy.** Otherwise every table is copied, server-side, from staging
//!    into the target (`INSERT ... SELECT`); the raw tables deduplicate by
//!    their keys, the result tables by window and version. The staging
//!    database is dropped, whatever happened.
//!
//! The staging database lives on one server, `clickhouse.staging_url`
//! (default: `url`), and every statement that reads it runs there. On a
//! cluster behind a load balancer that is one node's own URL: the overlap
//! check reads the target's `Distributed` tables with `GLOBAL IN` (the
//! staged keys are sent to the shards, which have no staging database), and
//! the copy inserts into them with the target's `insert_quorum`.
//!
//! A target that holds no result row and no pipeline checkpoint cannot
//! overlap anything, so there the rows go straight in
//! ([`BackfillMode::Direct`]), which saves ClickHouse the copy. A target
//! database that does not exist yet is created and migrated while the
//! operators already run: the ClickHouse writers take rows meanwhile and
//! their first insert waits for the migration
//! ([`OutputTask::writing_after`]), which would otherwise stand before the
//! whole run.
//!
//! Interrupted (`cancel`), the job stops where it is, like a live pipeline
//! stopping: open windows are not closed. Staged, nothing reaches the
//! target; direct, the target holds the windows the input's clock had
//! closed, which are complete, and running the backfill again completes it.
//!
//! So a backfilled range that no live pipeline has finalized ends exactly
//! as a fresh run over the same input would, and running the same backfill
//! again changes nothing. See `docs/pipeline.md` ("History").

use std::fmt;
use std::time::{Duration, Instant};

use insite_schemas::config::{ClickHouseConfig, Connections};
use insite_schemas::time::now_ms;
use insite_schemas::{Bar, Finality, Inbound, Interval, TimestampMs};
use insite_sinks::clickhouse::rows::{self, Table as _, LIVE_VERSION_FLOOR};
use insite_sinks::clickhouse::{self as ch};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::bridge::Job;
use crate::config::PipelineConfig;
use crate::output::{OutputTask, WritesReady};
use crate::run::PipelineError;
use crate::source::{InputBody, InputMessage, InputSource};

/// The receiving ends of a backfill's input, one per stream; see
/// [`channels`].
#[derive(Debug)]
pub struct BackfillInput {
    /// MARKET's messages (trades, quotes), in the order a stream would
    /// hold them.
    pub market: mpsc::Receiver<InputMessage>,
    /// SOCIAL's messages (posts).
    pub social: mpsc::Receiver<InputMessage>,
}

/// The sending ends of a backfill's input.
#[derive(Debug, Clone)]
pub struct BackfillSender {
    /// Into MARKET's dataflow.
    market: mpsc::Sender<InputMessage>,
    /// Into SOCIAL's dataflow.
    social: mpsc::Sender<InputMessage>,
    /// The next message number per stream (the input's "stream
    /// sequence").
    next_seq: [u64; 2],
}

impl BackfillSender {
    /// Sends one message's events to their stream's dataflow, waiting while
    /// the dataflow is busy; `false` once the backfill has stopped.
    pub fn blocking_send(&mut self, events: Inbound) -> bool {
        let source = match events {
            Inbound::Trades(_) | Inbound::Quotes(_) => InputSource::Market,
            Inbound::Posts(_) => InputSource::Social,
        };
        let seq = &mut self.next_seq[source.index()];
        *seq += 1;
        let message = InputMessage {
            source,
            stream_seq: *seq,
            body: InputBody::Events(events),
            pending: 0,
        };
        let tx = match source {
            InputSource::Market => &self.market,
            InputSource::Social => &self.social,
        };
        tx.blocking_send(message).is_ok()
    }
}

/// A backfill's input channels, sized by `config.input_buffer`.
pub fn channels(config: &PipelineConfig) -> (BackfillSender, BackfillInput) {
    let (market_tx, market) = mpsc::channel(config.input_buffer.max(1));
    let (social_tx, social) = mpsc::channel(config.input_buffer.max(1));
    (
        BackfillSender {
            market: market_tx,
            social: social_tx,
            next_seq: [0, 0],
        },
        BackfillInput { market, social },
    )
}

/// How a backfill reached its target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackfillMode {
    /// Through a staging database, checked against the target's live
    /// windows, then copied.
    #[default]
    Staged,
    /// Straight into a target that held no result rows and no pipeline
    /// checkpoints, so that nothing could overlap.
    Direct,
}

/// Rows a backfill wrote, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Staged or direct.
    pub mode: BackfillMode,
    /// `(table, rows)` for every raw and result table, in
    /// [`rows::DATA_TABLES`] order: the rows staged and copied, or, written
    /// directly, the rows the target now holds.
    pub rows: Vec<(&'static str, u64)>,
    /// The version stamped on its result rows.
    pub version: u64,
    /// Wall-clock duration, staging and copy included.
    pub elapsed: Duration,
}

impl BackfillReport {
    /// Rows written into `table` (0 for a table it does not know).
    pub fn rows_of(&self, table: &str) -> u64 {
        self.rows
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }
}

/// Windows of one kind that a backfill produced and the target already
/// holds as final (or that a live pipeline may still write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The result table.
    pub table: &'static str,
    /// Whose windows: a symbol, a symbol and alert kind, or `*` (trending).
    pub key: String,
    /// Window length, s.
    pub interval_s: u32,
    /// The first overlapping window's start, ms.
    pub first_ms: i64,
    /// The last overlapping window's start, ms.
    pub last_ms: i64,
    /// Number of overlapping windows.
    pub windows: u64,
    /// Why it overlaps.
    pub reason: OverlapReason,
}

/// Why a window cannot be backfilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapReason {
    /// A live pipeline (or a replay) has written it as final.
    LiveFinal,
    /// It ends at or after a live pipeline's durable frontier, so that
    /// pipeline may still write it.
    PastLiveFrontier {
        /// The least durable frontier of the live pipelines, ms.
        frontier_ms: i64,
    },
}

impl fmt::Display for Overlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time =
            |ms: i64| insite_schemas::time::format_time(ms).unwrap_or_else(|| format!("{ms} ms"));
        write!(
            f,
            "{} {} {} s windows {} .. {} ({} windows): ",
            self.table,
            self.key,
            self.interval_s,
            time(self.first_ms),
            time(self.last_ms),
            self.windows
        )?;
        match self.reason {
            OverlapReason::LiveFinal => write!(f, "already final from the live pipeline"),
            // A pipeline that has read nothing yet may still write any window.
            OverlapReason::PastLiveFrontier {
                frontier_ms: i64::MIN,
            } => write!(
                f,
                "a live pipeline is recorded that has made nothing durable yet, so it may still write any window"
            ),
            OverlapReason::PastLiveFrontier { frontier_ms } => write!(
                f,
                "at or after the live pipeline's durable frontier {}",
                time(frontier_ms)
            ),
        }
    }
}

/// A refused backfill: the overlaps found (the first few of each table),
/// and how many windows overlap in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The target database.
    pub database: String,
    /// Overlapping windows, grouped.
    pub overlaps: Vec<Overlap>,
    /// Overlapping windows in all.
    pub windows: u64,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "backfill refused, nothing was written to database {:?}: {} window(s) of the input \
             overlap windows the live pipeline has finalized or may still write; backfill a \
             range the live pipeline has not seen (or into another --database). Overlaps:",
            self.database, self.windows
        )?;
        for overlap in &self.overlaps {
            write!(f, "\n  {overlap}")?;
        }
        Ok(())
    }
}

/// One result table's window key, for the overlap check.
struct WindowKey {
    /// The table.
    table: &'static str,
    /// The columns that name one window.
    columns: &'static str,
    /// The expression that names whose window it is.
    label: &'static str,
    /// The stream whose frontier bounds it (`None`: both).
    source: Option<InputSource>,
}

/// The result tables and their window keys.
const WINDOW_KEYS: [WindowKey; 4] = [
    WindowKey {
        table: rows::BarRow::TABLE,
        columns: "symbol, interval_s, window_start_ms",
        label: "symbol",
        source: Some(InputSource::Market),
    },
    WindowKey {
        table: rows::SentimentRow::TABLE,
        columns: "symbol, interval_s, window_start_ms",
        label: "symbol",
        source: Some(InputSource::Social),
    },
    WindowKey {
        table: rows::TrendingRow::TABLE,
        columns: "interval_s, window_start_ms",
        label: "'*'",
        source: Some(InputSource::Social),
    },
    WindowKey {
        table: rows::AlertRow::TABLE,
        columns: "symbol, kind, interval_s, window_start_ms",
        label: "concat(symbol, ' ', kind)",
        source: None,
    },
];

/// Most overlap groups listed per table.
const OVERLAPS_LISTED: usize = 10;

/// Runs the operators over `input` until both channels close, then checks
/// and copies the result into `services.clickhouse`'s database (see the
/// module docs). On [`PipelineError::Refused`], or if `cancel` fires before
/// the copy (the input was cut short), nothing is written there.
pub async fn backfill(
    services: &Connections,
    config: &PipelineConfig,
    input: BackfillInput,
    bars: Vec<Bar>,
    cancel: &CancellationToken,
) -> Result<BackfillReport, PipelineError> {
    let started = Instant::now();
    let version = rows::backfill_version(now_ms());
    let target = &services.clickhouse;
    let client = ch::client_without_database(target);
    if !database_exists(&client, &target.database).await? {
        // A new database: nothing there to overlap. It is created and
        // migrated while the operators already run; the first insert waits
        // for it.
        tracing::info!(database = %target.database, version, "backfill: into a new database, migrated meanwhile");
        let migrating = {
            let target = target.clone();
            Box::pin(async move { ch::migrate(&target).await.map(drop) })
        };
        let mut report = direct(
            target,
            config,
            input,
            &bars,
            version,
            cancel,
            Some(migrating),
        )
        .await?;
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    ch::migrate(target).await?;
    if !holds_results(&client, &target.database).await? {
        // Nothing there to overlap: write straight into the target.
        tracing::info!(database = %target.database, version, "backfill: straight into an empty database");
        let mut report = direct(target, config, input, &bars, version, cancel, None).await?;
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    let staging = ClickHouseConfig {
        // One server (`staging_url`): behind a load balancer over a
        // cluster, every statement of the staging database must reach the
        // server that holds it.
        url: target.staging_url().to_owned(),
        staging_url: String::new(),
        database: format!(
            "{}_backfill_{version}_{}",
            target.database,
            std::process::id()
        ),
        // Staging tables are plain tables of one server: no quorum there;
        // the copy into the target asks for it.
        insert_quorum: 0,
        // No retention on staging: rows older than the target's TTL are
        // copied as they are, and the target expires them.
        raw_ttl_days: 0,
        ..target.clone()
    };
    tracing::info!(staging = %staging.database, server = %staging.url, version, "backfill: staging database");
    // Statements that read the staging database run on its server; the
    // target's tables are reached from there (on a cluster, its
    // `Distributed` tables).
    let on_staging = ch::client_without_database(&staging);
    let result = async {
        ch::migrate(&staging).await?;
        if run_job(&staging, config, input, version, cancel, None).await? {
            return Err(PipelineError::Backfill(format!(
                "interrupted: nothing was written to database {:?}",
                target.database
            )));
        }
        write_bars(&staging, &bars, version).await?;
        check_overlaps(&on_staging, &target.database, &staging.database).await?;
        let mut report = BackfillReport {
            mode: BackfillMode::Staged,
            version,
            ..BackfillReport::default()
        };
        count_rows(&on_staging, &staging.database, &mut report).await?;
        for table in rows::DATA_TABLES {
            if report.rows_of(table) == 0 {
                continue;
            }
            let copy = format!(
                "INSERT INTO `{}`.`{table}` SELECT * FROM `{}`.`{table}`",
                target.database, staging.database
            );
            let mut copy = on_staging.query(&copy);
            if target.insert_quorum > 0 {
                copy = copy.with_setting("insert_quorum", target.insert_quorum.to_string());
            }
            copy.execute()
                .await
                .map_err(|e| sql_error("copying the staged rows", e))?;
        }
        Ok::<_, PipelineError>(report)
    }
    .await;
    let drop = format!("DROP DATABASE IF EXISTS `{}`", staging.database);
    if let Err(e) = on_staging.query(&drop).execute().await {
        tracing::warn!(staging = %staging.database, error = %e, "could not drop the staging database");
    }
    let mut report = result?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The backfill straight into `target`, which holds nothing it could
/// overlap: the job, the aggregates' bars, and the rows the target then
/// holds. The job's inserts wait for `ready` (the target being migrated),
/// if given.
async fn direct(
    target: &ClickHouseConfig,
    config: &PipelineConfig,
    input: BackfillInput,
    bars: &[Bar],
    version: u64,
    cancel: &CancellationToken,
    ready: Option<WritesReady>,
) -> Result<BackfillReport, PipelineError> {
    let stopped = run_job(target, config, input, version, cancel, ready).await?;
    if !stopped {
        write_bars(target, bars, version).await?;
    }
    let mut report = BackfillReport {
        mode: BackfillMode::Direct,
        version,
        ..BackfillReport::default()
    };
    let client = ch::client_without_database(target);
    count_rows(&client, &target.database, &mut report).await?;
    if stopped {
        return Err(PipelineError::Backfill(format!(
            "interrupted: database {:?} holds the windows closed before the interruption \
             (and no window the input did not finish); run the backfill again to complete it",
            target.database
        )));
    }
    Ok(report)
}

/// Whether the database `database` exists on the server.
async fn database_exists(
    client: &clickhouse::Client,
    database: &str,
) -> Result<bool, PipelineError> {
    let found = client
        .query("SELECT count() FROM system.databases WHERE name = ?")
        .bind(database)
        .fetch_one::<u64>()
        .await
        .map_err(|e| sql_error("looking up the target database", e))?;
    Ok(found > 0)
}

/// Whether `database` holds any result row or any pipeline's checkpoint
/// (if not, a backfill cannot overlap anything there).
async fn holds_results(client: &clickhouse::Client, database: &str) -> Result<bool, PipelineError> {
    for table in WINDOW_KEYS
        .iter()
        .map(|k| k.table)
        .chain([rows::CheckpointRow::TABLE])
    {
        let sql = format!("SELECT count() FROM (SELECT 1 FROM `{database}`.`{table}` LIMIT 1)");
        if query_count(client, &sql).await? > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Counts the rows of every data table of `database` into `report`, in
/// one query.
async fn count_rows(
    client: &clickhouse::Client,
    database: &str,
    report: &mut BackfillReport,
) -> Result<(), PipelineError> {
    let sql = rows::DATA_TABLES
        .iter()
        .map(|table| format!("SELECT '{table}' AS t, count() AS n FROM `{database}`.`{table}`"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let counts = client
        .query(&sql)
        .fetch_all::<(String, u64)>()
        .await
        .map_err(|e| sql_error("counting rows", e))?;
    for table in rows::DATA_TABLES {
        let count = counts
            .iter()
            .find(|(t, _)| t == table)
            .map_or(0, |(_, n)| *n);
        report.rows.push((table, count));
    }
    Ok(())
}

/// The dataflow over `input`, as a bounded job, into `database`; returns
/// whether `cancel` stopped it (then open windows were not closed: only
/// the windows the input's clock closed are written).
async fn run_job(
    database: &ClickHouseConfig,
    config: &PipelineConfig,
    input: BackfillInput,
    version: u64,
    cancel: &CancellationToken,
    ready: Option<WritesReady>,
) -> Result<bool, PipelineError> {
    // On a bounded run the writer's CPU is on the critical path, and LZ4
    // costs both ends more than it saves on a local link; the batches are
    // big, so the server does not mind the bytes.
    let client = ch::connect_for_writes(database).with_compression(clickhouse::Compression::None);
    let output = OutputTask::durable_only(&client, config).with_version(version);
    // Writing into a database still being migrated: its inserts wait.
    let output = match ready {
        Some(ready) => output.writing_after(ready),
        None => output,
    };
    let (durable_tx, _durable_rx) = watch::channel([TimestampMs::MIN; 2]);
    let job = Job::start_bounded(config, input.market, input.social, output, durable_tx)?;
    let stop = job.stop_flag();
    let cancelled = cancel.clone();
    let watcher = tokio::spawn(async move {
        cancelled.cancelled().await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let finished = job.finish().await;
    watcher.abort();
    finished?;
    Ok(cancel.is_cancelled())
}

/// Writes ready-made final `bars` (from a vendor's aggregates) into
/// `database`, with `version`.
async fn write_bars(
    database: &ClickHouseConfig,
    bars: &[Bar],
    version: u64,
) -> Result<(), PipelineError> {
    let client = ch::connect_for_writes(database);
    for chunk in bars.chunks(100_000) {
        let rows: Vec<rows::BarRow> = chunk
            .iter()
            .map(|b| rows::BarRow::from_bar(b, version))
            .collect();
        ch::insert(&client, rows::BarRow::TABLE, &rows)
            .await
            .map_err(|e| sql_error("writing the aggregates' bars", e))?;
    }
    Ok(())
}

/// Rolls one-minute `bars` up into every interval of `intervals` that is a
/// whole number of minutes above one, exactly: the first open and last
/// close by window start, the highest high and lowest low, summed volume
/// and trades, and the volume-weighted mean of the minutes' VWAPs (the
/// close, if no share traded). Returns the minute bars and the roll-ups,
/// all final; intervals shorter than a minute cannot be made from minutes
/// and are left out.
pub fn roll_up_minutes(mut bars: Vec<Bar>, intervals: &[Interval]) -> Vec<Bar> {
    bars.retain(|b| b.interval == Interval::MINUTE);
    bars.sort_by(|a, b| {
        (a.symbol.as_str(), a.window_start).cmp(&(b.symbol.as_str(), b.window_start))
    });
    bars.dedup_by(|a, b| a.symbol == b.symbol && a.window_start == b.window_start);
    let mut out = bars.clone();
    for &interval in intervals {
        let secs = interval.seconds();
        if secs <= 60 || secs % 60 != 0 {
            continue;
        }
        let mut current: Option<(Bar, f64)> = None;
        for minute in &bars {
            let start = interval.window_start(minute.window_start);
            match &mut current {
                Some((bar, notional))
                    if bar.symbol == minute.symbol && bar.window_start == start =>
                {
                    bar.high = bar.high.max(minute.high);
                    bar.low = bar.low.min(minute.low);
                    bar.close = minute.close;
                    bar.volume += minute.volume;
                    bar.trades += minute.trades;
                    *notional += minute.vwap * minute.volume as f64;
                }
                _ => {
                    if let Some(done) = current.take() {
                        out.push(finish_roll_up(done));
                    }
                    let bar = Bar {
                        interval,
                        window_start: start,
                        ..minute.clone()
                    };
                    current = Some((bar, minute.vwap * minute.volume as f64));
                }
            }
        }
        if let Some(done) = current.take() {
            out.push(finish_roll_up(done));
        }
    }
    for bar in &mut out {
        bar.finality = Finality::Final;
    }
    out
}

fn finish_roll_up((mut bar, notional): (Bar, f64)) -> Bar {
    bar.vwap = if bar.volume > 0 {
        notional / bar.volume as f64
    } else {
        bar.close
    };
    bar
}

/// A failed statement of the backfill's own.
fn sql_error(what: &'static str, source: clickhouse::error::Error) -> PipelineError {
    PipelineError::Backfill(format!("{what}: {source}"))
}

async fn query_count(client: &clickhouse::Client, sql: &str) -> Result<u64, PipelineError> {
    client
        .query(sql)
        .fetch_one::<u64>()
        .await
        .map_err(|e| sql_error("counting rows", e))
}

/// One group of overlapping windows, as the check's queries return it.
#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct OverlapRow {
    key: String,
    interval_s: u32,
    first_ms: u64,
    last_ms: u64,
    windows: u64,
}

/// Refuses the backfill if a staged window overlaps the target's live
/// finals or reaches a live pipeline's durable frontier.
async fn check_overlaps(
    client: &clickhouse::Client,
    target: &str,
    staging: &str,
) -> Result<(), PipelineError> {
    let frontiers = live_frontiers(client, target).await?;
    let mut refused = Refused {
        database: target.to_owned(),
        overlaps: Vec::new(),
        windows: 0,
    };
    for key in &WINDOW_KEYS {
        let WindowKey {
            table,
            columns,
            label,
            source,
        } = key;
        let live_final = format!(
            "SELECT {label} AS key, interval_s, min(window_start_ms) AS first_ms, \
             max(window_start_ms) AS last_ms, uniqExact({columns}) AS windows \
             FROM `{target}`.`{table}` \
             WHERE version >= {LIVE_VERSION_FLOOR} \
               AND ({columns}) GLOBAL IN (SELECT {columns} FROM `{staging}`.`{table}`) \
             GROUP BY key, interval_s ORDER BY key, interval_s"
        );
        collect(
            client,
            &live_final,
            table,
            OverlapReason::LiveFinal,
            &mut refused,
        )
        .await?;
        let frontier = match source {
            Some(source) => frontiers[source.index()],
            None => frontiers.iter().copied().flatten().min(),
        };
        if let Some(frontier_ms) = frontier {
            let past = format!(
                "SELECT {label} AS key, interval_s, min(window_start_ms) AS first_ms, \
                 max(window_start_ms) AS last_ms, uniqExact({columns}) AS windows \
                 FROM `{staging}`.`{table}` \
                 WHERE toInt64(window_start_ms) + toInt64(interval_s) * 1000 >= {frontier_ms} \
                 GROUP BY key, interval_s ORDER BY key, interval_s"
            );
            let reason = OverlapReason::PastLiveFrontier { frontier_ms };
            collect(client, &past, table, reason, &mut refused).await?;
        }
    }
    if refused.windows == 0 {
        Ok(())
    } else {
        Err(PipelineError::Refused(Box::new(refused)))
    }
}

/// Runs one overlap query, adding what it finds to `refused`.
async fn collect(
    client: &clickhouse::Client,
    sql: &str,
    table: &'static str,
    reason: OverlapReason,
    refused: &mut Refused,
) -> Result<(), PipelineError> {
    let found = client
        .query(sql)
        .fetch_all::<OverlapRow>()
        .await
        .map_err(|e| sql_error("checking for overlaps with the live tables", e))?;
    for (i, row) in found.into_iter().enumerate() {
        refused.windows += row.windows;
        if i < OVERLAPS_LISTED {
            refused.overlaps.push(Overlap {
                table,
                key: row.key,
                interval_s: row.interval_s,
                first_ms: i64::try_from(row.first_ms).unwrap_or(i64::MAX),
                last_ms: i64::try_from(row.last_ms).unwrap_or(i64::MAX),
                windows: row.windows,
                reason,
            });
        }
    }
    Ok(())
}

/// One live pipeline's durable frontier on one stream.
#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct FrontierRow {
    source: String,
    durable_ms: i64,
}

/// The least durable frontier per stream (source, durable_ms) over the
/// live pipelines' own checkpoint rows (not the per-process ones) in the
/// database `target`: where a backfill's results stop being safe to write.
pub fn live_frontiers_sql(target: &str) -> String {
    format!(
        "SELECT source, min(durable) AS durable_ms FROM ( \
           SELECT pipeline, source, argMax(durable_ms, version) AS durable \
           FROM `{target}`.`{}` WHERE position(pipeline, '/') = 0 \
           GROUP BY pipeline, source) \
         GROUP BY source",
        rows::CheckpointRow::TABLE
    )
}

/// The least durable frontier per stream over the live pipelines recorded
/// in `target` (`None`: no live pipeline has recorded that stream).
async fn live_frontiers(
    client: &clickhouse::Client,
    target: &str,
) -> Result<[Option<i64>; 2], PipelineError> {
    let found = client
        .query(&live_frontiers_sql(target))
        .fetch_all::<FrontierRow>()
        .await
        .map_err(|e| sql_error("reading the live pipelines' frontiers", e))?;
    let mut frontiers = [None, None];
    for row in found {
        for src in [InputSource::Market, InputSource::Social] {
            if row.source == src.name() {
                frontiers[src.index()] = Some(row.durable_ms);
            }
        }
    }
    Ok(frontiers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use insite_schemas::Symbol;

    /// A minute bar of `sym` at `start` with `[open, high, low, close]`,
    /// volume and VWAP.
    fn minute(sym: &str, start: i64, [o, h, l, c]: [f64; 4], v: u64, vwap: f64) -> Bar {
        Bar {
            symbol: Symbol::new(sym).unwrap(),
            interval: Interval::MINUTE,
            window_start: start,
            open: o,
            high: h,
            low: l,
            close: c,
            volume: v,
            vwap,
            trades: v / 10,
            finality: Finality::Final,
        }
    }

    #[test]
    fn minutes_roll_up_exactly_into_whole_minute_intervals() {
        let t = 1_700_000_100_000; // a 5-minute boundary
        let bars = vec![
            minute("A", t + 60_000, [11.0, 12.0, 10.5, 11.5], 200, 11.2),
            minute("A", t, [10.0, 11.0, 9.0, 10.5], 100, 10.1),
            minute("A", t + 300_000, [20.0; 4], 10, 20.0),
            minute("B", t, [5.0; 4], 0, 5.0),
        ];
        let out = roll_up_minutes(
            bars,
            &[Interval::SECOND, Interval::MINUTE, Interval::FIVE_MINUTES],
        );
        let five: Vec<&Bar> = out
            .iter()
            .filter(|b| b.interval == Interval::FIVE_MINUTES)
            .collect();
        assert_eq!(five.len(), 3);
        let a = five[0];
        assert_eq!((a.open, a.high, a.low, a.close), (10.0, 12.0, 9.0, 11.5));
        assert_eq!((a.volume, a.trades), (300, 30));
        assert!((a.vwap - (10.1 * 100.0 + 11.2 * 200.0) / 300.0).abs() < 1e-12);
        assert_eq!(five[1].window_start, t + 300_000);
        assert_eq!(five[2].vwap, 5.0, "no volume: the close");
        assert_eq!(
            out.iter()
                .filter(|b| b.interval == Interval::MINUTE)
                .count(),
            4
        );
        assert!(out.iter().all(|b| b.interval != Interval::SECOND));
    }
}
