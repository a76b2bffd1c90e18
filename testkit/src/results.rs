//! Reading insite's result tables back, for tests: `bars` and `sentiment`
//! with `FINAL` as comparable maps, the recorded durable frontier, and
//! comparisons that say which window differs.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use insite_pipeline::resume::{ProgressStore, Resume};
use insite_pipeline::source::InputSource;
use insite_schemas::config::ClickHouseConfig;
use serde::Deserialize;

use crate::wait::eventually;

/// Where a restart of `pipeline` would resume, as recorded (the process
/// index is not used by `load`).
async fn recorded(clickhouse: &ClickHouseConfig, pipeline: &str) -> Option<Resume> {
    let client = insite_sinks::clickhouse::connect(clickhouse);
    ProgressStore::new(client, pipeline, 0, 1).load().await.ok()
}

/// The recorded durable frontier of `pipeline`, if any: the least over its
/// two input streams of the row a restart resumes from.
pub async fn durable_frontier(clickhouse: &ClickHouseConfig, pipeline: &str) -> Option<i64> {
    recorded(clickhouse, pipeline)
        .await
        .and_then(|resume| resume.durable())
}

/// The recorded durable frontier of one input stream of `pipeline`, if any.
pub async fn stream_durable_frontier(
    clickhouse: &ClickHouseConfig,
    pipeline: &str,
    source: InputSource,
) -> Option<i64> {
    recorded(clickhouse, pipeline)
        .await
        .and_then(|resume| resume.of(source).durable_ms)
}

