//! Window arithmetic: epoch-aligned tumbling and sliding (hopping) windows,
//! and the lateness rule.
//!
//! A window `[s, e)` holds the events with `s <= ts < e`. Tumbling windows of
//! interval `I` start at multiples of `I` (since the UTC epoch); sliding
//! windows of size `S` and slide `L` (`S` a multiple of `L`) start at
//! multiples of `L`, so an event belongs to `S / L` of them.
//!
//! **Lateness.** A record's timely time `t` is the watermark of its input
//! when it was read. The record is *late for a window* iff that window's end
//! `e <= t` (the window closed when the frontier reached `e`). A record late
//! for some of its windows still feeds those it is on time for; a record
//! late for at least one window yields exactly one `LateEvent`.
//!
//! ```
//! use insite_operators::window::WindowSpec;
//! use insite_schemas::Interval;
//! let minute = WindowSpec::tumbling(Interval::MINUTE);
//! assert_eq!(minute.starts(61_000).collect::<Vec<_>>(), [60_000]);
//! let hop = WindowSpec::sliding(Interval::from_seconds(180).unwrap(), Interval::MINUTE);
//! assert_eq!(hop.starts(61_000).collect::<Vec<_>>(), [60_000, 0, -60_000]);
//! assert_eq!(hop.earliest_end(61_000), 120_000);
//! assert!(minute.is_late(61_000, 120_000) && !minute.is_late(61_000, 119_999));
//! ```

use insite_schemas::{Interval, TimestampMs};

/// One family of windows: tumbling when `size == slide`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowSpec {
    /// Window length.
    pub size: Interval,
    /// Distance between window starts.
    pub slide: Interval,
}

impl WindowSpec {
    /// Tumbling windows of `interval`.
    pub fn tumbling(interval: Interval) -> Self {
        Self {
            size: interval,
            slide: interval,
        }
    }

    /// Sliding windows of `size`, starting every `slide` (`size` should be a
    /// multiple of `slide`; `OperatorsConfig::validate` checks it).
    pub fn sliding(size: Interval, slide: Interval) -> Self {
        Self { size, slide }
    }

    /// Starts of the windows holding `ts`, latest first.
    pub fn starts(self, ts: TimestampMs) -> impl Iterator<Item = TimestampMs> {
        let last = self.slide.window_start(ts);
        let slide = self.slide.millis();
        let lowest = ts - self.size.millis();
        (0..)
            .map(move |k| last - k * slide)
            .take_while(move |start| *start > lowest)
    }

    /// End of the window starting at `start`.
    pub fn end(self, start: TimestampMs) -> TimestampMs {
        start + self.size.millis()
    }

    /// The earliest end of the windows holding `ts` (the first to close).
    pub fn earliest_end(self, ts: TimestampMs) -> TimestampMs {
        self.slide.window_start(ts) + self.slide.millis()
    }

    /// The latest end of the windows holding `ts` (the last to close).
    pub fn latest_end(self, ts: TimestampMs) -> TimestampMs {
        self.slide.window_start(ts) + self.size.millis()
    }

    /// Whether an event at `ts` read at watermark `watermark` is late for at
    /// least one of these windows.
    pub fn is_late(self, ts: TimestampMs, watermark: TimestampMs) -> bool {
        self.earliest_end(ts) <= watermark
    }
}

/// Whether an event at `ts` read at `watermark` is late for at least one
/// window of `specs`.
pub fn is_late_for_any(specs: &[WindowSpec], ts: TimestampMs, watermark: TimestampMs) -> bool {
    specs.iter().any(|spec| spec.is_late(ts, watermark))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_windows_cover_exactly_their_events() {
        let spec = WindowSpec::sliding(Interval::FIVE_MINUTES, Interval::MINUTE);
        for ts in [-1, 0, 59_999, 60_000, 299_999, 300_000, 1_700_000_123_456] {
            let starts: Vec<_> = spec.starts(ts).collect();
            assert_eq!(starts.len(), 5, "{ts}");
            for s in &starts {
                assert!(*s <= ts && ts < spec.end(*s));
                assert_eq!(s.rem_euclid(60_000), 0);
            }
            assert_eq!(
                spec.earliest_end(ts),
                starts.iter().map(|s| spec.end(*s)).min().unwrap()
            );
            assert_eq!(
                spec.latest_end(ts),
                starts.iter().map(|s| spec.end(*s)).max().unwrap()
            );
        }
    }
}
