//! The one publishing core every feed uses.
//!
//! - Every publish carries `Insite-Schema` and `Nats-Msg-Id`, and its ack is
//!   awaited.
//! - Acks are pipelined: up to [`PublisherConfig::max_in_flight`] messages
//!   are unacknowledged at once; when that many are out, [`Publisher::publish`]
//!   waits for the oldest to be settled (back-pressure, never an unbounded
//!   buffer).
//! - An ack that times out (or is lost with the connection) makes the message
//!   go out again with the same id and payload, after a short capped backoff,
//!   up to [`PublisherConfig::max_retries`] times; JetStream drops the copy if
//!   the first one did arrive.
//! - [`Publisher::flush`] waits for everything in flight; feeds call it on
//!   shutdown, so a graceful stop loses nothing that was handed over.
//!
//! Settled acks are collected while publishing and while waiting
//! ([`Publisher::idle_until`]), so the ack-latency histogram measures the
//! server, not how late the feed looked.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self};
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use insite_schemas::config::StreamsConfig;
use insite_schemas::wire::SchemaId;
use insite_schemas::{subjects, wire, TimestampMs};
use tokio::time::Instant;

use crate::error::IngestError;
use crate::event::OutMessage;
use crate::metrics::IngestMetrics;

/// The stage name of ingest's dead-letter subject (`insite.dlq.ingest`).
pub const DLQ_STAGE: &str = "ingest";

/// Dead-letter header: where the rejected input came from (`file:line`, a URL).
pub const DLQ_ORIGIN_HEADER: &str = "Insite-Origin";

/// Settings of the publishing core.
#[derive(Debug, Clone, PartialEq)]
pub struct PublisherConfig {
    /// Most messages awaiting their ack at once (at most 5,000, async-nats'
    /// own limit per context).
    pub max_in_flight: usize,
    /// How long to wait for one ack before sending again.
    pub ack_timeout: Duration,
    /// Re-sends of one message before giving up (the default's backoffs add
    /// up to some 9 s, longer than a JetStream leader election).
    pub max_retries: u32,
    /// First backoff before a re-send (doubles each time, capped at 2 s).
    pub retry_backoff: Duration,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 4_096,
            ack_timeout: Duration::from_secs(5),
            max_retries: 8,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// What an ingest run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Messages sent (first attempts).
    pub published: u64,
    /// Messages acknowledged by JetStream (duplicates included).
    pub acked: u64,
    /// Re-sends after an ack timeout.
    pub retried: u64,
    /// Acknowledgements JetStream marked duplicate (already stored).
    pub duplicates: u64,
    /// Input lines or frames rejected (and dead-lettered).
    pub rejected: u64,
    /// Dead-letter messages acknowledged.
    pub dead_lettered: u64,
    /// Events inside acknowledged messages (dead letters not counted).
    pub events: u64,
    /// Payload bytes of acknowledged messages.
    pub bytes: u64,
}

impl std::fmt::Display for IngestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "published {} messages ({} events), acked {}, duplicates {}, retried {}, rejected {}, dead-lettered {}",
            self.published,
            self.events,
            self.acked,
            self.duplicates,
            self.retried,
            self.rejected,
            self.dead_lettered
        )
    }
}

/// One message's way to its ack.
struct Settled {
    /// Ack received (and whether it was a duplicate), or why not.
    result: Result<bool, IngestError>,
    /// Re-sends it took.
    retries: u32,
    /// Events inside.
    events: u32,
    /// Payload bytes.
    bytes: usize,
    /// Whether it was a dead letter.
    dead_letter: bool,
}

/// What is needed to send a message again.
struct Resend {
    /// What every in-flight message shares.
    shared: Arc<Shared>,
    /// The subject (cheap to clone).
    subject: Subject,
    /// The headers, rebuilt for each send.
    headers: Headers,
    /// The payload (cheap to clone).
    payload: Bytes,
}

/// The headers of a message, kept compact and rebuilt for each send.
enum Headers {
    /// An event message: its schema and id.
    Event {
        /// `Insite-Schema`.
        schema: SchemaId,
        /// `Nats-Msg-Id`.
        msg_id: String,
    },
    /// Any other header set (dead letters), cloned for each send.
    Full {
        /// The headers.
        headers: HeaderMap,
        /// `Nats-Msg-Id`, for errors.
        msg_id: String,
    },
}

