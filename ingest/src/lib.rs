//! # insite-ingest
//!
//! The ingest workers of insite: everything that puts raw trades, quotes
//! and posts on JetStream (`md.trades.<SYM>`, `md.quotes.<SYM>`,
//! `social.posts.<source>`).
//!
//! Every feed creates or checks the streams at start
//! ([`insite_sinks::streams::ensure_streams`]), then hands its messages to
//! one [`Publisher`]: every publish carries `Insite-Schema` and a stable
//! `Nats-Msg-Id`, its ack is awaited with a bounded number in flight
//! (back-pressure, not buffering), a timed-out ack makes the same message go
//! out again with the same id, and shutdown flushes what is in flight.
//!
//! ## Layout
//! - [`publisher`]: the publishing core ([`Publisher`], [`PublisherConfig`],
//!   [`IngestReport`]) and dead-lettering to `insite.dlq.ingest`.
//! - [`event`]: [`Event`] and the messages it becomes ([`OutMessage`]): one
//!   event, or a batch of one symbol's events with a content-derived id.
//! - [`batch`]: the deterministic [`Batcher`] (count and event-time slices).
//! - [`synthetic`]: a seeded market and social simulator
//!   ([`synthetic::Simulator`]) and [`run_synthetic`].
//! - [`files`]: trades/quotes CSV and posts JSONL files, paced or as fast
//!   as possible, bad lines dead-lettered ([`publish_files`]).
//! - [`source`]: live connectors behind the [`Source`] trait: a Finnhub-style
//!   trades WebSocket ([`source::finnhub`]) and an RSS/Atom news poller
//!   ([`source::rss`]), run by [`run_source`].
//! - [`metrics`]: metric names and handles.
//! - [`error`]: [`IngestError`], sorted by [`ErrorClass`].

pub mod batch;
pub mod error;
pub mod event;
pub mod files;
pub mod metrics;
mod pacing;
pub mod publisher;
pub mod source;
pub mod synthetic;

pub use batch::{BatchConfig, Batcher, EventBatch};
pub use error::{ErrorClass, IngestError};
pub use event::{Event, OutMessage};
pub use files::{publish_files, FilesConfig};
pub use publisher::{IngestReport, Publisher, PublisherConfig};
pub use source::{run_source, Source};
pub use synthetic::{run_synthetic, SyntheticConfig};

/// Connects to NATS with the configured URL(s) and credentials, as client
/// `insite-ingest` (through the one connect helper,
/// [`insite_sinks::nats::connect`]), and returns a JetStream context.
pub async fn connect(
    nats: &insite_schemas::config::NatsConfig,
) -> Result<async_nats::jetstream::Context, IngestError> {
    let client = insite_sinks::nats::connect(nats, "insite-ingest")
        .await
        .map_err(|e| IngestError::Connect {
            url: e.url.clone(),
            reason: e.source.to_string(),
        })?;
    Ok(async_nats::jetstream::new(client))
}
