//! Live connectors behind one [`Source`] trait, and [`run_source`], which
//! publishes what a source produces.
//!
//! A source connects, reads, turns what it reads into [`Event`]s (or
//! [`SourceItem::Reject`]s for frames it cannot use), and reconnects with
//! [`Backoff`] when the connection drops; it never panics on bad input and
//! only returns when `shutdown` fires or it cannot go on at all.
//!
//! - [`finnhub`]: a trades WebSocket speaking Finnhub's protocol.
//! - [`rss`]: an RSS/Atom news feed polled over HTTP.

pub mod finnhub;
pub mod rss;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use insite_schemas::config::StreamsConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::IngestError;
use crate::event::{self, Event};
use crate::publisher::{IngestReport, Publisher, PublisherConfig};

/// What a source hands over.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceItem {
    /// A good event.
    Event(Event),
    /// Input the source could not use, for the dead-letter subject.
    Reject {
        /// The raw input (frame, entry).
        raw: Bytes,
        /// What is wrong.
        reason: String,
        /// A short code (`bad_frame`, `bad_entry`, ...).
        kind: &'static str,
        /// Where it came from (URL).
        origin: String,
    },
}

/// Counters a source keeps while it runs (shared with whoever watches it).
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Connections made (the first included).
    pub connections: AtomicU64,
    /// Frames or documents received.
    pub frames: AtomicU64,
    /// Events produced.
    pub events: AtomicU64,
    /// Frames or entries rejected.
    pub rejected: AtomicU64,
}

impl SourceStats {
    /// A counter's current value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A live feed.
pub trait Source: Send + 'static {
    /// A short name for logs and metrics (`ws`, `rss`).
    fn name(&self) -> &'static str;

    /// Runs until `shutdown` fires (or the receiver of `out` is gone),
    /// reconnecting on failures. Returns an error only when going on is
    /// pointless (bad settings).
    fn run(
        self,
        out: mpsc::Sender<SourceItem>,
        stats: Arc<SourceStats>,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<(), IngestError>> + Send;
}

/// Exponential backoff between reconnects: `initial`, doubled per failure
/// up to `max`, with up to 25% random jitter so that many clients do not
/// reconnect in lockstep.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// Failures since the last success.
    failures: u32,
}

impl Backoff {
    /// A backoff from `initial` to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            failures: 0,
        }
    }

    /// The delay before the next attempt, counting one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let jitter = rand::random::<f64>() * 0.25;
        base.mul_f64(1.0 - jitter)
    }

    /// Forgets past failures (after a connection that worked).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Runs `source`, publishing every event it produces on its own (with its
/// stable id) and dead-lettering its rejects, until `shutdown` fires; then
/// flushes what is in flight.
pub async fn run_source<S: Source>(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    source: S,
    publisher_config: PublisherConfig,
    stats: Arc<SourceStats>,
    shutdown: CancellationToken,
) -> Result<IngestReport, IngestError> {
    insite_sinks::streams::ensure_streams(js, streams).await?;
    let name = source.name();
    let mut publisher = Publisher::new(js.clone(), streams.clone(), publisher_config, name);
    let (tx, mut rx) = mpsc::channel(1_024);
    let task = tokio::spawn(source.run(tx, stats, shutdown.clone()));
    let mut result = Ok(());
    while let Some(item) = rx.recv().await {
        let sent = match item {
            SourceItem::Event(event) => match event::single(&event, streams) {
                Ok(message) => publisher.publish(message).await,
                Err(e) => Err(e.into()),
            },
            SourceItem::Reject {
                raw,
                reason,
                kind,
                origin,
            } => {
                publisher.count_rejected();
                publisher.dead_letter(raw, &reason, kind, &origin).await
            }
        };
        if let Err(e) = sent {
            result = Err(e);
            shutdown.cancel();
            break;
        }
    }
    let source_result = match task.await {
        Ok(r) => r,
        Err(e) => Err(IngestError::Source {
            source_name: name.to_owned(),
            reason: format!("task ended abnormally: {e}"),
        }),
    };
    let flushed = publisher.flush().await;
    result?;
    source_result?;
    let report = flushed?;
    tracing::info!(source = name, %report, "source stopped");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = b.next_delay();
        assert!(first <= Duration::from_millis(100) && first >= Duration::from_millis(75));
        let mut last = first;
        for _ in 0..10 {
            last = b.next_delay();
        }
        assert!(last <= Duration::from_secs(1) && last >= Duration::from_millis(750));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
