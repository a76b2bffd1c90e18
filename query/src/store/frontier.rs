//! When a range answer can never change: the pipeline's durable frontier,
//! read from `pipeline_checkpoints` (migration 4) and kept for a moment.
//!
//! The pipeline records, per source (`market` for bars, `social` for
//! sentiment), a frontier `durable_ms`: every window `[s, e)` of that
//! source with `e < durable_ms` is final and in ClickHouse. The service
//! trusts only the row of its configured pipeline (`[query] pipeline`),
//! not the per-process rows `<name>/<process>`, and of that the newest
//! version. A range whose last window ends before that frontier is
//! [`Durability::Durable`]; anything else, including no row at all or a
//! ClickHouse error, is [`Durability::Open`]. The wall clock plays no part:
//! a lagging pipeline never makes an answer immutable that lacks a window.

use std::time::Duration;

use insite_schemas::{Interval, TimestampMs};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long a frontier read from ClickHouse is trusted before the next
/// request of its source reads it again.
pub const FRONTIER_REFRESH: Duration = Duration::from_millis(500);

/// How long reading the frontier may take; longer counts as an error (the
/// answer is then live, never immutable).
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The input streams whose frontiers the pipeline records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontierSource {
    /// Trades and quotes: bars.
    Market,
    /// Posts: sentiment.
    Social,
}

impl FrontierSource {
    /// The `source` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Market => "market",
            Self::Social => "social",
        }
    }
}

/// Whether the answer about a range can still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every window of the range is final and in ClickHouse: the answer is
    /// immutable, read from ClickHouse alone and cached.
    Durable,
    /// Some window may still change or not be in ClickHouse yet: the answer
    /// is live, merged with Redis's newest results, never cached.
    Open,
}

/// The (exclusive) end of the last window that a range `[.., to)` of
/// `interval` covers: the end of the window holding `to - 1`, so at or
/// after `to`.
pub fn last_window_end(interval: Interval, to: TimestampMs) -> TimestampMs {
    interval.window_end(interval.window_start(to.saturating_sub(1)))
}

/// The rule: a range is durable when its last window ends before the
/// durable frontier (`None`: nothing recorded, nothing is durable).
pub fn durability(last_window_end: TimestampMs, durable_ms: Option<TimestampMs>) -> Durability {
    if durable_ms.is_some_and(|durable| last_window_end < durable) {
        Durability::Durable
    } else {
        Durability::Open
    }
}

/// A frontier as read at some moment.
#[derive(Debug, Clone, Copy)]
struct Reading {
    /// When it was read.
    at: Instant,
    /// The frontier (`None`: no row, or the read failed).
    durable_ms: Option<TimestampMs>,
}

/// The durable frontiers of one pipeline's sources, each read from
/// ClickHouse at most once per [`FRONTIER_REFRESH`]: concurrent requests
/// wait for the one read in flight rather than each asking ClickHouse.
#[derive(Debug)]
pub struct Frontiers {
    /// The pipeline's name: the `pipeline` column of the rows trusted.
    pipeline: String,
    /// How long a reading is kept.
    refresh: Duration,
    /// The last reading of `market`.
    market: Mutex<Option<Reading>>,
    /// The last reading of `social`.
    social: Mutex<Option<Reading>>,
    /// A read this long or longer is slow (counted, logged).
    slow_query: Duration,
}

impl Frontiers {
    /// The frontiers of `pipeline`, kept for `refresh` once read.
    pub fn new(pipeline: impl Into<String>, refresh: Duration) -> Self {
        Self {
            pipeline: pipeline.into(),
            refresh,
            market: Mutex::new(None),
            social: Mutex::new(None),
            slow_query: Duration::from_millis(250),
        }
    }

    /// The same, timing its reads against `slow_query`
    /// ([`super::timed`]).
    pub fn with_slow_query(mut self, slow_query: Duration) -> Self {
        self.slow_query = slow_query;
        self
    }

