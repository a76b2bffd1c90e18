//! The events a feed produces and the messages they become.
//!
//! One event goes out as `trade.v1` / `quote.v1` / `post.v1` with its own
//! `Nats-Msg-Id` from [`insite_schemas::msgid`]. A batch (one symbol's trades
//! or quotes, or one source's posts) goes out as `trade_batch.v1` /
//! `quote_batch.v1` / `post_batch.v1` with the id
//! `<tb|qb|pb>:<first event's key>:<128-bit hash of the payload>`, so the
//! same batch re-sent is dropped by JetStream and two batches that merely
//! start alike do not collide. This is the format of
//! [`insite_schemas::msgid::batch_msg_id`], computed from the payload that is
//! sent rather than by encoding the batch a second time.

use bytes::Bytes;
use insite_schemas::config::StreamsConfig;
use insite_schemas::wire::{self, Batch, SchemaId, WireType};
use insite_schemas::{msgid, subjects, EncodeError, Post, Quote, TimestampMs, Trade};

/// One input event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A trade.
    Trade(Trade),
    /// A quote.
    Quote(Quote),
    /// A post.
    Post(Post),
}

impl Event {
    /// Its event time.
    pub fn ts(&self) -> TimestampMs {
        match self {
            Self::Trade(t) => t.ts,
            Self::Quote(q) => q.ts,
            Self::Post(p) => p.ts,
        }
    }

    /// Checks the contract's rules for the event.
    pub fn validate(&self) -> Result<(), insite_schemas::InvalidValue> {
        match self {
            Self::Trade(t) => t.validate(),
            Self::Quote(q) => q.validate(),
            Self::Post(p) => p.validate(),
        }
    }

    /// The subject it goes to, without the configured prefix.
    pub fn subject(&self) -> String {
        match self {
            Self::Trade(t) => subjects::trades(&t.symbol),
            Self::Quote(q) => subjects::quotes(&q.symbol),
            Self::Post(p) => subjects::posts(&p.source),
        }
    }

    /// Its `Nats-Msg-Id` when sent alone.
    pub fn msg_id(&self) -> String {
        match self {
            Self::Trade(t) => msgid::trade_msg_id(t),
            Self::Quote(q) => msgid::quote_msg_id(q),
            Self::Post(p) => msgid::post_msg_id(p),
        }
    }
}

/// A message ready to publish: subject (with prefix), id, schema and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct OutMessage {
    /// The full subject, prefix included.
    pub subject: String,
    /// The `Nats-Msg-Id`.
    pub msg_id: String,
    /// The `Insite-Schema` header value.
    pub schema: SchemaId,
    /// The MessagePack payload.
    pub payload: Bytes,
    /// Number of events inside.
    pub events: u32,
    /// Event time of its oldest event (`None` for a message of no event),
    /// for `insite_ingest_event_to_ack_seconds`.
    pub oldest_ts: Option<TimestampMs>,
}

fn encode_with<T: WireType>(value: &T) -> Result<(SchemaId, Bytes), EncodeError> {
    Ok((wire::schema_of::<T>(), Bytes::from(wire::encode(value)?)))
}

/// The message of one event on its own.
pub fn single(event: &Event, streams: &StreamsConfig) -> Result<OutMessage, EncodeError> {
    let (schema, payload) = match event {
        Event::Trade(t) => encode_with(t)?,
        Event::Quote(q) => encode_with(q)?,
        Event::Post(p) => encode_with(p)?,
    };
    Ok(OutMessage {
        subject: streams.subject(&event.subject()),
        msg_id: event.msg_id(),
        schema,
        payload,
        events: 1,
        oldest_ts: Some(event.ts()),
    })
}

/// The id of a batch whose encoded payload is `payload`: the format of
/// [`insite_schemas::msgid::batch_msg_id`].
pub fn batch_id(prefix: &str, first_key: &str, payload: &[u8]) -> String {
    format!(
        "{prefix}:{first_key}:{:032x}",
        xxhash_rust::xxh3::xxh3_128(payload)
    )
}

