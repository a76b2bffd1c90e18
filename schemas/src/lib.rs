//! # insite-schemas
//!
//! The contract every insite stage shares: what travels on NATS, how it is
//! encoded and named, and what ClickHouse stores.
//!
//! ## Layout
//! - [`symbol`]: validated [`Symbol`]s and [`SourceName`]s.
//! - [`time`]: event time ([`TimestampMs`], milliseconds since the epoch) and
//!   window [`Interval`]s.
//! - [`events`]: raw input, [`Trade`], [`Quote`], [`Post`], and the
//!   [`ClockTick`] an idle input stream's watermark advances by.
//! - [`results`]: derived output, [`Bar`], [`SentimentWindow`],
//!   [`Trending`], [`Alert`], [`LateEvent`].
//! - [`wire`]: MessagePack with field names, the `Insite-Schema` header and
//!   its version check, batches, [`wire::decode_inbound`].
//! - [`msgid`]: stable `Nats-Msg-Id` values.
//! - [`subjects`]: subject builders and a validating parser.
//! - [`migrations`]: the versioned ClickHouse DDL, rendered per server.
//! - [`server`]: a server's [`server::ServerVersion`] and the
//!   [`server::Features`] it has (`LowCardinality`, `TTL`, `DateTime64`).
//! - [`retention`]: the `TTL` statements of the raw tables.
//! - [`config`]: connection and stream settings.
//! - [`error`]: typed errors ([`DecodeError`], [`InvalidValue`]).
//! - `fixtures` (feature `test-fixtures`): builders of plain values for
//!   tests (`fixtures::bar` among them).
//!
//! Decoding never panics: garbage gives a [`DecodeError`] that says what was
//! wrong, for the dead-letter subject.

#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod events;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
pub mod migrations;
pub mod msgid;
pub mod results;
pub mod retention;
pub mod server;
pub mod subjects;
pub mod symbol;
pub mod time;
pub mod wire;

pub use error::{DecodeError, EncodeError, InvalidValue};
pub use events::{ClockTick, Post, Quote, Trade};
pub use results::{
    Alert, AlertKind, Bar, EventKind, Finality, LateEvent, SentimentWindow, Trending, TrendingEntry,
};
pub use symbol::{SourceName, Symbol};
pub use time::{Interval, TimestampMs};
pub use wire::{Batch, Inbound, SchemaId, SchemaKind};
