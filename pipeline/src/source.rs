//! JetStream input: durable pull consumers on MARKET and SOCIAL, decoding,
//! validation and dead-lettering.
//!
//! Every message is either handed on as an [`InputMessage`] (events plus the
//! handle to acknowledge it later, once its results are durable) or, when it
//! cannot be used, published to `insite.dlq.pipeline` with the reason in its
//! headers and only then acknowledged: bad input is never lost and never
//! stops the pipeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use futures::StreamExt;
use insite_schemas::config::StreamsConfig;
use insite_schemas::subjects::{self, Subject};
use insite_schemas::wire::{self, decode_inbound};
use insite_schemas::{DecodeError, Inbound, InvalidValue};
use insite_sinks::retry::Backoff;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The stage name in dead-letter subjects and headers.
pub const STAGE: &str = "pipeline";

/// Which input stream a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputSource {
    /// MARKET: trades and quotes.
    Market,
    /// SOCIAL: posts.
    Social,
}

impl InputSource {
    /// Its index among the inputs (MARKET 0, SOCIAL 1).
    pub fn index(self) -> usize {
        match self {
            Self::Market => 0,
            Self::Social => 1,
        }
    }

    /// The name of its stream.
    pub fn stream(self, streams: &StreamsConfig) -> &str {
        match self {
            Self::Market => &streams.market,
            Self::Social => &streams.social,
        }
    }

    /// A lower-case name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Market => "market",
            Self::Social => "social",
        }
    }
}

/// Consumer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Durable consumer name on MARKET.
    pub market_durable: String,
    /// Durable consumer name on SOCIAL.
    pub social_durable: String,
    /// How long JetStream waits for an ack before redelivering, in seconds.
    /// Messages are held until the longest window they touch closes and is
    /// durable, so this must exceed the longest window plus the lateness.
    pub ack_wait_s: u64,
    /// Most unacknowledged messages per consumer.
    pub max_ack_pending: i64,
    /// Messages requested per pull.
    pub pull_batch: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            market_durable: "insite-pipeline-market".into(),
            social_durable: "insite-pipeline-social".into(),
            ack_wait_s: 30 * 60,
            max_ack_pending: 1_000_000,
            pull_batch: 1_000,
        }
    }
}

/// A decoded input message and the handle to acknowledge it.
pub struct InputMessage {
    /// The stream it came from.
    pub source: InputSource,
    /// Its stream sequence.
    pub stream_seq: u64,
    /// Its events (one, or a batch).
    pub events: Inbound,
    /// Messages still pending for the consumer after this one (0: the
    /// consumer has caught up with the stream).
    pub pending: u64,
    /// Acknowledges it; call only once its results are durable.
    pub acker: jetstream::message::Acker,
}

impl std::fmt::Debug for InputMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputMessage")
            .field("source", &self.source)
            .field("stream_seq", &self.stream_seq)
            .field("events", &self.events.len())
            .finish()
    }
}

/// Input errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// JetStream could not be reached or refused a request (retryable).
    #[error("JetStream {what}: {source}")]
    JetStream {
        /// What was being done.
        what: &'static str,
        /// The client's error.
        #[source]
        source: async_nats::Error,
    },
}

/// How a process binds to its durable consumer at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerStart {
    /// Recreate the durable consumer so that delivery restarts just above
    /// its ack floor: every message not yet acknowledged by an earlier run
    /// (which may have crashed) is delivered again at once, rather than
    /// after `ack_wait`. Messages above the floor that were acknowledged are
    /// delivered again too; their results are already durable, and the
    /// pipeline recognises them as such (see `crate::resume`). Used by the
    /// first process of a pipeline, before the others start.
    Resume,
    /// Bind to the consumer as it is (creating it if missing): the other
    /// processes of a cluster, which share the first one's consumer.
    Join,
}

impl ConsumerConfig {
    /// The durable consumer's name on `source`'s stream.
    fn durable(&self, source: InputSource) -> &str {
        match source {
            InputSource::Market => &self.market_durable,
            InputSource::Social => &self.social_durable,
        }
    }
}

/// Wraps a JetStream client error, saying what was being done.
fn js_error<E>(what: &'static str) -> impl FnOnce(E) -> SourceError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |source| SourceError::JetStream {
        what,
        source: Box::new(source),
    }
}

