//! The wire format: MessagePack payloads with field names, typed by the
//! `Insite-Schema` header.
//!
//! A message carries either one event or a batch of events (for throughput),
//! and its header names which: `trade.v1` or `trade_batch.v1`. Readers call
//! [`decode_inbound`] and get a flat list of events either way.
//!
//! ```
//! use insite_schemas::{wire, Trade, Symbol, Inbound};
//! let trade = Trade {
//!     symbol: Symbol::new("AAPL").unwrap(), ts: 1_700_000_000_000, price: 189.5, size: 100,
//!     exchange: "XNAS".into(), trade_id: "42".into(), conditions: vec![],
//! };
//! let payload = wire::encode(&trade).unwrap();
//! let header = wire::schema_of::<Trade>().to_string();
//! assert_eq!(header, "trade.v1");
//! let decoded = wire::decode_inbound(Some(&header), &payload).unwrap();
//! assert_eq!(decoded, Inbound::Trades(vec![trade]));
//! ```

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{DecodeError, EncodeError, InvalidValue};
use crate::events::{ClockTick, Post, Quote, Trade};
use crate::results::{Alert, Bar, LateEvent, SentimentWindow, Trending};

/// Header naming a message's schema, as `<type>.v<N>`.
pub const SCHEMA_HEADER: &str = "Insite-Schema";
/// JetStream's de-duplication header.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
/// Dead-letter header: why the message was rejected.
pub const DLQ_REASON_HEADER: &str = "Insite-Error";
/// Dead-letter header: a short code for the kind of failure.
pub const DLQ_KIND_HEADER: &str = "Insite-Error-Kind";
/// Dead-letter header: the subject the message was first published on.
pub const DLQ_SUBJECT_HEADER: &str = "Insite-Original-Subject";
/// Dead-letter header: the stage that rejected the message.
pub const DLQ_STAGE_HEADER: &str = "Insite-Stage";

/// The types of payload insite puts on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SchemaKind {
    /// One [`Trade`].
    Trade,
    /// A [`Batch`] of trades.
    TradeBatch,
    /// One [`Quote`].
    Quote,
    /// A [`Batch`] of quotes.
    QuoteBatch,
    /// One [`Post`].
    Post,
    /// A [`Batch`] of posts.
    PostBatch,
    /// A [`Bar`].
    Bar,
    /// A [`SentimentWindow`].
    Sentiment,
    /// A [`Trending`] list.
    Trending,
    /// An [`Alert`].
    Alert,
    /// A [`LateEvent`].
    LateEvent,
    /// A [`ClockTick`].
    Clock,
}

impl SchemaKind {
    const ALL: [SchemaKind; 12] = [
        Self::Trade,
        Self::TradeBatch,
        Self::Quote,
        Self::QuoteBatch,
        Self::Post,
        Self::PostBatch,
        Self::Bar,
        Self::Sentiment,
        Self::Trending,
        Self::Alert,
        Self::LateEvent,
        Self::Clock,
    ];

    /// The type's name in the header.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trade => "trade",
            Self::TradeBatch => "trade_batch",
            Self::Quote => "quote",
            Self::QuoteBatch => "quote_batch",
            Self::Post => "post",
            Self::PostBatch => "post_batch",
            Self::Bar => "bar",
            Self::Sentiment => "sentiment",
            Self::Trending => "trending",
            Self::Alert => "alert",
            Self::LateEvent => "late_event",
            Self::Clock => "clock",
        }
    }

    /// The newest version of this type that this build reads and writes.
    pub fn current_version(self) -> u32 {
        1
    }
}

/// A schema name and version, as in the `Insite-Schema` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SchemaId {
    /// The payload type.
    pub kind: SchemaKind,
    /// Its version.
    pub version: u32,
}

impl SchemaId {
    /// The current version of `kind`.
    pub fn current(kind: SchemaKind) -> Self {
        Self {
            kind,
            version: kind.current_version(),
        }
    }

    /// Parses a header value and checks that this reader knows the type and
    /// version.
    pub fn parse_supported(header: &str) -> Result<Self, DecodeError> {
        let id: SchemaId = header
            .parse()
            .map_err(|_| DecodeError::UnknownSchema(header.to_owned()))?;
        let supported = id.kind.current_version();
        if id.version == 0 || id.version > supported {
            return Err(DecodeError::UnsupportedVersion {
                kind: id.kind.name(),
                version: id.version,
                supported,
            });
        }
        Ok(id)
    }
}

impl fmt::Display for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.v{}", self.kind.name(), self.version)
    }
}

impl FromStr for SchemaId {
    type Err = InvalidValue;
    fn from_str(header: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidValue::new("schema", format!("{header:?} is not <type>.v<N>"));
        let (name, version) = header.rsplit_once(".v").ok_or_else(bad)?;
        let kind = SchemaKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| InvalidValue::new("schema", format!("unknown type {name:?}")))?;
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let version = version.parse().map_err(|_| bad())?;
        Ok(Self { kind, version })
    }
}

/// A type that travels on the wire under a schema id.
pub trait WireType: Serialize + DeserializeOwned {
    /// The type's schema kind.
    const KIND: SchemaKind;
}