fn batch_message<T: Clone>(
    events: Vec<T>,
    subject: String,
    prefix: &str,
    first_key: String,
    oldest_ts: Option<TimestampMs>,
) -> Result<OutMessage, EncodeError>
where
    Batch<T>: WireType,
{
    let count = u32::try_from(events.len()).unwrap_or(u32::MAX);
    let batch = Batch { events };
    // Sized for typical market events, so encoding rarely reallocates.
    let mut buf = Vec::with_capacity(16 + batch.events.len() * 112);
    wire::encode_into(&batch, &mut buf)?;
    let (schema, payload) = (wire::schema_of::<Batch<T>>(), Bytes::from(buf));
    Ok(OutMessage {
        subject,
        msg_id: batch_id(prefix, &first_key, &payload),
        schema,
        payload,
        events: count,
        oldest_ts,
    })
}

/// The message of a batch of one symbol's trades (`events` must not be
/// empty and must all have the first one's symbol).
pub fn trade_batch(
    events: Vec<Trade>,
    streams: &StreamsConfig,
) -> Result<Option<OutMessage>, EncodeError> {
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let subject = streams.subject(&subjects::trades(&first.symbol));
    let key = format!("t:{}:{}", first.symbol, first.ts);
    let oldest = events.iter().map(|t| t.ts).min();
    batch_message(events, subject, "tb", key, oldest).map(Some)
}

/// The message of a batch of one symbol's quotes.
pub fn quote_batch(
    events: Vec<Quote>,
    streams: &StreamsConfig,
) -> Result<Option<OutMessage>, EncodeError> {
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let subject = streams.subject(&subjects::quotes(&first.symbol));
    let key = format!("q:{}:{}", first.symbol, first.ts);
    let oldest = events.iter().map(|q| q.ts).min();
    batch_message(events, subject, "qb", key, oldest).map(Some)
}

/// The message of a batch of one source's posts.
pub fn post_batch(
    events: Vec<Post>,
    streams: &StreamsConfig,
) -> Result<Option<OutMessage>, EncodeError> {
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let subject = streams.subject(&subjects::posts(&first.source));
    let key = msgid::post_msg_id(first);
    let oldest = events.iter().map(|p| p.ts).min();
    batch_message(events, subject, "pb", key, oldest).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use insite_schemas::Symbol;

    fn trade(n: u32) -> Trade {
        Trade {
            symbol: Symbol::new("MSFT").unwrap(),
            ts: 1_700_000_000_000 + i64::from(n),
            price: 400.0 + f64::from(n),
            size: 100,
            exchange: "XNAS".into(),
            trade_id: n.to_string().into(),
            conditions: vec![],
        }
    }

    #[test]
    fn batch_ids_match_the_schema_crates_format() {
        let events = vec![trade(1), trade(2)];
        let msg = trade_batch(events.clone(), &StreamsConfig::default())
            .unwrap()
            .unwrap();
        let expected = msgid::batch_msg_id("tb", "t:MSFT:1700000000001", &Batch { events });
        assert_eq!(msg.msg_id, expected);
        assert_eq!(msg.subject, "md.trades.MSFT");
        assert_eq!(msg.events, 2);
        assert_eq!(msg.schema.to_string(), "trade_batch.v1");
    }

    #[test]
    fn batches_decode_transparently() {
        let events = vec![trade(1), trade(2), trade(3)];
        let msg = trade_batch(events.clone(), &StreamsConfig::default())
            .unwrap()
            .unwrap();
        let decoded = wire::decode_inbound(Some(&msg.schema.to_string()), &msg.payload).unwrap();
        assert_eq!(decoded, insite_schemas::Inbound::Trades(events));
    }

    #[test]
    fn different_batches_get_different_ids() {
        let a = trade_batch(vec![trade(1), trade(2)], &StreamsConfig::default()).unwrap();
        let b = trade_batch(vec![trade(1), trade(3)], &StreamsConfig::default()).unwrap();
        assert_ne!(a.unwrap().msg_id, b.unwrap().msg_id);
    }
}