/// Creates, resumes or joins the durable pull consumer of `source`.
pub async fn consumer(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    config: &ConsumerConfig,
    source: InputSource,
    start: ConsumerStart,
) -> Result<jetstream::consumer::PullConsumer, SourceError> {
    let durable = config.durable(source);
    let stream = js
        .get_stream(source.stream(streams))
        .await
        .map_err(js_error("get stream"))?;
    let mut deliver_policy = DeliverPolicy::All;
    if let Ok(mut existing) = stream.get_consumer::<pull::Config>(durable).await {
        match start {
            ConsumerStart::Join => return Ok(existing),
            ConsumerStart::Resume => {
                let info = existing.info().await.map_err(js_error("consumer info"))?;
                let floor = info.ack_floor.stream_sequence;
                tracing::info!(
                    source = source.name(),
                    durable,
                    ack_floor = floor,
                    unacknowledged = info.num_ack_pending,
                    "resuming the durable consumer above its ack floor"
                );
                stream
                    .delete_consumer(durable)
                    .await
                    .map_err(js_error("delete consumer"))?;
                if floor > 0 {
                    deliver_policy = DeliverPolicy::ByStartSequence {
                        start_sequence: floor + 1,
                    };
                }
            }
        }
    }
    stream
        .create_consumer(pull::Config {
            durable_name: Some(durable.to_owned()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(config.ack_wait_s),
            max_ack_pending: config.max_ack_pending,
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(js_error("create consumer"))
}

/// Where a replay starts and ends in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamRange {
    /// First stream sequence (inclusive).
    pub from_seq: Option<u64>,
    /// First publish time, ms since the epoch (inclusive).
    pub from_time_ms: Option<i64>,
    /// Last stream sequence (inclusive).
    pub to_seq: Option<u64>,
    /// Last publish time, ms since the epoch (inclusive).
    pub to_time_ms: Option<i64>,
}

/// An ephemeral, unacknowledged consumer over `range` of `source`'s stream,
/// and the last sequence it will deliver (the stream's last sequence now,
/// or `range.to_seq` if lower).
pub async fn replay_consumer(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    source: InputSource,
    range: StreamRange,
) -> Result<(jetstream::consumer::PullConsumer, u64), SourceError> {
    let mut stream = js
        .get_stream(source.stream(streams))
        .await
        .map_err(js_error("get stream"))?;
    let last = stream
        .info()
        .await
        .map_err(js_error("stream info"))?
        .state
        .last_sequence;
    let end = range.to_seq.map_or(last, |to| to.min(last));
    let deliver_policy = match (range.from_seq, range.from_time_ms) {
        (Some(seq), _) => DeliverPolicy::ByStartSequence {
            start_sequence: seq.max(1),
        },
        (None, Some(ms)) => DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        },
        (None, None) => DeliverPolicy::All,
    };
    let consumer = stream
        .create_consumer(pull::Config {
            ack_policy: AckPolicy::None,
            deliver_policy,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .map_err(js_error("create replay consumer"))?;
    Ok((consumer, end))
}

/// Why a decoded message does not belong on its subject.
fn check_subject(
    streams: &StreamsConfig,
    subject: &str,
    events: &Inbound,
) -> Result<(), InvalidValue> {
    let bare = streams.strip_prefix(subject).ok_or_else(|| {
        InvalidValue::new(
            "subject",
            format!("{subject:?} lacks the configured prefix"),
        )
    })?;
    let mismatch =
        |what: &str| InvalidValue::new("subject", format!("{subject:?} does not carry {what}"));
    match (subjects::parse(bare)?, events) {
        (Subject::Trades(sym), Inbound::Trades(trades)) => trades
            .iter()
            .all(|t| t.symbol == sym)
            .then_some(())
            .ok_or_else(|| mismatch("only its symbol's trades")),
        (Subject::Quotes(sym), Inbound::Quotes(quotes)) => quotes
            .iter()
            .all(|q| q.symbol == sym)
            .then_some(())
            .ok_or_else(|| mismatch("only its symbol's quotes")),
        (Subject::Posts(source), Inbound::Posts(posts)) => posts
            .iter()
            .all(|p| p.source == source)
            .then_some(())
            .ok_or_else(|| mismatch("only its source's posts")),
        _ => Err(mismatch("this kind of event")),
    }
}

/// Decodes a message and checks it against its subject.
pub fn decode_message(
    streams: &StreamsConfig,
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<Inbound, DecodeError> {
    let schema = headers
        .and_then(|h| h.get(wire::SCHEMA_HEADER))
        .map(|v| v.as_str());
    let events = decode_inbound(schema, payload)?;
    check_subject(streams, subject, &events).map_err(|source| DecodeError::Invalid {
        schema: schema.unwrap_or_default().to_owned(),
        source,
    })?;
    Ok(events)
}

/// Publishes a rejected message to the dead-letter subject, awaiting the
/// JetStream ack, with the reason and origin in headers and the original
/// headers and payload kept.
pub async fn dead_letter(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    message: &async_nats::Message,
    error: &DecodeError,
) -> Result<(), SourceError> {
    let mut headers = message.headers.clone().unwrap_or_default();
    headers.insert(wire::DLQ_REASON_HEADER, error.reason().as_ref());
    headers.insert(wire::DLQ_KIND_HEADER, error.code());
    headers.insert(wire::DLQ_SUBJECT_HEADER, message.subject.as_str());
    headers.insert(wire::DLQ_STAGE_HEADER, STAGE);
    // The original id stays unique in the DLQ stream's duplicate window.
    let msg_id = headers
        .get(wire::MSG_ID_HEADER)
        .map(|id| format!("dlq:{STAGE}:{}", id.as_str()))
        .unwrap_or_else(|| {
            format!(
                "dlq:{STAGE}:{:032x}",
                xxhash_rust::xxh3::xxh3_128(&message.payload)
            )
        });
    headers.insert(wire::MSG_ID_HEADER, msg_id.as_str());
    js.publish_with_headers(
        streams.subject(&subjects::dlq(STAGE)),
        headers,
        message.payload.clone(),
    )
    .await
    .map_err(js_error("publish to the DLQ"))?
    .await
    .map_err(js_error("DLQ publish ack"))?;
    Ok(())
}

/// How [`run_consumer`] treats what it pulls.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Publish rejected messages to the dead-letter subject (the live
    /// pipeline); a replay only counts them, since the live run already
    /// dead-lettered them.
    pub dead_letter: bool,
    /// Stop after the message with this stream sequence (replay).
    pub end_seq: Option<u64>,
    /// Stop at the first message published after this time, ms (replay).
    pub end_time_ms: Option<i64>,
    /// Where to keep the consumer's backlog (messages not yet delivered to
    /// any client of the consumer): from each message's metadata, and from
    /// the consumer's info while no message comes. The input operator never
    /// calls a source with a backlog idle.
    pub backlog: Option<Arc<AtomicU64>>,
}

impl PullOptions {
    /// The live pipeline: dead-letter, never stop by itself.
    pub fn live() -> Self {
        Self {
            dead_letter: true,
            ..Self::default()
        }
    }

    /// These options, keeping the backlog in `backlog`.
    pub fn with_backlog(mut self, backlog: Arc<AtomicU64>) -> Self {
        self.backlog = Some(backlog);
        self
    }
}

/// How often a quiet consumer's backlog is looked up.
const BACKLOG_POLL: Duration = Duration::from_millis(250);

/// Pulls `source`'s consumer until `shutdown` is cancelled (or, with an end in
/// `options`, until the end is reached), sending decoded messages into `out`
/// (a bounded channel: a full channel stops the pull, which is the
/// back-pressure from the dataflow and sinks) and dead-lettering the rest.
pub async fn run_consumer(
    js: jetstream::Context,
    streams: StreamsConfig,
    mut consumer: jetstream::consumer::PullConsumer,
    source: InputSource,
    out: mpsc::Sender<InputMessage>,
    shutdown: tokio_util::sync::CancellationToken,
    options: PullOptions,
) -> Result<(), SourceError> {
    if options.end_seq == Some(0) {
        return Ok(());
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(js_error("pull messages"))?;
    let mut backlog_tick = tokio::time::interval(BACKLOG_POLL);
    let mut quiet_ticks = 0u32;
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            next = messages.next() => next,
            _ = backlog_tick.tick(), if options.backlog.is_some() => {
                // No message for a whole tick: ask the consumer (in a
                // cluster another process may have taken the last ones).
                quiet_ticks += 1;
                if quiet_ticks >= 2 {
                    if let (Some(backlog), Ok(info)) = (&options.backlog, consumer.info().await) {
                        backlog.store(info.num_pending, Ordering::Relaxed);
                    }
                }
                continue;
            }
        };
        quiet_ticks = 0;
        let Some(next) = next else { break };
        let message = match next {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(source = source.name(), error = %e, "pull failed; continuing");
                metrics::counter!("insite_pipeline_pull_errors_total", "source" => source.name())
                    .increment(1);
                continue;
            }
        };
        let (stream_seq, pending, published_ms) = match message.info() {
            Ok(info) => (
                info.stream_sequence,
                info.pending,
                (info.published.unix_timestamp_nanos() / 1_000_000) as i64,
            ),
            Err(e) => {
                tracing::warn!(source = source.name(), error = %e, "message without JetStream metadata; skipped");
                continue;
            }
        };
        if options.end_time_ms.is_some_and(|end| published_ms > end) {
            break;
        }
        metrics::gauge!("insite_pipeline_consumer_pending", "source" => source.name())
            .set(pending as f64);
        if let Some(backlog) = &options.backlog {
            backlog.store(pending, Ordering::Relaxed);
        }
        let at_end = options.end_seq.is_some_and(|end| stream_seq >= end);
        let (message, acker) = message.split();
        metrics::counter!("insite_pipeline_messages_in_total", "source" => source.name())
            .increment(1);
        match decode_message(
            &streams,
            message.subject.as_str(),
            message.headers.as_ref(),
            &message.payload,
        ) {
            Ok(events) => {
                metrics::counter!("insite_pipeline_events_in_total", "source" => source.name())
                    .increment(events.len() as u64);
                let input = InputMessage {
                    source,
                    stream_seq,
                    events,
                    pending,
                    acker,
                };
                if out.send(input).await.is_err() {
                    break;
                }
            }
            Err(error) => {
                tracing::debug!(source = source.name(), stream_seq, subject = %message.subject, %error, "rejected");
                metrics::counter!("insite_pipeline_dlq_total", "source" => source.name(), "kind" => error.code()).increment(1);
                if options.dead_letter {
                    // Retry the DLQ publish until it lands: acking without
                    // it would lose the message.
                    let mut backoff = Backoff::standard();
                    while let Err(e) = dead_letter(&js, &streams, &message, &error).await {
                        tracing::warn!(error = %e, "DLQ publish failed; retrying");
                        backoff.wait().await;
                    }
                    if let Err(e) = acker.ack_with(AckKind::Ack).await {
                        tracing::warn!(error = %e, stream_seq, "ack of a dead-lettered message failed; it will be redelivered and dead-lettered again (deduplicated)");
                    }
                }
            }
        }
        if at_end {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use insite_schemas::{Symbol, Trade};

    fn trades_on(symbol: &str) -> Inbound {
        Inbound::Trades(vec![Trade {
            symbol: Symbol::new(symbol).unwrap(),
            ts: 1_700_000_000_000,
            price: 1.0,
            size: 1,
            exchange: "".into(),
            trade_id: "".into(),
            conditions: vec![],
        }])
    }

    #[test]
    fn events_must_match_their_subject() {
        let streams = StreamsConfig::default();
        assert!(check_subject(&streams, "md.trades.AAPL", &trades_on("AAPL")).is_ok());
        assert!(check_subject(&streams, "md.trades.MSFT", &trades_on("AAPL")).is_err());
        assert!(check_subject(&streams, "md.quotes.AAPL", &trades_on("AAPL")).is_err());
        assert!(check_subject(&streams, "social.posts.x", &trades_on("AAPL")).is_err());
        let prefixed = StreamsConfig {
            subject_prefix: "t1".into(),
            ..StreamsConfig::default()
        };
        assert!(check_subject(&prefixed, "t1.md.trades.AAPL", &trades_on("AAPL")).is_ok());
        assert!(check_subject(&prefixed, "md.trades.AAPL", &trades_on("AAPL")).is_err());
    }
}