macro_rules! wire_type {
    ($($ty:ty => $kind:ident),* $(,)?) => {
        $(impl WireType for $ty { const KIND: SchemaKind = SchemaKind::$kind; })*
    };
}

wire_type! {
    Trade => Trade,
    Batch<Trade> => TradeBatch,
    Quote => Quote,
    Batch<Quote> => QuoteBatch,
    Post => Post,
    Batch<Post> => PostBatch,
    Bar => Bar,
    SentimentWindow => Sentiment,
    Trending => Trending,
    Alert => Alert,
    LateEvent => LateEvent,
    ClockTick => Clock,
}

/// The schema id (current version) of a wire type.
pub fn schema_of<T: WireType>() -> SchemaId {
    SchemaId::current(T::KIND)
}

/// Several events in one message. Market batches hold one symbol's events
/// (so a batch goes on that symbol's subject); post batches one source's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch<T> {
    /// The events, in the order they were produced.
    pub events: Vec<T>,
}

/// Encodes a value as MessagePack with field names.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    Ok(rmp_serde::to_vec_named(value)?)
}

/// Encodes a value as MessagePack with field names, appending to `buf`.
pub fn encode_into<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    value.serialize(&mut rmp_serde::Serializer::new(buf).with_struct_map())?;
    Ok(())
}

/// Decodes a MessagePack value; `schema` only names the type in the error.
pub fn decode<T: DeserializeOwned>(schema: SchemaId, payload: &[u8]) -> Result<T, DecodeError> {
    rmp_serde::from_slice(payload).map_err(|source| DecodeError::Malformed {
        schema: schema.to_string(),
        source,
    })
}

/// Input events decoded from one inbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// Trades (one, or a batch).
    Trades(Vec<Trade>),
    /// Quotes (one, or a batch).
    Quotes(Vec<Quote>),
    /// Posts (one, or a batch).
    Posts(Vec<Post>),
}

impl Inbound {
    /// Number of events.
    pub fn len(&self) -> usize {
        match self {
            Self::Trades(v) => v.len(),
            Self::Quotes(v) => v.len(),
            Self::Posts(v) => v.len(),
        }
    }

    /// The latest event time among the events (`None`: no events).
    pub fn max_ts(&self) -> Option<crate::TimestampMs> {
        match self {
            Self::Trades(v) => v.iter().map(|e| e.ts).max(),
            Self::Quotes(v) => v.iter().map(|e| e.ts).max(),
            Self::Posts(v) => v.iter().map(|e| e.ts).max(),
        }
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decodes and validates an inbound message (a trade, quote or post, or a
/// batch of one of them) from its `Insite-Schema` header and payload.
///
/// Every event is validated; one bad event rejects the whole message, so a
/// message is either taken whole or dead-lettered whole.
pub fn decode_inbound(schema_header: Option<&str>, payload: &[u8]) -> Result<Inbound, DecodeError> {
    let schema = SchemaId::parse_supported(schema_header.ok_or(DecodeError::MissingSchema)?)?;
    let invalid = |source| DecodeError::Invalid {
        schema: schema.to_string(),
        source,
    };
    let inbound = match schema.kind {
        SchemaKind::Trade => Inbound::Trades(vec![decode(schema, payload)?]),
        SchemaKind::TradeBatch => Inbound::Trades(decode::<Batch<Trade>>(schema, payload)?.events),
        SchemaKind::Quote => Inbound::Quotes(vec![decode(schema, payload)?]),
        SchemaKind::QuoteBatch => Inbound::Quotes(decode::<Batch<Quote>>(schema, payload)?.events),
        SchemaKind::Post => Inbound::Posts(vec![decode(schema, payload)?]),
        SchemaKind::PostBatch => Inbound::Posts(decode::<Batch<Post>>(schema, payload)?.events),
        _ => {
            return Err(DecodeError::UnexpectedSchema {
                schema: schema.to_string(),
                expected: "trade, trade_batch, quote, quote_batch, post, post_batch",
            })
        }
    };
    match &inbound {
        Inbound::Trades(v) => v.iter().try_for_each(Trade::validate).map_err(invalid)?,
        Inbound::Quotes(v) => v.iter().try_for_each(Quote::validate).map_err(invalid)?,
        Inbound::Posts(v) => v.iter().try_for_each(Post::validate).map_err(invalid)?,
    }
    Ok(inbound)
}

/// Decodes and validates a [`ClockTick`] from its `Insite-Schema` header
/// and payload.
pub fn decode_clock(schema_header: Option<&str>, payload: &[u8]) -> Result<ClockTick, DecodeError> {
    let tick: ClockTick = decode_result(schema_header, payload)?;
    tick.validate().map_err(|source| DecodeError::Invalid {
        schema: SchemaId::current(SchemaKind::Clock).to_string(),
        source,
    })?;
    Ok(tick)
}

/// Decodes a derived result of type `T`, checking the header names `T`.
pub fn decode_result<T: WireType>(
    schema_header: Option<&str>,
    payload: &[u8],
) -> Result<T, DecodeError> {
    let schema = SchemaId::parse_supported(schema_header.ok_or(DecodeError::MissingSchema)?)?;
    if schema.kind != T::KIND {
        return Err(DecodeError::UnexpectedSchema {
            schema: schema.to_string(),
            expected: T::KIND.name(),
        });
    }
    decode(schema, payload)
}