impl Headers {
    fn build(&self) -> HeaderMap {
        match self {
            Self::Event { schema, msg_id } => {
                let mut headers = HeaderMap::new();
                headers.insert(wire::SCHEMA_HEADER, schema.to_string().as_str());
                headers.insert(wire::MSG_ID_HEADER, msg_id.as_str());
                headers
            }
            Self::Full { headers, .. } => headers.clone(),
        }
    }

    fn msg_id(&self) -> &str {
        match self {
            Self::Event { msg_id, .. } | Self::Full { msg_id, .. } => msg_id,
        }
    }
}

/// What every in-flight message shares (one reference count per message).
struct Shared {
    /// The JetStream context.
    js: jetstream::Context,
    /// Settings.
    config: PublisherConfig,
    /// Metric handles.
    metrics: IngestMetrics,
}

/// Publishes messages with awaited, pipelined, retried acks.
pub struct Publisher {
    /// Context, settings and metrics, shared with the in-flight acks.
    shared: Arc<Shared>,
    /// Stream settings (subject prefix of the dead-letter subject).
    streams: StreamsConfig,
    /// Acks not yet settled.
    in_flight: FuturesUnordered<BoxFuture<'static, Settled>>,
    /// Counts so far.
    report: IngestReport,
    /// The first publish that failed for good; later publishes are refused.
    failed: Option<IngestError>,
    /// Metric handles.
    metrics: IngestMetrics,
    /// Most messages in flight.
    max_in_flight: usize,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("in_flight", &self.in_flight.len())
            .field("config", &self.shared.config)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// Whether a failed publish may succeed when sent again (with the same
/// `Nats-Msg-Id`, so JetStream stores it once). `StreamNotFound` is JetStream
/// answering "no responders": on one server the stream is missing, but in a
/// cluster it is also what a publish gets while the stream's leader is being
/// elected (its old leader lost), so it is retried too, within
/// `max_retries`; a stream that really is missing still fails the run.
fn retryable(kind: PublishErrorKind) -> bool {
    matches!(
        kind,
        PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::MaxAckPending
            | PublishErrorKind::StreamNotFound
    )
}

/// Whether a publish that JetStream answered with `error` may succeed when
/// sent again: a [`retryable`] kind, or "duplicate message id is in
/// process" (error code 10158). A cluster answers that to a re-send whose
/// first copy (same `Nats-Msg-Id`) the stream leader is still storing,
/// typically while it is slow under load or just elected; once that copy is
/// stored, the next re-send is acknowledged as a duplicate.
fn retryable_error(error: &async_nats::jetstream::context::PublishError) -> bool {
    retryable(error.kind())
        || std::error::Error::source(error)
            .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
            .is_some_and(|e| {
                e.error_code()
                    == async_nats::jetstream::ErrorCode::STREAM_DUPLICATE_MESSAGE_CONFLICT
            })
}

impl Publisher {
    /// A publisher on `js` for the feed named `feed` (a metrics label).
    pub fn new(
        js: jetstream::Context,
        streams: StreamsConfig,
        config: PublisherConfig,
        feed: &str,
    ) -> Self {
        let config = PublisherConfig {
            max_in_flight: config.max_in_flight.clamp(1, 5_000),
            ..config
        };
        let metrics = IngestMetrics::new(feed);
        Self {
            max_in_flight: config.max_in_flight,
            shared: Arc::new(Shared {
                js,
                config,
                metrics: metrics.clone(),
            }),
            streams,
            in_flight: FuturesUnordered::new(),
            report: IngestReport::default(),
            failed: None,
            metrics,
        }
    }

    /// The counts so far (settled acks only).
    pub fn report(&self) -> IngestReport {
        self.report
    }

    /// Messages sent and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Counts one rejected input line or frame (its dead letter is sent by
    /// [`Publisher::dead_letter`]).
    pub fn count_rejected(&mut self) {
        self.report.rejected += 1;
        self.metrics.rejected.increment(1);
    }

    /// Publishes one message, waiting first while `max_in_flight` are out.
    ///
    /// Returns an error once any message has failed for good (after all its
    /// retries); everything already sent is still settled by [`flush`](Self::flush).
    pub async fn publish(&mut self, message: OutMessage) -> Result<(), IngestError> {
        let headers = Headers::Event {
            schema: message.schema,
            msg_id: message.msg_id,
        };
        self.send(
            message.subject,
            headers,
            message.payload,
            (message.events, message.oldest_ts),
            false,
        )
        .await
    }

