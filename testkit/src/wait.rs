//! Waiting for a condition: the one polling loop of the tests.
//!
//! ```no_run
//! # async fn example(ready: impl Fn() -> bool) {
//! use std::time::Duration;
//! use insite_testkit::wait::eventually;
//!
//! eventually(Duration::from_secs(30), async || ready())
//!     .await
//!     .expect("ready within 30 s");
//! # }
//! ```

use std::time::Duration;

/// The first pause between two checks; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause between two checks.
pub const MAX_PAUSE: Duration = Duration::from_millis(100);

/// What a check of [`eventually`] returns: `true` or `Some(value)` once the
/// condition holds.
pub trait Outcome {
    /// What [`eventually`] returns once the condition holds.
    type Value;
    /// The value, if the condition holds.
    fn value(self) -> Option<Self::Value>;
}

impl Outcome for bool {
    type Value = ();

    fn value(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;

    fn value(self) -> Option<T> {
        self
    }
}

/// The condition did not hold in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the condition still did not hold after {waited:?}")]
pub struct TimedOut {
    /// How long [`eventually`] waited.
    pub waited: Duration,
}

/// Runs `check` until it returns `true` (or `Some(value)`), pausing between
/// checks (5 ms at first, doubling up to [`MAX_PAUSE`]), for at most
/// `timeout` in all; a check still running at the deadline is cut short.
///
/// # Errors
/// [`TimedOut`] if the condition did not hold within `timeout`.
pub async fn eventually<O: Outcome>(
    timeout: Duration,
    mut check: impl AsyncFnMut() -> O,
) -> Result<O::Value, TimedOut> {
    let polling = async {
        let mut pause = FIRST_PAUSE;
        loop {
            if let Some(value) = check().await.value() {
                return value;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    };
    tokio::time::timeout(timeout, polling)
        .await
        .map_err(|_| TimedOut { waited: timeout })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_and_times_out_otherwise() {
        let mut checks = 0;
        let value = eventually(Duration::from_secs(5), async || {
            checks += 1;
            (checks == 3).then_some(checks * 10)
        })
        .await;
        assert_eq!(value, Ok(30));
        let never = eventually(Duration::from_millis(50), async || false).await;
        assert_eq!(
            never,
            Err(TimedOut {
                waited: Duration::from_millis(50)
            })
        );
    }
}
