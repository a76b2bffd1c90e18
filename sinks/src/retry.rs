//! The one retry policy of insite's ClickHouse writers: capped exponential
//! [`Backoff`], and [`retry_forever`], which every writer retries through (a
//! table flush, the migrations, recording the durable frontier).
//!
//! ## The policy
//!
//! An outage is back-pressure: writers stop taking input while they retry,
//! so memory stays bounded; nothing exits silently; non-retryable errors
//! stop the component with the error.
//!
//! - A *retryable* error (the server is down, slow, overloaded or silent
//!   past its timeout: [`crate::clickhouse::classify`]) is retried with
//!   capped exponential backoff, forever: there is no attempt limit, so an
//!   outage of any length ends in the write succeeding, not in a writer
//!   giving up and its component exiting. While a writer retries, its caller
//!   awaits it and takes no more input: buffers stay at their bound
//!   ([`crate::clickhouse::TableWriter::is_full`]) and upstream (JetStream)
//!   holds the rest, unacknowledged.
//! - Every failed attempt is logged at `warn` with the operation, the
//!   attempt count and the error, and counted in
//!   `insite_clickhouse_retries_total{op}`: a long outage is loud, never
//!   silent.
//! - A *non-retryable* error (the server refused the statement or its rows,
//!   or the client failed) is returned at once: retrying cannot fix it, and
//!   the component stops with that error.
//!
//! The future [`retry_forever`] returns may be dropped at any await (to shut
//! down): the operation is then simply not retried again.
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

use std::error::Error as StdError;
use std::future::Future;
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

/// A result [`retry_forever`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retried<T> {
    /// What the successful attempt returned.
    pub value: T,
    /// Failed attempts before it.
    pub retries: u32,
}

/// Runs `attempt` until it succeeds, retrying the errors `retryable`
/// accepts forever with `backoff` between attempts (each logged at `warn`
/// and counted in `insite_clickhouse_retries_total{op}`), and returning any
/// other error at once. See the [module docs](self) for the policy.
///
/// `op` names the operation in logs and the metric: the table a flush
/// writes, `migrate`, `progress`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use insite_sinks::retry::{retry_forever, Backoff};
/// let mut calls = 0;
/// let done = retry_forever(
///     "example",
///     Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
///     |e: &std::io::Error| e.kind() == std::io::ErrorKind::TimedOut,
///     || {
///         calls += 1;
///         let failing = calls < 3;
///         async move {
///             if failing {
///                 Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
///             } else {
///                 Ok("written")
///             }
///         }
///     },
/// )
/// .await
/// .unwrap();
/// assert_eq!((done.value, done.retries), ("written", 2));
/// # });
/// ```
pub async fn retry_forever<T, E, F, Fut>(
    op: &str,
    mut backoff: Backoff,
    retryable: impl Fn(&E) -> bool,
    mut attempt: F,
) -> Result<Retried<T>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: StdError + 'static,
{
    let mut retries = 0u32;
    loop {
        match attempt().await {
            Ok(value) => {
                if retries > 0 {
                    tracing::info!(op, retries, "ClickHouse call succeeded after retrying");
                }
                return Ok(Retried { value, retries });
            }
            Err(error) if !retryable(&error) => return Err(error),
            Err(error) => {
                retries = retries.saturating_add(1);
                metrics::counter!("insite_clickhouse_retries_total", "op" => op.to_owned())
                    .increment(1);
                tracing::warn!(
                    op,
                    attempt = retries,
                    error = %error_chain(&error),
                    retry_in_ms = u64::try_from(backoff.delay().as_millis()).unwrap_or(u64::MAX),
                    "ClickHouse call failed; retrying"
                );
                backoff.wait().await;
            }
        }
    }
}

/// `error` with its sources, `outer: inner: innermost`, as
/// [`retry_forever`] logs it (the client's network error alone says only
/// "client error (Connect)"). A source whose text its parent already ends
/// with is not repeated.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::time::Duration;

    fn quick() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(2))
    }

    #[tokio::test]
    async fn retries_retryable_errors_until_success() {
        let mut calls = 0u32;
        let done = retry_forever(
            "test",
            quick(),
            |e: &io::Error| e.kind() == io::ErrorKind::ConnectionRefused,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n <= 20 {
                        Err(io::Error::from(io::ErrorKind::ConnectionRefused))
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(
            done,
            Retried {
                value: 21,
                retries: 20
            }
        );
    }

    #[tokio::test]
    async fn returns_other_errors_at_once() {
        let mut calls = 0u32;
        let err = retry_forever(
            "test",
            quick(),
            |e: &io::Error| e.kind() == io::ErrorKind::ConnectionRefused,
            || {
                calls += 1;
                async { Err::<(), _>(io::Error::from(io::ErrorKind::InvalidData)) }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(calls, 1);
    }

    #[test]
    fn chains_sources() {
        let inner = io::Error::new(io::ErrorKind::TimedOut, "sent nothing for 300 ms");
        let outer = clickhouse::error::Error::Network(Box::new(inner));
        assert_eq!(
            error_chain(&outer),
            "network error: sent nothing for 300 ms"
        );
    }
}
