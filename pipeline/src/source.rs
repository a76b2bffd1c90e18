//! JetStream input: one durable pull consumer per input stream, read in
//! stream order; decoding, validation, the clock-skew bound, dead letters,
//! and the clock ticks of an idle stream.
//!
//! Every message of a stream reaches the dataflow as an [`InputMessage`],
//! in sequence order and exactly once: the events it carries, a clock tick,
//! or nothing (a message that was dead-lettered still takes its place in
//! the order, so that the stream's checkpoint can pass it). What cannot be
//! used is published to `insite.dlq.pipeline` with the reason in its
//! headers first: bad input is never lost and never stops the pipeline.
//!
//! The consumer acknowledges nothing (`AckPolicy::None`): the pipeline's
//! acknowledgement is the checkpoint it records in ClickHouse once the
//! results are durable (see `crate::progress`), and a restart recreates the
//! consumer at the checkpoint. So there is no redelivery after `ack_wait`
//! and no `max_ack_pending` ceiling. Should delivery ever skip (the
//! consumer's own sequence jumps), the consumer is recreated at the next
//! expected stream sequence; a sequence already read is dropped.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::HeaderMap;
use futures::StreamExt;
use insite_operators::watermark::check_skew;
use insite_schemas::config::StreamsConfig;
use insite_schemas::subjects::{self, Subject};
use insite_schemas::wire::{self, decode_inbound, Batch, SchemaKind, WireType};
use insite_schemas::{
    ClockTick, DecodeError, Inbound, InvalidValue, Post, Quote, SourceName, TimestampMs, Trade,
};
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
    /// Messages requested per pull.
    pub pull_batch: usize,
    /// An event stamped more than this after the time JetStream stored its
    /// message is dead-lettered (reason `clock_skew`) and never moves a
    /// watermark, ms.
    pub max_clock_skew_ms: i64,
    /// How often an idle stream gets a clock tick, ms.
    pub idle_tick_ms: u64,
    /// Event-time milliseconds an idle stream's clock advances per
    /// wall-clock millisecond (1.0: at wall-clock rate).
    pub idle_speed: f64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            market_durable: "insite-pipeline-market".into(),
            social_durable: "insite-pipeline-social".into(),
            pull_batch: 1_000,
            max_clock_skew_ms: 10_000,
            idle_tick_ms: 1_000,
            idle_speed: 1.0,
        }
    }
}

/// What one stream message brings the dataflow.
#[derive(Debug, Clone, PartialEq)]
pub enum InputBody {
    /// Events (one, or a batch), those within the clock-skew bound.
    Events(Inbound),
    /// A clock tick: the stream's event time has reached this.
    Clock(TimestampMs),
    /// Nothing: the message was dead-lettered whole.
    Rejected,
}

impl InputBody {
    /// Number of events.
    pub fn len(&self) -> usize {
        match self {
            Self::Events(events) => events.len(),
            Self::Clock(_) | Self::Rejected => 0,
        }
    }