/// Waits (up to two minutes) until `frontier()` passes `through`; panics
/// naming `what` if it does not.
async fn wait_past<F, Fut>(what: &str, through: i64, frontier: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<i64>>,
{
    let durable = eventually(Duration::from_secs(120), async || {
        frontier().await.is_some_and(|d| d > through)
    })
    .await;
    if let Err(e) = durable {
        panic!(
            "{what} not durable through {through} in time (at {:?}): {e}",
            frontier().await
        );
    }
}

/// Waits (up to two minutes) until `pipeline`'s durable frontier passes
/// `through`.
///
/// # Panics
/// If it does not in time.
pub async fn wait_durable(clickhouse: &ClickHouseConfig, pipeline: &str, through: i64) {
    wait_past(&format!("pipeline {pipeline}"), through, || {
        durable_frontier(clickhouse, pipeline)
    })
    .await;
}

/// Waits (up to two minutes) until the durable frontier of `pipeline`'s
/// `source` stream passes `through` (for a test whose input is on one
/// stream only: the other's frontier never moves).
///
/// # Panics
/// If it does not in time.
pub async fn wait_stream_durable(
    clickhouse: &ClickHouseConfig,
    pipeline: &str,
    source: InputSource,
    through: i64,
) {
    wait_past(
        &format!("{} of pipeline {pipeline}", source.name()),
        through,
        || stream_durable_frontier(clickhouse, pipeline, source),
    )
    .await;
}

/// A bar as read back from ClickHouse: (symbol, interval_s, window_start_ms)
/// → (open, high, low, close, volume, vwap, trades).
pub type BarTable = BTreeMap<(String, u32, u64), (f64, f64, f64, f64, u64, f64, u64)>;

/// The `bars` table, read with `FINAL`.
pub async fn read_bars(clickhouse: &ClickHouseConfig) -> BarTable {
    #[derive(Debug, Deserialize, clickhouse::Row)]
    struct Row {
        symbol: String,
        interval_s: u32,
        window_start_ms: u64,
        open: f64,
        high: f64,
        low: f64,
        close: f64,
        volume: u64,
        vwap: f64,
        trades: u64,
    }
    let rows: Vec<Row> = insite_sinks::clickhouse::connect(clickhouse)
        .query(
            "SELECT symbol, interval_s, window_start_ms, open, high, low, close, volume, vwap, \
             trades FROM bars FINAL",
        )
        .fetch_all()
        .await
        .expect("reading bars");
    rows.into_iter()
        .map(|r| {
            (
                (r.symbol, r.interval_s, r.window_start_ms),
                (r.open, r.high, r.low, r.close, r.volume, r.vwap, r.trades),
            )
        })
        .collect()
}

/// A sentiment window: (symbol, interval_s, window_start_ms) → (posts,
/// score, positive, negative, neutral, weighted).
pub type SentimentTable = BTreeMap<(String, u32, u64), (u64, f64, u64, u64, u64, f64)>;

/// The `sentiment` table, read with `FINAL`.
pub async fn read_sentiment(clickhouse: &ClickHouseConfig) -> SentimentTable {
    #[derive(Debug, Deserialize, clickhouse::Row)]
    struct Row {
        symbol: String,
        interval_s: u32,
        window_start_ms: u64,
        posts: u64,
        score: f64,
        positive: u64,
        negative: u64,
        neutral: u64,
        weighted_score: f64,
    }
    let rows: Vec<Row> = insite_sinks::clickhouse::connect(clickhouse)
        .query(
            "SELECT symbol, interval_s, window_start_ms, posts, score, positive, negative, \
             neutral, weighted_score FROM sentiment FINAL",
        )
        .fetch_all()
        .await
        .expect("reading sentiment");
    rows.into_iter()
        .map(|r| {
            (
                (r.symbol, r.interval_s, r.window_start_ms),
                (
                    r.posts,
                    r.score,
                    r.positive,
                    r.negative,
                    r.neutral,
                    r.weighted_score,
                ),
            )
        })
        .collect()
}

/// A trending entry: (interval_s, window_start_ms, symbol) → (rank,
/// mentions, z-score).
pub type TrendingTable = BTreeMap<(u32, u64, String), (u32, u64, f64)>;

/// The `trending` table, read with `FINAL`.
pub async fn read_trending(clickhouse: &ClickHouseConfig) -> TrendingTable {
    insite_sinks::clickhouse::connect(clickhouse)
        .query(
            "SELECT interval_s, window_start_ms, symbol, rank, mentions, zscore \
             FROM trending FINAL",
        )
        .fetch_all::<(u32, u64, String, u32, u64, f64)>()
        .await
        .expect("reading trending")
        .into_iter()
        .map(|(i, w, s, rank, mentions, z)| ((i, w, s), (rank, mentions, z)))
        .collect()
}

/// An alert: (symbol, kind, interval_s, window_start_ms) → (value,
/// threshold, message).
pub type AlertTable = BTreeMap<(String, String, u32, u64), (f64, f64, String)>;

/// The `alerts` table, read with `FINAL`.
pub async fn read_alerts(clickhouse: &ClickHouseConfig) -> AlertTable {
    insite_sinks::clickhouse::connect(clickhouse)
        .query(
            "SELECT symbol, kind, interval_s, window_start_ms, value, threshold, message \
             FROM alerts FINAL",
        )
        .fetch_all::<(String, String, u32, u64, f64, f64, String)>()
        .await
        .expect("reading alerts")
        .into_iter()
        .map(|(s, k, i, w, v, t, m)| ((s, k, i, w), (v, t, m)))
        .collect()
}

/// Whether two floats agree to 1e-9, relative (absolute near zero).
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Asserts two bar tables are equal (floats to 1e-9 relative).
pub fn assert_bars_equal(got: &BarTable, want: &BarTable, what: &str) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: the same windows"
    );
    for (key, g) in got {
        let w = &want[key];
        let same = close(g.0, w.0)
            && close(g.1, w.1)
            && close(g.2, w.2)
            && close(g.3, w.3)
            && g.4 == w.4
            && close(g.5, w.5)
            && g.6 == w.6;
        assert!(same, "{what}: bar {key:?}: got {g:?}, want {w:?}");
    }
}

/// Asserts two sentiment tables are equal (floats to 1e-9).
pub fn assert_sentiment_equal(got: &SentimentTable, want: &SentimentTable, what: &str) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: the same windows"
    );
    for (key, g) in got {
        let w = &want[key];
        let same = g.0 == w.0
            && close(g.1, w.1)
            && g.2 == w.2
            && g.3 == w.3
            && g.4 == w.4
            && close(g.5, w.5);
        assert!(same, "{what}: sentiment {key:?}: got {g:?}, want {w:?}");
    }
}

