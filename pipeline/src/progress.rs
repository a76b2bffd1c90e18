//! Which input messages may be acknowledged.
//!
//! A JetStream message is acknowledged only once every final result that
//! depends on it is durable. Each message is held with a *deadline*: the
//! event-time watermark at which the last window any of its events belongs
//! to closes. The sinks report a *durable watermark* `D`: every result the
//! dataflow produced for watermarks up to `D` is confirmed written to
//! ClickHouse. Every message whose deadline is at most `D` is then released
//! for acknowledgement; the others stay held, so a crash makes JetStream
//! redeliver exactly the messages whose results are not yet durable.
//!
//! ```
//! use insite_pipeline::progress::AckTracker;
//! let mut held = AckTracker::default();
//! held.hold(60_000, "a");
//! held.hold(120_000, "b");
//! assert_eq!(held.release_through(60_000), vec!["a"]);
//! assert_eq!(held.len(), 1);
//! assert_eq!(held.earliest_deadline(), Some(120_000));
//! ```

use std::collections::BTreeMap;

use insite_schemas::{Interval, TimestampMs};

/// Messages held until their results are durable, keyed by deadline.
#[derive(Debug)]
pub struct AckTracker<M> {
    /// Held messages by deadline (event-time watermark, ms).
    by_deadline: BTreeMap<TimestampMs, Vec<M>>,
    /// Number of held messages.
    held: usize,
    /// The highest durable watermark seen (release is monotonic).
    durable: TimestampMs,
}

impl<M> Default for AckTracker<M> {
    fn default() -> Self {
        Self {
            by_deadline: BTreeMap::new(),
            held: 0,
            durable: TimestampMs::MIN,
        }
    }
}

impl<M> AckTracker<M> {
    /// Holds `message` until the durable watermark reaches `deadline`. A
    /// message whose deadline is already durable is released on the next
    /// [`Self::release_through`] call.
    pub fn hold(&mut self, deadline: TimestampMs, message: M) {
        self.by_deadline.entry(deadline).or_default().push(message);
        self.held += 1;
    }

    /// Releases every message whose deadline is at most `durable`, oldest
    /// deadline first.
    pub fn release_through(&mut self, durable: TimestampMs) -> Vec<M> {
        self.durable = self.durable.max(durable);
        let later = match self.durable.checked_add(1) {
            Some(next) => self.by_deadline.split_off(&next),
            None => BTreeMap::new(),
        };
        let released: Vec<M> = std::mem::replace(&mut self.by_deadline, later)
            .into_values()
            .flatten()
            .collect();
        self.held -= released.len();
        released
    }

    /// Number of held messages.
    pub fn len(&self) -> usize {
        self.held
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// The earliest deadline still held.
    pub fn earliest_deadline(&self) -> Option<TimestampMs> {
        self.by_deadline.keys().next().copied()
    }

    /// The highest durable watermark released through so far.
    pub fn durable(&self) -> TimestampMs {
        self.durable
    }
}

/// The windows an event contributes to, as far as holding its message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpans {
    /// Tumbling intervals.
    tumbling: Vec<Interval>,
    /// Sliding windows as (size, slide).
    sliding: Vec<(Interval, Interval)>,
}

impl WindowSpans {
    /// Spans of the given tumbling and sliding windows.
    pub fn new(tumbling: Vec<Interval>, sliding: Vec<(Interval, Interval)>) -> Self {
        Self { tumbling, sliding }
    }

    /// The end of the last window containing `ts`: the watermark at which
    /// every window the event belongs to has closed.
    ///
    /// ```
    /// use insite_pipeline::progress::WindowSpans;
    /// use insite_schemas::Interval;
    /// let spans = WindowSpans::new(vec![Interval::SECOND, Interval::MINUTE], vec![]);
    /// assert_eq!(spans.deadline(61_500), 120_000);
    /// ```
    pub fn deadline(&self, ts: TimestampMs) -> TimestampMs {
        let tumbling = self
            .tumbling
            .iter()
            .map(|iv| iv.window_end(iv.window_start(ts)));
        // The last sliding window holding ts starts at the last slide
        // boundary at or before ts.
        let sliding = self
            .sliding
            .iter()
            .map(|(size, slide)| slide.window_start(ts) + size.millis());
        tumbling.chain(sliding).max().unwrap_or(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_in_deadline_order_and_never_goes_back() {
        let mut t = AckTracker::default();
        for (deadline, id) in [(30, 3), (10, 1), (20, 2), (10, 11)] {
            t.hold(deadline, id);
        }
        assert_eq!(t.release_through(9), Vec::<i32>::new());
        let mut first = t.release_through(20);
        first.sort();
        assert_eq!(first, vec![1, 2, 11]);
        // A lower durable watermark later does not un-release or stall.
        assert!(t.release_through(5).is_empty());
        t.hold(15, 4);
        assert_eq!(t.release_through(5), vec![4], "deadline already durable");
        assert_eq!(t.release_through(i64::MAX), vec![3]);
        assert!(t.is_empty());
    }

    #[test]
    fn deadline_covers_the_longest_window() {
        let spans = WindowSpans::new(
            vec![Interval::SECOND, Interval::MINUTE, Interval::FIVE_MINUTES],
            vec![(Interval::FIVE_MINUTES, Interval::MINUTE)],
        );
        // ts in [300_000, 360_000): the 5m tumbling window ends at 600_000,
        // the last sliding 5m window containing it starts at 300_000 and
        // ends at 600_000 too.
        assert_eq!(spans.deadline(301_000), 600_000);
        // Just before a 5m boundary, the sliding window starting at the
        // last minute boundary (240_000) ends at 540_000 < 300_000 + ...
        assert_eq!(spans.deadline(299_999), 540_000);
    }
}