    /// Dead-letters rejected input: `raw` as the payload on
    /// `insite.dlq.ingest`, the reason, its kind and origin in headers, and a
    /// `Nats-Msg-Id` from the origin and content, so a replayed file does
    /// not dead-letter the same line twice.
    pub async fn dead_letter(
        &mut self,
        raw: Bytes,
        reason: &str,
        kind: &str,
        origin: &str,
    ) -> Result<(), IngestError> {
        let subject = self.streams.subject(&subjects::dlq(DLQ_STAGE));
        let msg_id = format!(
            "dlq:{DLQ_STAGE}:{origin}:{:032x}",
            xxhash_rust::xxh3::xxh3_128(&raw)
        );
        let reason = one_line(reason);
        let mut headers = HeaderMap::new();
        headers.insert(wire::MSG_ID_HEADER, msg_id.as_str());
        headers.insert(wire::DLQ_REASON_HEADER, reason.as_str());
        headers.insert(wire::DLQ_KIND_HEADER, kind);
        headers.insert(wire::DLQ_STAGE_HEADER, DLQ_STAGE);
        headers.insert(DLQ_ORIGIN_HEADER, one_line(origin).as_str());
        self.send(
            subject,
            Headers::Full { headers, msg_id },
            raw,
            (0, None),
            true,
        )
        .await
    }

    async fn send(
        &mut self,
        subject: String,
        headers: Headers,
        payload: Bytes,
        (events, oldest_ts): (u32, Option<TimestampMs>),
        dead_letter: bool,
    ) -> Result<(), IngestError> {
        self.reap_ready();
        while self.in_flight.len() >= self.max_in_flight {
            self.settle_one().await;
        }
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        let resend = Resend {
            shared: self.shared.clone(),
            subject: Subject::from(subject),
            headers,
            payload,
        };
        let started = Instant::now();
        let first = resend.send().await;
        self.report.published += 1;
        self.metrics.published.increment(1);
        let bytes = resend.payload.len();
        self.in_flight.push(
            async move {
                let (result, retries) = confirm(&resend, first).await;
                if result.is_ok() {
                    let metrics = &resend.shared.metrics;
                    metrics.ack_seconds.record(started.elapsed().as_secs_f64());
                    if let Some(ts) = oldest_ts {
                        let age_ms = insite_schemas::time::now_ms().saturating_sub(ts).max(0);
                        metrics.event_to_ack_seconds.record(age_ms as f64 / 1_000.0);
                    }
                }
                Settled {
                    result,
                    retries,
                    events,
                    bytes,
                    dead_letter,
                }
            }
            .boxed(),
        );
        Ok(())
    }

    /// Settles every ack that is already in, without waiting.
    fn reap_ready(&mut self) {
        while let Some(Some(settled)) = self.in_flight.next().now_or_never() {
            self.tally(settled);
        }
    }

    async fn settle_one(&mut self) {
        if let Some(settled) = self.in_flight.next().await {
            self.tally(settled);
        }
    }

    fn tally(&mut self, settled: Settled) {
        self.report.retried += u64::from(settled.retries);
        match settled.result {
            Ok(duplicate) => {
                self.report.acked += 1;
                self.metrics.acked.increment(1);
                if duplicate {
                    self.report.duplicates += 1;
                    self.metrics.duplicates.increment(1);
                }
                if settled.dead_letter {
                    self.report.dead_lettered += 1;
                } else {
                    self.report.events += u64::from(settled.events);
                    self.report.bytes += settled.bytes as u64;
                    self.metrics.events.increment(u64::from(settled.events));
                }
            }
            Err(error) => {
                tracing::error!(%error, "publish failed for good");
                if self.failed.is_none() {
                    self.failed = Some(error);
                }
            }
        }
    }

    /// Receives the next item from `rx`, settling acks while it waits;
    /// `None` once `rx` is closed and empty.
    pub async fn recv_settling<T>(&mut self, rx: &mut tokio::sync::mpsc::Receiver<T>) -> Option<T> {
        loop {
            if self.in_flight.is_empty() {
                return rx.recv().await;
            }
            tokio::select! {
                biased;
                item = rx.recv() => return item,
                settled = self.in_flight.next() => {
                    if let Some(settled) = settled {
                        self.tally(settled);
                    }
                }
            }
        }
    }

