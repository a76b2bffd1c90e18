//! Capped exponential backoff: the one retry delay of insite's writers (a
//! ClickHouse flush, recording the durable frontier, a dead letter).
//!
//! ```
//! use std::time::Duration;
//! use insite_sinks::retry::Backoff;
//! let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(300));
//! assert_eq!(backoff.delay(), Duration::from_millis(100));
//! backoff.advance();
//! assert_eq!(backoff.delay(), Duration::from_millis(200));
//! backoff.advance();
//! assert_eq!(backoff.delay(), Duration::from_millis(300));
//! ```

use std::time::Duration;

/// A retry delay that doubles after every failed attempt, up to a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the next attempt.
    delay: Duration,
    /// The longest delay.
    max: Duration,
}

impl Backoff {
    /// Waits `initial` before the first retry, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            delay: initial,
            max,
        }
    }

    /// 100 ms doubling up to 5 s: for a server that should come back soon.
    pub fn standard() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// The delay the next [`Self::wait`] sleeps.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Doubles the delay, up to the cap, without sleeping.
    pub fn advance(&mut self) {
        self.delay = (self.delay * 2).min(self.max);
    }

    /// Sleeps the current delay, then doubles it (up to the cap).
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.delay).await;
        self.advance();
    }
}
