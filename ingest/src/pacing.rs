//! Pacing a feed in wall time by its event time.

use std::time::Duration;

use insite_schemas::TimestampMs;
use tokio::time::Instant;

/// Maps event time to the wall-clock instant an event is due, at `speed`
/// times the original pace (`None`: as fast as possible).
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    /// How many event-time milliseconds pass per wall millisecond.
    speed: Option<f64>,
    /// The first event's time and when it went out.
    origin: Option<(TimestampMs, Instant)>,
}

impl Pacer {
    /// A pacer at `speed` (`None` or a non-positive value: no pacing).
    pub(crate) fn new(speed: Option<f64>) -> Self {
        Self {
            speed: speed.filter(|s| s.is_finite() && *s > 0.0),
            origin: None,
        }
    }

    /// When the event at `ts` is due, if it must wait at all.
    pub(crate) fn due(&mut self, ts: TimestampMs) -> Option<Instant> {
        let speed = self.speed?;
        let (ts0, t0) = *self.origin.get_or_insert_with(|| (ts, Instant::now()));
        let offset_ms = (ts - ts0).max(0) as f64 / speed;
        let due = t0 + Duration::from_secs_f64(offset_ms / 1_000.0);
        (due > Instant::now() + Duration::from_millis(1)).then_some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_by_event_time_and_speed() {
        let mut p = Pacer::new(Some(2.0));
        assert!(p.due(1_000).is_none());
        let start = Instant::now();
        let due = p.due(3_000).unwrap();
        assert_eq!(due - start, Duration::from_secs(1));
        let mut fast = Pacer::new(None);
        assert!(fast.due(0).is_none() && fast.due(1_000_000).is_none());
    }
}