    /// Whether it carries no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One message of an input stream, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub struct InputMessage {
    /// The stream it came from.
    pub source: InputSource,
    /// Its stream sequence.
    pub stream_seq: u64,
    /// What it brings.
    pub body: InputBody,
    /// Messages still pending for the consumer after this one (0: the
    /// consumer has caught up with the stream).
    pub pending: u64,
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
    /// A value could not be encoded (a bug).
    #[error("encoding: {0}")]
    Encode(String),
    /// JetStream did not answer in time (retryable).
    #[error("JetStream {0}: timed out")]
    Timeout(&'static str),
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

/// (Re)creates the durable pull consumer of `source` so that it delivers
/// from stream sequence `from_seq` (1: from the start), acknowledging
/// nothing.
pub async fn consumer(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    config: &ConsumerConfig,
    source: InputSource,
    from_seq: u64,
) -> Result<jetstream::consumer::PullConsumer, SourceError> {
    let durable = config.durable(source);
    let stream = js
        .get_stream(source.stream(streams))
        .await
        .map_err(js_error("get stream"))?;
    if stream.get_consumer::<pull::Config>(durable).await.is_ok() {
        stream
            .delete_consumer(durable)
            .await
            .map_err(js_error("delete consumer"))?;
    }
    tracing::info!(
        source = source.name(),
        durable,
        from_seq,
        "reading the stream from its checkpoint"
    );
    let deliver_policy = if from_seq <= 1 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: from_seq,
        }
    };
    stream
        .create_consumer(pull::Config {
            durable_name: Some(durable.to_owned()),
            ack_policy: AckPolicy::None,
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(js_error("create consumer"))
}

/// Where a replay starts and ends in a stream. Three kinds of bound, which
/// may be combined:
/// - **stream sequence** (`from_seq`, `to_seq`): JetStream's position of a
///   message in the stream;
/// - **storage time** (`from_time_ms`, `to_time_ms`): when JetStream
///   *stored* a message (a backlog published in one go is stored within
///   seconds, whatever its events' times);
/// - **event time** (`from_event_ms`, `to_event_ms`): the events' own
///   timestamps. Reading starts `max_clock_skew_ms` of storage time before
///   `from_event_ms` (no earlier message can hold a later event) and stops
///   once the stream's clock has passed `to_event_ms`; only events, and
///   windows, inside `[from_event_ms, to_event_ms)` are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamRange {
    /// First stream sequence (inclusive).
    pub from_seq: Option<u64>,
    /// First storage time, ms since the epoch (inclusive).
    pub from_time_ms: Option<i64>,
    /// Last stream sequence (inclusive).
    pub to_seq: Option<u64>,
    /// Last storage time, ms since the epoch (inclusive).
    pub to_time_ms: Option<i64>,
    /// First event time, ms since the epoch (inclusive).
    pub from_event_ms: Option<TimestampMs>,
    /// End of the event-time range, ms since the epoch (exclusive).
    pub to_event_ms: Option<TimestampMs>,
}

/// A replay's consumer over one stream range, and what is known of the
/// messages before it.
#[derive(Debug)]
pub struct ReplayStart {
    /// The ephemeral, unacknowledged consumer.
    pub consumer: jetstream::consumer::PullConsumer,
    /// The last sequence it will deliver (the stream's last sequence now,
    /// or `to_seq` if lower).
    pub end_seq: u64,
    /// `None` if the range starts at the stream's first message ever
    /// (sequence 1): nothing precedes it. Otherwise a bound on the event
    /// time of every event and clock tick in the messages before the range:
    /// each was at most `max_clock_skew_ms` ahead of its message's storage
    /// time, and those messages were stored before the range's first.
    pub before_max_ts: Option<TimestampMs>,
}

/// An ephemeral, unacknowledged consumer over `range` of `source`'s stream
/// (`max_clock_skew_ms`: the pipeline's clock-skew bound, for the start of
/// an event-time range and the bound on what precedes the range).
pub async fn replay_consumer(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    source: InputSource,
    range: StreamRange,
    max_clock_skew_ms: i64,
) -> Result<ReplayStart, SourceError> {
    let skew = max_clock_skew_ms.max(0);
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
    let end_seq = range.to_seq.map_or(last, |to| to.min(last));
    let start_time = range
        .from_time_ms
        .or(range.from_event_ms.map(|ms| ms.saturating_sub(skew)));
    let at = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    let deliver_policy = match (range.from_seq, start_time) {
        (Some(seq), _) => DeliverPolicy::ByStartSequence {
            start_sequence: seq.max(1),
        },
        (None, Some(ms)) => DeliverPolicy::ByStartTime { start_time: at(ms) },
        (None, None) => DeliverPolicy::All,
    };
    let config = pull::Config {
        ack_policy: AckPolicy::None,
        deliver_policy,
        inactive_threshold: Duration::from_secs(60),
        ..Default::default()
    };
    // The first message the range holds, read by a consumer of its own.
    let first = first_message(&stream, config.clone()).await?;
    let from_start = matches!(config.deliver_policy, DeliverPolicy::All);
    let before_max_ts = match (first, range.from_seq, start_time) {
        // The stream's first message: nothing precedes it.
        (Some((1, _)), _, _) => None,
        (None, _, _) if from_start => None,
        // Nothing in the range yet: whatever it reads was stored later.
        (None, _, _) => Some(insite_schemas::time::now_ms().saturating_add(skew)),
        // Messages before it were stored before `from_time`.
        (Some(_), None, Some(ms)) => Some(ms.saturating_sub(1).saturating_add(skew)),
        // Messages before it were stored no later than it was.
        (Some((_, stored_ms)), _, _) => Some(stored_ms.saturating_add(skew)),
    };
    let consumer = stream
        .create_consumer(config)
        .await
        .map_err(js_error("create replay consumer"))?;
    Ok(ReplayStart {
        consumer,
        end_seq,
        before_max_ts,
    })
}

/// How often [`first_message`] asks again after a failed pull: a new
/// consumer on a replicated stream can answer 503 (no responders) until its
/// leader is elected, as after a node's loss.
const PEEK_ATTEMPTS: u32 = 10;

/// The stream sequence and storage time (ms) of the first message a
/// consumer with `config` delivers, if any, asking again (with a new
/// consumer) while the pull fails.
async fn first_message(
    stream: &jetstream::stream::Stream,
    config: pull::Config,
) -> Result<Option<(u64, TimestampMs)>, SourceError> {
    let mut attempt = 1;
    loop {
        match peek_first_message(stream, config.clone()).await {
            Ok(first) => return Ok(first),
            Err(e) if attempt < PEEK_ATTEMPTS => {
                tracing::warn!(attempt, error = %e, "reading the replay's first message failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One attempt of [`first_message`], with a consumer of its own.
async fn peek_first_message(
    stream: &jetstream::stream::Stream,
    config: pull::Config,
) -> Result<Option<(u64, TimestampMs)>, SourceError> {
    let peek = stream
        .create_consumer(config)
        .await
        .map_err(js_error("create replay consumer"))?;
    let name = peek.cached_info().name.clone();
    let first = read_first(&peek).await;
    if let Err(e) = stream.delete_consumer(&name).await {
        // Ephemeral: it goes by itself once inactive.
        tracing::debug!(error = %e, "deleting the replay's peek consumer");
    }
    first
}

/// The first message `peek` delivers, if any.
async fn read_first(
    peek: &jetstream::consumer::PullConsumer,
) -> Result<Option<(u64, TimestampMs)>, SourceError> {
    let mut batch = peek
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .map_err(js_error("pull messages"))?;
    let mut first = None;
    while let Some(message) = batch.next().await {
        let message = message.map_err(|source| SourceError::JetStream {
            what: "pull messages",
            source,
        })?;
        if let Ok(info) = message.info() {
            let stored_ms = i64::try_from(info.published.unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(TimestampMs::MAX);
            first = Some((info.stream_sequence, stored_ms));
        }
    }
    Ok(first)
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

/// A message decoded and checked against its subject.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// Events.
    Events(Inbound),
    /// A clock tick.
    Clock(ClockTick),
}

/// Decodes a message and checks it against its subject.
pub fn decode_message(
    streams: &StreamsConfig,
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<Decoded, DecodeError> {
    let schema = headers
        .and_then(|h| h.get(wire::SCHEMA_HEADER))
        .map(|v| v.as_str());
    let invalid = |source| DecodeError::Invalid {
        schema: schema.unwrap_or_default().to_owned(),
        source,
    };
    let bare = streams.strip_prefix(subject);
    if let Some(Ok(Subject::MarketClock(origin) | Subject::SocialClock(origin))) =
        bare.map(subjects::parse)
    {
        let tick = wire::decode_clock(schema, payload)?;
        if tick.origin != origin {
            return Err(invalid(InvalidValue::new(
                "subject",
                format!("{subject:?} does not carry {}'s clock", tick.origin),
            )));
        }
        return Ok(Decoded::Clock(tick));
    }
    let events = decode_inbound(schema, payload)?;
    check_subject(streams, subject, &events).map_err(invalid)?;
    Ok(Decoded::Events(events))
}

/// Splits off the events stamped more than `max_skew_ms` after `stored_ms`
/// (the time JetStream stored their message): returns the events within the
/// bound, and the others with the first one's reason.
pub fn split_skewed(
    events: Inbound,
    stored_ms: TimestampMs,
    max_skew_ms: i64,
) -> (Inbound, Option<(Inbound, String)>) {
    fn split<T>(
        events: Vec<T>,
        ts: impl Fn(&T) -> TimestampMs,
        stored_ms: TimestampMs,
        max_skew_ms: i64,
    ) -> (Vec<T>, Vec<T>, Option<String>) {
        let mut reason = None;
        let (ok, skewed): (Vec<T>, Vec<T>) =
            events.into_iter().partition(|event| {
                match check_skew(ts(event), stored_ms, max_skew_ms) {
                    Ok(()) => true,
                    Err(e) => {
                        reason.get_or_insert_with(|| e.to_string());
                        false
                    }
                }
            });
        (ok, skewed, reason)
    }
    let (ok, skewed, reason) = match events {
        Inbound::Trades(v) => {
            let (ok, bad, why) = split(v, |t: &Trade| t.ts, stored_ms, max_skew_ms);
            (Inbound::Trades(ok), Inbound::Trades(bad), why)
        }
        Inbound::Quotes(v) => {
            let (ok, bad, why) = split(v, |q: &Quote| q.ts, stored_ms, max_skew_ms);
            (Inbound::Quotes(ok), Inbound::Quotes(bad), why)
        }
        Inbound::Posts(v) => {
            let (ok, bad, why) = split(v, |p: &Post| p.ts, stored_ms, max_skew_ms);
            (Inbound::Posts(ok), Inbound::Posts(bad), why)
        }
    };
    (ok, reason.map(|why| (skewed, why)))
}

/// Why a message, or some of its events, went to the dead-letter subject.
#[derive(Debug, Clone, Copy)]
enum Rejection<'a> {
    /// It could not be decoded or did not belong on its subject.
    Decode(&'a DecodeError),
    /// These events were stamped too far ahead of the message's storage.
    ClockSkew(&'a str),
}

impl Rejection<'_> {
    fn code(&self) -> &'static str {
        match self {
            Self::Decode(e) => e.code(),
            Self::ClockSkew(_) => "clock_skew",
        }
    }

    fn reason(&self) -> String {
        match self {
            Self::Decode(e) => e.reason().into_owned(),
            Self::ClockSkew(why) => (*why).to_owned(),
        }
    }
}

/// The payload and schema header of `events` as a batch.
fn encode_batch(events: &Inbound) -> Result<(Vec<u8>, String), insite_schemas::EncodeError> {
    fn batch<T: serde::Serialize + Clone>(
        events: &[T],
        kind: SchemaKind,
    ) -> Result<(Vec<u8>, String), insite_schemas::EncodeError> {
        let payload = wire::encode(&Batch {
            events: events.to_vec(),
        })?;
        Ok((payload, wire::SchemaId::current(kind).to_string()))
    }
    match events {
        Inbound::Trades(v) => batch(v, <Batch<Trade> as WireType>::KIND),
        Inbound::Quotes(v) => batch(v, <Batch<Quote> as WireType>::KIND),
        Inbound::Posts(v) => batch(v, <Batch<Post> as WireType>::KIND),
    }
}

/// Publishes a rejected message (or `payload`, the part of it that was
/// rejected, with its own schema header) to the dead-letter subject,
/// awaiting the JetStream ack, with the reason and origin in headers and
/// the original headers kept.
async fn dead_letter(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    message: &async_nats::Message,
    rejection: Rejection<'_>,
    part: Option<(&[u8], &str)>,
) -> Result<(), SourceError> {
    let mut headers = message.headers.clone().unwrap_or_default();
    headers.insert(wire::DLQ_REASON_HEADER, rejection.reason().as_str());
    headers.insert(wire::DLQ_KIND_HEADER, rejection.code());
    headers.insert(wire::DLQ_SUBJECT_HEADER, message.subject.as_str());
    headers.insert(wire::DLQ_STAGE_HEADER, STAGE);
    let payload = match part {
        Some((payload, schema)) => {
            headers.insert(wire::SCHEMA_HEADER, schema);
            bytes::Bytes::copy_from_slice(payload)
        }
        None => message.payload.clone(),
    };
    // The original id stays unique in the DLQ stream's duplicate window.
    let msg_id = headers
        .get(wire::MSG_ID_HEADER)
        .map(|id| format!("dlq:{STAGE}:{}:{}", rejection.code(), id.as_str()))
        .unwrap_or_else(|| {
            format!(
                "dlq:{STAGE}:{}:{:032x}",
                rejection.code(),
                xxhash_rust::xxh3::xxh3_128(&payload)
            )
        });
    headers.insert(wire::MSG_ID_HEADER, msg_id.as_str());
    js.publish_with_headers(streams.subject(&subjects::dlq(STAGE)), headers, payload)
        .await
        .map_err(js_error("publish to the DLQ"))?
        .await
        .map_err(js_error("DLQ publish ack"))?;
    Ok(())
}

/// Dead-letters until it lands: going on without it would lose the input.
async fn dead_letter_until_stored(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    message: &async_nats::Message,
    rejection: Rejection<'_>,
    part: Option<(&[u8], &str)>,
    shutdown: &tokio_util::sync::CancellationToken,
) {
    let mut backoff = Backoff::standard();
    while let Err(e) = dead_letter(js, streams, message, rejection, part).await {
        tracing::warn!(error = %e, "DLQ publish failed; retrying");
        if shutdown.is_cancelled() {
            return;
        }
        backoff.wait().await;
    }
}

/// Clock ticks for an idle stream (the live pipeline only).
#[derive(Debug, Clone, PartialEq)]
pub struct IdleTicks {
    /// Who writes them: the pipeline's name, as a subject token.
    pub origin: SourceName,
    /// Quiet this long (and read to the end) before the first tick.
    pub idle_timeout: Duration,
    /// Then one tick this often.
    pub every: Duration,
    /// Event-time ms per wall-clock ms.
    pub speed: f64,
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
    /// The clock-skew bound, ms (`None`: no bound).
    pub max_clock_skew_ms: Option<i64>,
    /// Write clock ticks while the stream is idle.
    pub idle_ticks: Option<IdleTicks>,
    /// The stream's largest event time before the first message read (the
    /// checkpoint's clock), for the first tick.
    pub resume_max_ts: Option<TimestampMs>,
    /// Recreate the consumer with these settings if delivery skips (the
    /// live pipeline's durable consumer).
    pub recreate: Option<ConsumerConfig>,
}

impl PullOptions {
    /// The live pipeline's options: dead letters, the skew bound and idle
    /// ticks from `config`, ticks written as `origin` once the stream has
    /// been quiet for `idle_timeout_ms`.
    pub fn live(
        config: &ConsumerConfig,
        idle_timeout_ms: i64,
        origin: SourceName,
        resume_max_ts: Option<TimestampMs>,
    ) -> Self {
        Self {
            dead_letter: true,
            end_seq: None,
            end_time_ms: None,
            max_clock_skew_ms: Some(config.max_clock_skew_ms.max(0)),
            idle_ticks: Some(IdleTicks {
                origin,
                idle_timeout: Duration::from_millis(idle_timeout_ms.max(0) as u64),
                every: Duration::from_millis(config.idle_tick_ms.max(1)),
                speed: if config.idle_speed.is_finite() && config.idle_speed > 0.0 {
                    config.idle_speed
                } else {
                    1.0
                },
            }),
            resume_max_ts,
            recreate: Some(config.clone()),
        }
    }
}

/// How often a quiet consumer looks at its backlog and the idle clock.
const QUIET_POLL: Duration = Duration::from_millis(100);

/// What the consumer task knows of its stream's time, for idle ticks.
#[derive(Debug)]
struct StreamActivity {
    /// The largest event or tick time read (or resumed).
    max_ts: Option<TimestampMs>,
    /// The stream clock when the last message with events was read, and
    /// when that was.
    anchor: Option<(TimestampMs, Instant)>,
    /// When the last message of any kind was read.
    last_read: Instant,
    /// The largest tick written so far.
    last_tick: TimestampMs,
    /// When the last tick was written.
    last_tick_at: Option<Instant>,
    /// Whether the consumer had nothing pending after the last message.
    caught_up: bool,
}

impl StreamActivity {
    fn new(resume_max_ts: Option<TimestampMs>) -> Self {
        let now = Instant::now();
        Self {
            max_ts: resume_max_ts,
            anchor: resume_max_ts.map(|ts| (ts, now)),
            last_read: now,
            last_tick: TimestampMs::MIN,
            last_tick_at: None,
            caught_up: false,
        }
    }

    fn read(&mut self, body: &InputBody, pending: u64) {
        let now = Instant::now();
        let times: Vec<TimestampMs> = match body {
            InputBody::Events(Inbound::Trades(v)) => v.iter().map(|t| t.ts).collect(),
            InputBody::Events(Inbound::Quotes(v)) => v.iter().map(|q| q.ts).collect(),
            InputBody::Events(Inbound::Posts(v)) => v.iter().map(|p| p.ts).collect(),
            InputBody::Clock(ts) => vec![*ts],
            InputBody::Rejected => Vec::new(),
        };
        if let Some(&most) = times.iter().max() {
            self.max_ts = Some(self.max_ts.map_or(most, |m| m.max(most)));
        }
        if matches!(body, InputBody::Events(events) if !events.is_empty()) {
            if let Some(max_ts) = self.max_ts {
                self.anchor = Some((max_ts, now));
            }
        }
        self.last_read = now;
        self.caught_up = pending == 0;
    }

    /// The tick to write now, if the stream is idle and one is due.
    fn due_tick(&self, ticks: &IdleTicks, now: Instant) -> Option<TimestampMs> {
        let (anchor_ts, anchor_at) = self.anchor?;
        if !self.caught_up
            || now.duration_since(self.last_read) < ticks.idle_timeout.min(ticks.every)
        {
            return None;
        }
        let quiet = now.duration_since(anchor_at);
        if quiet < ticks.idle_timeout {
            return None;
        }
        if self
            .last_tick_at
            .is_some_and(|at| now.duration_since(at) < ticks.every)
        {
            return None;
        }
        let advance = (quiet.as_millis() as f64 * ticks.speed) as i64;
        // Never ahead of the wall clock: a tick says time has passed, not
        // that events from the future have.
        let tick = anchor_ts
            .saturating_add(advance)
            .min(insite_schemas::time::now_ms());
        (tick > self.max_ts.unwrap_or(TimestampMs::MIN) && tick > self.last_tick).then_some(tick)
    }
}

/// The event time of the oldest of `events`.
fn oldest_ts(events: &Inbound) -> Option<TimestampMs> {
    match events {
        Inbound::Trades(v) => v.iter().map(|t| t.ts).min(),
        Inbound::Quotes(v) => v.iter().map(|q| q.ts).min(),
        Inbound::Posts(v) => v.iter().map(|p| p.ts).min(),
    }
}

/// Writes one clock tick into `source`'s stream.
async fn write_tick(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    source: InputSource,
    origin: &SourceName,
    ts: TimestampMs,
) -> Result<(), SourceError> {
    let tick = ClockTick {
        ts,
        origin: origin.clone(),
    };
    let subject = match source {
        InputSource::Market => subjects::market_clock(origin),
        InputSource::Social => subjects::social_clock(origin),
    };
    let payload = wire::encode(&tick).map_err(|e| SourceError::Encode(e.to_string()))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        wire::SCHEMA_HEADER,
        wire::schema_of::<ClockTick>().to_string().as_str(),
    );
    headers.insert(
        wire::MSG_ID_HEADER,
        format!("clock:{origin}:{}:{ts}", source.name()).as_str(),
    );
    let ack = js
        .publish_with_headers(streams.subject(&subject), headers, payload.into())
        .await
        .map_err(js_error("publish a clock tick"))?;
    tokio::time::timeout(Duration::from_secs(5), ack)
        .await
        .map_err(|_| SourceError::Timeout("clock tick ack"))?
        .map_err(js_error("clock tick ack"))?;
    Ok(())
}

/// Pulls `source`'s consumer until `shutdown` is cancelled (or, with an end
/// in `options`, until the end is reached), sending every message, in
/// stream order and once, into `out` (a bounded channel: a full channel
/// stops the pull, which is the back-pressure from the dataflow and sinks),
/// dead-lettering what cannot be used, and writing clock ticks while the
/// stream is idle.
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
    let mut activity = StreamActivity::new(options.resume_max_ts);
    // Registered once: the per-message path only updates them.
    let messages_in =
        metrics::counter!("insite_pipeline_messages_in_total", "source" => source.name());
    let events_in = metrics::counter!("insite_pipeline_events_in_total", "source" => source.name());
    let pending_gauge =
        metrics::gauge!("insite_pipeline_consumer_pending", "source" => source.name());
    let read_age =
        metrics::histogram!("insite_pipeline_event_to_read_seconds", "source" => source.name());
    let mut last_stream_seq: Option<u64> = None;
    let mut last_consumer_seq: Option<u64> = None;
    'consume: loop {
        let mut messages = consumer
            .messages()
            .await
            .map_err(js_error("pull messages"))?;
        let mut quiet = tokio::time::interval(QUIET_POLL);
        quiet.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => break 'consume,
                next = messages.next() => next,
                _ = quiet.tick() => {
                    if let Some(ticks) = &options.idle_ticks {
                        if !activity.caught_up {
                            if let Ok(info) = consumer.info().await {
                                activity.caught_up = info.num_pending == 0;
                            }
                        }
                        let now = Instant::now();
                        if let Some(ts) = activity.due_tick(ticks, now) {
                            match write_tick(&js, &streams, source, &ticks.origin, ts).await {
                                Ok(()) => {
                                    activity.last_tick = ts;
                                    activity.last_tick_at = Some(now);
                                    metrics::counter!("insite_pipeline_clock_ticks_total", "source" => source.name()).increment(1);
                                }
                                Err(e) => tracing::warn!(source = source.name(), error = %e, "writing a clock tick failed; retrying"),
                            }
                        }
                    }
                    continue;
                }
            };
            let Some(next) = next else { break 'consume };
            let message = match next {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(source = source.name(), error = %e, "pull failed; continuing");
                    metrics::counter!("insite_pipeline_pull_errors_total", "source" => source.name())
                        .increment(1);
                    continue;
                }
            };
            let (stream_seq, consumer_seq, pending, stored_ms) = match message.info() {
                Ok(info) => (
                    info.stream_sequence,
                    info.consumer_sequence,
                    info.pending,
                    i64::try_from(info.published.unix_timestamp_nanos() / 1_000_000)
                        .unwrap_or(TimestampMs::MAX),
                ),
                Err(e) => {
                    tracing::warn!(source = source.name(), error = %e, "message without JetStream metadata; skipped");
                    continue;
                }
            };
            if last_stream_seq.is_some_and(|last| stream_seq <= last) {
                // Read already (a delivery repeated): never counted twice.
                metrics::counter!("insite_pipeline_duplicates_dropped_total", "source" => source.name())
                    .increment(1);
                continue;
            }
            if let (Some(last), Some(config)) = (last_consumer_seq, &options.recreate) {
                if consumer_seq != last + 1 {
                    // Delivered messages never reached us: read again from
                    // the next expected stream sequence.
                    let from = last_stream_seq.map_or(1, |s| s + 1);
                    tracing::warn!(
                        source = source.name(),
                        expected = last + 1,
                        got = consumer_seq,
                        from,
                        "delivery skipped; recreating the consumer"
                    );
                    consumer = self::consumer(&js, &streams, config, source, from).await?;
                    last_consumer_seq = None;
                    continue 'consume;
                }
            }
            if options.end_time_ms.is_some_and(|end| stored_ms > end) {
                break 'consume;
            }
            last_stream_seq = Some(stream_seq);
            last_consumer_seq = Some(consumer_seq);
            pending_gauge.set(pending as f64);
            let at_end = options.end_seq.is_some_and(|end| stream_seq >= end);
            let (message, _acker) = message.split();
            messages_in.increment(1);
            let body = match decode_message(
                &streams,
                message.subject.as_str(),
                message.headers.as_ref(),
                &message.payload,
            ) {
                Ok(Decoded::Events(events)) => {
                    let (events, skewed) = match options.max_clock_skew_ms {
                        Some(bound) => split_skewed(events, stored_ms, bound),
                        None => (events, None),
                    };
                    if let Some((skewed, why)) = skewed {
                        metrics::counter!("insite_pipeline_dlq_total", "source" => source.name(), "kind" => "clock_skew").increment(1);
                        tracing::debug!(source = source.name(), stream_seq, subject = %message.subject, reason = %why, "events beyond the clock-skew bound dead-lettered");
                        if options.dead_letter {
                            match encode_batch(&skewed) {
                                Ok((payload, schema)) => {
                                    dead_letter_until_stored(
                                        &js,
                                        &streams,
                                        &message,
                                        Rejection::ClockSkew(&why),
                                        Some((&payload, &schema)),
                                        &shutdown,
                                    )
                                    .await;
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "re-encoding skewed events failed; dead-lettering the whole message")
                                }
                            }
                        }
                    }
                    events_in.increment(events.len() as u64);
                    if let Some(oldest) = oldest_ts(&events) {
                        let age_ms = insite_schemas::time::now_ms().saturating_sub(oldest).max(0);
                        read_age.record(age_ms as f64 / 1_000.0);
                    }
                    InputBody::Events(events)
                }
                Ok(Decoded::Clock(tick)) => match options
                    .max_clock_skew_ms
                    .map(|bound| check_skew(tick.ts, stored_ms, bound))
                {
                    Some(Err(e)) => {
                        metrics::counter!("insite_pipeline_dlq_total", "source" => source.name(), "kind" => "clock_skew").increment(1);
                        if options.dead_letter {
                            let why = e.to_string();
                            dead_letter_until_stored(
                                &js,
                                &streams,
                                &message,
                                Rejection::ClockSkew(&why),
                                None,
                                &shutdown,
                            )
                            .await;
                        }
                        InputBody::Rejected
                    }
                    _ => InputBody::Clock(tick.ts),
                },
                Err(error) => {
                    tracing::debug!(source = source.name(), stream_seq, subject = %message.subject, %error, "rejected");
                    metrics::counter!("insite_pipeline_dlq_total", "source" => source.name(), "kind" => error.code()).increment(1);
                    if options.dead_letter {
                        dead_letter_until_stored(
                            &js,
                            &streams,
                            &message,
                            Rejection::Decode(&error),
                            None,
                            &shutdown,
                        )
                        .await;
                    }
                    InputBody::Rejected
                }
            };
            activity.read(&body, pending);
            let input = InputMessage {
                source,
                stream_seq,
                body,
                pending,
            };
            if out.send(input).await.is_err() {
                break 'consume;
            }
            if at_end {
                break 'consume;
            }
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
