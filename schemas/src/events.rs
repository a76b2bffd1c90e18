//! Raw input events: trades, quotes and social posts.
//!
//! Optional fields carry `#[serde(default)]` so that a writer may leave them
//! out, and readers ignore fields they do not know, so a field can be added
//! in a later version without breaking old readers.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::error::InvalidValue;
use crate::symbol::{SourceName, Symbol};
use crate::time::{check_event_time, TimestampMs};

/// One executed trade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    /// The traded symbol.
    pub symbol: Symbol,
    /// Event time (execution time), ms since the epoch.
    pub ts: TimestampMs,
    /// Execution price; finite and positive.
    pub price: f64,
    /// Number of shares; positive.
    pub size: u64,
    /// Venue code (e.g. `XNAS`); empty when unknown.
    #[serde(default)]
    pub exchange: CompactString,
    /// The venue's trade id; empty when unknown (the message id then falls
    /// back to a hash of the content).
    #[serde(default)]
    pub trade_id: CompactString,
    /// Sale condition codes, as the venue reports them.
    #[serde(default)]
    pub conditions: Vec<CompactString>,
}

impl Trade {
    /// Checks the rules a trade must follow.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check_event_time("ts", self.ts)?;
        check_price("price", self.price)?;
        if self.size == 0 {
            return Err(InvalidValue::new("size", "a trade's size must be positive"));
        }
        Ok(())
    }
}

/// A top-of-book quote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// The quoted symbol.
    pub symbol: Symbol,
    /// Event time, ms since the epoch.
    pub ts: TimestampMs,
    /// Best bid price; finite and positive.
    pub bid: f64,
    /// Shares at the best bid.
    pub bid_size: u64,
    /// Best ask price; finite and positive.
    pub ask: f64,
    /// Shares at the best ask.
    pub ask_size: u64,
}

impl Quote {
    /// Checks the rules a quote must follow (a crossed book is allowed: venues
    /// report them).
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check_event_time("ts", self.ts)?;
        check_price("bid", self.bid)?;
        check_price("ask", self.ask)?;
        Ok(())
    }
}

/// The longest post text accepted, in bytes.
pub const MAX_POST_TEXT_BYTES: usize = 64 * 1024;

/// A social post or news headline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Post {
    /// The source's own id of the post (unique within the source).
    pub id: String,
    /// Where the post comes from (`x`, `reddit`, `stocktwits`, `news`, ...).
    pub source: SourceName,
    /// The author's handle or name.
    #[serde(default)]
    pub author: String,
    /// Event time (publication time), ms since the epoch.
    pub ts: TimestampMs,
    /// The text.
    pub text: String,
    /// Symbols the post is about. Empty means "not yet extracted": the
    /// pipeline then extracts cashtags from the text.
    #[serde(default)]
    pub cashtags: Vec<Symbol>,
    /// The author's reach (followers, karma), used to weight sentiment.
    #[serde(default)]
    pub author_followers: Option<u64>,
}

impl Post {
    /// Checks the rules a post must follow.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check_event_time("ts", self.ts)?;
        if self.id.is_empty() || self.id.len() > 256 {
            return Err(InvalidValue::new(
                "id",
                "a post id must have 1 to 256 bytes",
            ));
        }
        if self.text.len() > MAX_POST_TEXT_BYTES {
            return Err(InvalidValue::new(
                "text",
                format!(
                    "{} bytes is over the limit of {MAX_POST_TEXT_BYTES}",
                    self.text.len()
                ),
            ));
        }
        Ok(())
    }
}

pub(crate) fn check_price(field: &'static str, value: f64) -> Result<(), InvalidValue> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(InvalidValue::new(
            field,
            format!("{value} is not a finite positive price"),
        ))
    }
}

/// A clock tick: "this stream's event time has reached `ts`", written into
/// an input stream by the pipeline while the stream is idle (on
/// `md.clock.<origin>` or `social.clock.<origin>`), so that an idle
/// stream's watermark advances *through the stream itself*: a replay or a
/// restart reads the same ticks at the same stream positions and so closes
/// the same windows at the same points. It carries no data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockTick {
    /// The event time the stream has reached, ms since the epoch.
    pub ts: TimestampMs,
    /// Who wrote it (a pipeline's name), as in its subject.
    pub origin: SourceName,
}

impl ClockTick {
    /// Checks the rules a tick must follow.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check_event_time("ts", self.ts)
    }
}