/// Records the durable frontier of `pipeline`'s `source`, as the pipeline
/// does (one row per advance, the highest version in force).
pub async fn record_frontier(
    env: &crate::TestEnv,
    pipeline: &str,
    source: &str,
    durable_ms: insite_schemas::TimestampMs,
    version: u64,
) {
    env.clickhouse()
        .query(
            "INSERT INTO pipeline_checkpoints \
             (pipeline, source, durable_ms, resume_seq, max_ts_ms, updated_at, version) \
             VALUES (?, ?, ?, ?, ?, now(), ?)",
        )
        .bind(pipeline)
        .bind(source)
        .bind(durable_ms)
        .bind(0_u64)
        .bind(durable_ms)
        .bind(version)
        .execute()
        .await
        .expect("recording a durable frontier");
}

/// A late event as the `late_events` table holds it: (kind, symbol, event
/// time ms, watermark ms, event id).
pub type LateRow = (String, String, u64, u64, String);

/// The `late_events` table, read with `FINAL`, in a canonical order (the
/// time it was recorded left out: it is processing time).
pub async fn read_late(clickhouse: &ClickHouseConfig) -> Vec<LateRow> {
    insite_sinks::clickhouse::connect(clickhouse)
        .query(
            "SELECT kind, symbol, ts_ms, watermark_ms, event_id FROM late_events FINAL \
             ORDER BY kind, symbol, ts_ms, watermark_ms, event_id",
        )
        .fetch_all::<LateRow>()
        .await
        .expect("reading late_events")
}

/// What a run leaves in the tables compared across runs: `bars` and
/// `sentiment` (FINAL) and the late events.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTables {
    /// `bars` FINAL.
    pub bars: BarTable,
    /// `sentiment` FINAL.
    pub sentiment: SentimentTable,
    /// `late_events` FINAL.
    pub late: Vec<LateRow>,
}

impl RunTables {
    /// The three tables of `clickhouse`'s database.
    pub async fn read(clickhouse: &ClickHouseConfig) -> Self {
        Self {
            bars: read_bars(clickhouse).await,
            sentiment: read_sentiment(clickhouse).await,
            late: read_late(clickhouse).await,
        }
    }

    /// Asserts that these are `want`'s tables, naming the first window that
    /// differs; `what` says which runs are compared.
    pub fn assert_equal(&self, want: &Self, what: &str) {
        assert_bars_equal(&self.bars, &want.bars, what);
        assert_sentiment_equal(&self.sentiment, &want.sentiment, what);
        assert_eq!(self.late, want.late, "late events, {what}");
    }
}

/// Checks that `pipeline`'s checkpoint of each input stream is past every
/// data message the stream holds (only the clock ticks written after the
/// data may be after it): a restart would read none of them again.
///
/// # Panics
/// If a stream's checkpoint is behind its last data message.
pub async fn assert_checkpoints_past_the_data(env: &crate::TestEnv, pipeline: &str) {
    let resume = recorded(&env.connections.clickhouse, pipeline)
        .await
        .expect("reading the checkpoints");
    let js = env.jetstream().await;
    let streams = &env.connections.nats.streams;
    for (source, stream) in [
        (InputSource::Market, &streams.market),
        (InputSource::Social, &streams.social),
    ] {
        let stored = crate::jetstream::read_all(&js, stream).await;
        // Sequences run from 1 in a stream nothing was deleted from.
        let last_data = stored
            .iter()
            .rposition(|m| !m.subject.contains(".clock."))
            .map_or(0, |i| i as u64 + 1);
        let checkpoint = resume.of(source).resume_seq;
        assert!(
            checkpoint >= last_data,
            "{}: checkpoint at sequence {checkpoint}, data up to {last_data}",
            source.name()
        );
    }
}