    /// Waits until `deadline`, settling acks meanwhile (feeds that pace
    /// themselves call this instead of sleeping).
    pub async fn idle_until(&mut self, deadline: Instant) {
        loop {
            if self.in_flight.is_empty() {
                tokio::time::sleep_until(deadline).await;
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                settled = self.in_flight.next() => {
                    if let Some(settled) = settled {
                        self.tally(settled);
                    }
                }
            }
        }
    }

    /// Waits for every message in flight to be settled; returns the first
    /// failure, if any.
    pub async fn flush(&mut self) -> Result<IngestReport, IngestError> {
        while !self.in_flight.is_empty() {
            self.settle_one().await;
        }
        match self.failed.take() {
            Some(error) => Err(error),
            None => Ok(self.report),
        }
    }
}

impl Resend {
    async fn send(&self) -> Result<PublishAckFuture, async_nats::jetstream::context::PublishError> {
        self.shared
            .js
            .publish_with_headers(
                self.subject.clone(),
                self.headers.build(),
                self.payload.clone(),
            )
            .await
    }

    fn failure(&self, attempts: u32, reason: String) -> IngestError {
        IngestError::Publish {
            subject: self.subject.to_string(),
            msg_id: self.headers.msg_id().to_owned(),
            attempts,
            reason,
        }
    }
}

/// Awaits one message's ack, re-sending it with the same id on timeouts.
/// Returns the ack's duplicate flag (or the final error) and the re-sends.
async fn confirm(
    resend: &Resend,
    first: Result<PublishAckFuture, async_nats::jetstream::context::PublishError>,
) -> (Result<bool, IngestError>, u32) {
    let config = &resend.shared.config;
    let metrics = &resend.shared.metrics;
    let mut attempt = first;
    let mut retries = 0u32;
    loop {
        let reason = match attempt {
            Ok(ack) => match tokio::time::timeout(config.ack_timeout, ack).await {
                Ok(Ok(ack)) => return (Ok(ack.duplicate), retries),
                Ok(Err(error)) if retryable_error(&error) => error.to_string(),
                Ok(Err(error)) => {
                    return (Err(resend.failure(retries + 1, error.to_string())), retries)
                }
                Err(_) => format!("no ack within {:?}", config.ack_timeout),
            },
            Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                return (Err(resend.failure(retries + 1, error.to_string())), retries)
            }
            Err(error) => error.to_string(),
        };
        if retries >= config.max_retries {
            return (Err(resend.failure(retries + 1, reason)), retries);
        }
        let backoff = config
            .retry_backoff
            .saturating_mul(1 << retries.min(5))
            .min(Duration::from_secs(2));
        tracing::warn!(subject = %resend.subject, msg_id = %resend.headers.msg_id(), %reason, ?backoff, "re-sending");
        tokio::time::sleep(backoff).await;
        retries += 1;
        metrics.retried.increment(1);
        attempt = resend.send().await;
    }
}

/// `text` on one line and at most 512 bytes, for a header.
fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > 512 {
        let mut cut = 509;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_is_one_bounded_line() {
        assert_eq!(one_line("a\nb\tc"), "a b c");
        let long = "é".repeat(400);
        let line = one_line(&long);
        assert!(line.len() <= 512 && line.ends_with("..."));
    }

    #[test]
    fn only_transient_errors_are_retried() {
        assert!(retryable(PublishErrorKind::TimedOut));
        assert!(retryable(PublishErrorKind::BrokenPipe));
        // No responders: a cluster electing the stream's leader.
        assert!(retryable(PublishErrorKind::StreamNotFound));
        assert!(!retryable(PublishErrorKind::MaxPayloadExceeded));
    }

    /// A JetStream error answer, as the server sends it.
    fn answered(json: &str) -> async_nats::jetstream::context::PublishError {
        let error: async_nats::jetstream::Error = serde_json::from_str(json).unwrap();
        async_nats::jetstream::context::PublishError::with_source(PublishErrorKind::Other, error)
    }

    #[test]
    fn a_resend_whose_first_copy_is_in_process_is_retried() {
        // What a cluster's stream leader answered a re-send under load (the
        // fault suite's feed failed for good on it).
        assert!(retryable_error(&answered(
            r#"{"code":409,"err_code":10158,"description":"duplicate message id is in process"}"#
        )));
        // Other refusals still fail the publish.
        assert!(!retryable_error(&answered(
            r#"{"code":400,"err_code":10054,"description":"maximum messages exceeded"}"#
        )));
    }
}
