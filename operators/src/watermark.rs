//! Per-source watermarks with allowed lateness and idle-source timeouts.
//!
//! [`WatermarkTracker`] is pure logic over event times and a wall clock the
//! caller passes in; the pipeline's input operator keeps one per process
//! and advances its timely input to [`WatermarkTracker::watermark`].
//!
//! Definition, at wall-clock time `now`:
//! - the tracker's clock starts at the first call (`observe` or
//!   `watermark`), at that call's `now`;
//! - a source is **active** if it saw an event less than `idle_timeout`
//!   ago, or if it never saw one and less than `idle_timeout` has passed
//!   since the clock started (a silent source holds the watermark back for
//!   one timeout at start-up, so that it cannot be raced); otherwise it is
//!   **idle**;
//! - if some source is active: the candidate is the minimum, over active
//!   sources that saw events, of `max_ts - allowed_lateness`; an active
//!   source that never saw an event makes the candidate "no advance";
//! - if every source is idle: the candidate is `now - allowed_lateness`, so
//!   windows close on wall-clock time when every feed is quiet;
//! - the watermark is `max(previous, candidate)`: it never goes backwards.
//!   It starts at `TimestampMs::MIN`.
//!
//! ```
//! use insite_operators::WatermarkTracker;
//! let mut w = WatermarkTracker::new(2, 2_000, 5_000);
//! w.observe(0, 10_000, 0);
//! assert_eq!(w.watermark(0), i64::MIN); // source 1 may still speak
//! w.observe(1, 8_000, 100);
//! assert_eq!(w.watermark(100), 6_000); // min(10 000, 8 000) - 2 000
//! // Source 1 goes quiet; after the idle timeout it no longer holds back.
//! w.observe(0, 20_000, 5_100);
//! assert_eq!(w.watermark(5_100), 18_000);
//! ```

use insite_schemas::TimestampMs;

#[derive(Debug, Clone, Copy, Default)]
struct SourceState {
    /// Largest event time seen, if any.
    max_ts: Option<TimestampMs>,
    /// Wall-clock time of the last event.
    last_seen: TimestampMs,
}

/// Watermark over several input sources; see the module docs.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    /// One entry per source.
    sources: Vec<SourceState>,
    /// How far behind the largest event time the watermark stays.
    allowed_lateness_ms: i64,
    /// Silence after which a source is idle.
    idle_timeout_ms: i64,
    /// Wall-clock time of the first call.
    started: Option<TimestampMs>,
    /// The current watermark.
    current: TimestampMs,
}

impl WatermarkTracker {
    /// A tracker over `sources` sources (numbered from 0).
    pub fn new(sources: usize, allowed_lateness_ms: i64, idle_timeout_ms: i64) -> Self {
        Self {
            sources: vec![SourceState::default(); sources],
            allowed_lateness_ms,
            idle_timeout_ms,
            started: None,
            current: TimestampMs::MIN,
        }
    }

    /// Notes an event of `source` with event time `ts`, read at wall-clock
    /// `now_ms`. An unknown source number grows the tracker.
    pub fn observe(&mut self, source: usize, ts: TimestampMs, now_ms: TimestampMs) {
        self.started.get_or_insert(now_ms);
        if source >= self.sources.len() {
            self.sources.resize(source + 1, SourceState::default());
        }
        let state = &mut self.sources[source];
        state.max_ts = Some(state.max_ts.map_or(ts, |m| m.max(ts)));
        state.last_seen = state.last_seen.max(now_ms);
    }

    /// The watermark at wall-clock `now_ms` (see the module docs).
    pub fn watermark(&mut self, now_ms: TimestampMs) -> TimestampMs {
        let started = *self.started.get_or_insert(now_ms);
        let mut any_active = false;
        let mut blocked = false;
        let mut min_active: Option<TimestampMs> = None;
        for state in &self.sources {
            match state.max_ts {
                Some(max_ts) if now_ms.saturating_sub(state.last_seen) < self.idle_timeout_ms => {
                    any_active = true;
                    let candidate = max_ts.saturating_sub(self.allowed_lateness_ms);
                    min_active = Some(min_active.map_or(candidate, |m| m.min(candidate)));
                }
                None if now_ms.saturating_sub(started) < self.idle_timeout_ms => {
                    any_active = true;
                    blocked = true;
                }
                _ => {}
            }
        }
        let candidate = if !any_active {
            Some(now_ms.saturating_sub(self.allowed_lateness_ms))
        } else if blocked {
            None
        } else {
            min_active
        };
        if let Some(candidate) = candidate {
            self.current = self.current.max(candidate);
        }
        self.current
    }

    /// The watermark last computed, without advancing it.
    pub fn current(&self) -> TimestampMs {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards() {
        let mut w = WatermarkTracker::new(1, 1_000, 5_000);
        w.observe(0, 10_000, 0);
        assert_eq!(w.watermark(0), 9_000);
        w.observe(0, 5_000, 10);
        assert_eq!(w.watermark(10), 9_000);
    }

    #[test]
    fn silent_source_holds_back_only_until_its_timeout() {
        let mut w = WatermarkTracker::new(2, 1_000, 5_000);
        w.observe(0, 10_000, 1_000);
        assert_eq!(w.watermark(4_999), TimestampMs::MIN);
        w.observe(0, 11_000, 5_999);
        // 5 s after start, source 1 (never seen) is idle.
        assert_eq!(w.watermark(6_000), 10_000);
    }

    #[test]
    fn all_idle_advances_with_the_wall_clock() {
        let mut w = WatermarkTracker::new(2, 2_000, 5_000);
        w.observe(0, 10_000, 0);
        w.observe(1, 10_000, 0);
        assert_eq!(w.watermark(1_000), 8_000);
        assert_eq!(w.watermark(50_000), 48_000);
        // A source waking up with old events cannot move it back.
        w.observe(0, 12_000, 50_001);
        assert_eq!(w.watermark(50_001), 48_000);
    }

    #[test]
    fn zero_sources_follow_the_wall_clock() {
        let mut w = WatermarkTracker::new(0, 2_000, 5_000);
        assert_eq!(w.watermark(10_000), 8_000);
    }
}
