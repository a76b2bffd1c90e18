//! The event-time clock of one input stream: watermarks that are a pure
//! function of the stream's content, in stream order.
//!
//! A [`StreamClock`] is fed the event times of a stream's messages in their
//! stream order (JetStream sequence order). Its watermark *before* message
//! `n` is
//!
//! ```text
//! W(n) = max{ ts of every event and clock tick in messages 1..n-1 } - allowed_lateness
//! ```
//!
//! and every event of message `n` is stamped with `W(n)` as its timely
//! time: it is late for a window `[s, e)` iff `e <= W(n)`. Nothing here
//! reads a wall clock, so the same stream gives the same watermarks, and
//! the same late events, whether it is read live, as a backlog, replayed,
//! resumed after a crash (the clock resumes from the recorded maximum, see
//! [`StreamClock::resume`]) or read by a cluster of any size.
//!
//! Two rules keep one bad or quiet source from moving the clock wrongly:
//! - **Clock skew is bounded** ([`check_skew`]): an event stamped more than
//!   `max_skew` after the time JetStream stored its message is rejected (to
//!   the dead-letter subject) and never reaches the clock. The stored time
//!   is part of the stream, so this too is a function of the stream.
//! - **An idle stream advances through the stream**: the pipeline writes a
//!   [`insite_schemas::ClockTick`] (its last event time plus the wall time
//!   it has been quiet) into an idle stream, and the clock advances when it
//!   reads the tick back, at the tick's place in the stream.
//!
//! ```
//! use insite_operators::StreamClock;
//! let mut clock = StreamClock::new(2_000);
//! assert_eq!(clock.watermark(), i64::MIN); // nothing seen: nothing is late
//! clock.advance(10_000);
//! clock.advance(9_000); // out of order within the lateness: no effect
//! assert_eq!(clock.watermark(), 8_000);
//! // After a restart, the clock resumes where the recorded stream position left it.
//! let resumed = StreamClock::new(2_000).resume(clock.max_ts());
//! assert_eq!(resumed.watermark(), 8_000);
//! ```

use insite_schemas::TimestampMs;

/// The event-time clock of one input stream; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamClock {
    /// The largest event time read so far, if any.
    max_ts: Option<TimestampMs>,
    /// How far behind the largest event time the watermark stays.
    allowed_lateness_ms: i64,
}

impl StreamClock {
    /// A clock that has read nothing.
    pub fn new(allowed_lateness_ms: i64) -> Self {
        Self {
            max_ts: None,
            allowed_lateness_ms: allowed_lateness_ms.max(0),
        }
    }

    /// The same clock, as it stood after reading events up to `max_ts`
    /// (the recorded maximum at the stream position a run resumes from).
    pub fn resume(mut self, max_ts: Option<TimestampMs>) -> Self {
        self.max_ts = max_ts;
        self
    }

    /// Notes an event (or clock tick) with event time `ts`.
    pub fn advance(&mut self, ts: TimestampMs) {
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
    }

    /// The largest event time read so far.
    pub fn max_ts(&self) -> Option<TimestampMs> {
        self.max_ts
    }

    /// The watermark: every window ending at or before it is closed.
    /// `TimestampMs::MIN` before the first event.
    pub fn watermark(&self) -> TimestampMs {
        self.max_ts.map_or(TimestampMs::MIN, |m| {
            m.saturating_sub(self.allowed_lateness_ms)
        })
    }
}

/// An event stamped too far ahead of the time its message was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "event time {ts} ms is {ahead_ms} ms after the message was stored ({stored_ms} ms), \
     more than the allowed clock skew of {max_skew_ms} ms"
)]
pub struct ClockSkew {
    /// The event's time.
    pub ts: TimestampMs,
    /// When JetStream stored the message.
    pub stored_ms: TimestampMs,
    /// How far ahead the event was.
    pub ahead_ms: i64,
    /// The bound.
    pub max_skew_ms: i64,
}

/// Checks that an event stamped `ts`, in a message that JetStream stored at
/// `stored_ms`, is at most `max_skew_ms` ahead of it.
///
/// ```
/// use insite_operators::watermark::check_skew;
/// assert!(check_skew(1_000, 1_000, 0).is_ok());
/// assert!(check_skew(61_000, 1_000, 60_000).is_ok());
/// assert!(check_skew(61_001, 1_000, 60_000).is_err());
/// ```
pub fn check_skew(
    ts: TimestampMs,
    stored_ms: TimestampMs,
    max_skew_ms: i64,
) -> Result<(), ClockSkew> {
    let ahead_ms = ts.saturating_sub(stored_ms);
    if ahead_ms > max_skew_ms {
        Err(ClockSkew {
            ts,
            stored_ms,
            ahead_ms,
            max_skew_ms,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn never_goes_backwards() {
        let mut clock = StreamClock::new(1_000);
        clock.advance(10_000);
        assert_eq!(clock.watermark(), 9_000);
        clock.advance(5_000);
        assert_eq!(clock.watermark(), 9_000);
    }

    #[test]
    fn lateness_is_never_negative_and_saturates() {
        let mut clock = StreamClock::new(-5);
        clock.advance(TimestampMs::MIN + 1);
        assert_eq!(clock.watermark(), TimestampMs::MIN + 1);
    }

    proptest! {
        /// The watermark before each message depends only on the messages
        /// before it: reading a stream in two parts, the second resumed from
        /// the first's maximum, gives the same watermarks as reading it whole.
        #[test]
        fn resuming_anywhere_gives_the_same_watermarks(
            stream in proptest::collection::vec(0i64..1_000_000, 0..200),
            split in 0usize..200,
        ) {
            let split = split.min(stream.len());
            let mut whole = StreamClock::new(2_000);
            let mut expected = Vec::new();
            for ts in &stream {
                expected.push(whole.watermark());
                whole.advance(*ts);
            }
            let mut first = StreamClock::new(2_000);
            let mut got = Vec::new();
            for ts in &stream[..split] {
                got.push(first.watermark());
                first.advance(*ts);
            }
            let mut second = StreamClock::new(2_000).resume(first.max_ts());
            for ts in &stream[split..] {
                got.push(second.watermark());
                second.advance(*ts);
            }
            prop_assert_eq!(got, expected);
        }
    }
}