    /// The pipeline whose frontiers these are.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The durable frontier of `source`: the last reading when it is
    /// recent, else a fresh one (`None`: no row, or ClickHouse failed).
    pub async fn durable_ms(
        &self,
        clickhouse: &clickhouse::Client,
        source: FrontierSource,
    ) -> Option<TimestampMs> {
        let slot = match source {
            FrontierSource::Market => &self.market,
            FrontierSource::Social => &self.social,
        };
        let mut last = slot.lock().await;
        if let Some(reading) = *last {
            if reading.at.elapsed() < self.refresh {
                return reading.durable_ms;
            }
        }
        let durable_ms = self.read(clickhouse, source).await;
        *last = Some(Reading {
            at: Instant::now(),
            durable_ms,
        });
        durable_ms
    }

    /// Reads the newest frontier of `source` from ClickHouse.
    async fn read(
        &self,
        clickhouse: &clickhouse::Client,
        source: FrontierSource,
    ) -> Option<TimestampMs> {
        // GROUP BY: no row at all when nothing was recorded (a bare
        // aggregate would answer 0). Exact name: not `<name>/<process>`.
        let sql = super::statements::FRONTIER;
        let query = clickhouse
            .query(sql)
            .bind(self.pipeline.as_str())
            .bind(source.as_str())
            .fetch_optional::<TimestampMs>();
        let query = super::timed::timed(self.slow_query, sql, query);
        match tokio::time::timeout(READ_TIMEOUT, query).await {
            Ok(Ok(durable_ms)) => durable_ms,
            Ok(Err(e)) => {
                tracing::warn!(
                    error = %e,
                    pipeline = %self.pipeline,
                    source = source.as_str(),
                    "reading the durable frontier failed; answers stay live"
                );
                None
            }
            Err(_) => {
                tracing::warn!(
                    pipeline = %self.pipeline,
                    source = source.as_str(),
                    "reading the durable frontier timed out; answers stay live"
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE: Interval = Interval::FIVE_MINUTES;
    /// A window start of 5 minutes.
    const W: TimestampMs = 1_699_920_000_000;
    const E: TimestampMs = W + 300_000;

    #[test]
    fn last_window_is_the_one_holding_to_minus_one() {
        // `to` one past a window start: that window is the last one.
        assert_eq!(last_window_end(FIVE, W + 1), E);
        // `to` at a window end: that window, not the next one.
        assert_eq!(last_window_end(FIVE, E), E);
        assert_eq!(last_window_end(FIVE, E - 1), E);
        assert_eq!(last_window_end(FIVE, E + 1), E + 300_000);
        assert_eq!(last_window_end(Interval::SECOND, 1_500), 2_000);
    }

    #[test]
    fn durable_only_when_the_last_window_ends_before_the_frontier() {
        let end = last_window_end(FIVE, W + 1);
        // No frontier recorded: nothing is durable.
        assert_eq!(durability(end, None), Durability::Open);
        // Behind the window, at its start, at its end: not yet.
        assert_eq!(durability(end, Some(W - 300_000)), Durability::Open);
        assert_eq!(durability(end, Some(W + 1)), Durability::Open);
        assert_eq!(durability(end, Some(E)), Durability::Open);
        // Past its end: final and in ClickHouse.
        assert_eq!(durability(end, Some(E + 1)), Durability::Durable);
        assert_eq!(durability(end, Some(i64::MAX)), Durability::Durable);
    }

    #[tokio::test]
    async fn a_clickhouse_error_is_no_frontier_and_is_kept_for_a_moment() {
        // Nothing listens on port 1: the read fails at once.
        let clickhouse = clickhouse::Client::default().with_url("http://127.0.0.1:1");
        let frontiers = Frontiers::new("insite", Duration::from_secs(60));
        assert_eq!(frontiers.pipeline(), "insite");
        assert_eq!(
            frontiers
                .durable_ms(&clickhouse, FrontierSource::Market)
                .await,
            None
        );
        let kept = frontiers.market.lock().await.map(|r| r.durable_ms);
        assert_eq!(kept, Some(None));
        assert!(frontiers.social.lock().await.is_none());
    }
}
