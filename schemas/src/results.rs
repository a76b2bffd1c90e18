//! Derived results: bars, sentiment windows, trending lists, alerts and late
//! events, as the pipeline publishes them on the DERIVED stream and writes
//! them to ClickHouse and Redis.

use serde::{Deserialize, Serialize};

use crate::symbol::Symbol;
use crate::time::{Interval, TimestampMs};

/// Whether a windowed result is the final one for its window or an
/// in-progress update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finality {
    /// The window is still open; a later update replaces this one.
    Provisional,
    /// The watermark passed the window's end; this result will not change.
    Final,
}

/// An OHLCV bar of one symbol over one epoch-aligned window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    /// The symbol.
    pub symbol: Symbol,
    /// The window length.
    pub interval: Interval,
    /// Start of the window, ms since the epoch (inclusive).
    pub window_start: TimestampMs,
    /// Price of the first trade by event time.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Price of the last trade by event time.
    pub close: f64,
    /// Total shares traded.
    pub volume: u64,
    /// Volume-weighted average price.
    pub vwap: f64,
    /// Number of trades.
    pub trades: u64,
    /// Final or provisional.
    pub finality: Finality,
}

/// Sentiment of the posts that mention one symbol within one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentWindow {
    /// The symbol.
    pub symbol: Symbol,
    /// The window length.
    pub interval: Interval,
    /// Start of the window, ms since the epoch.
    pub window_start: TimestampMs,
    /// Number of posts.
    pub posts: u64,
    /// Mean compound score, in [-1, 1].
    pub score: f64,
    /// Posts with a compound score of at least 0.05.
    pub positive: u64,
    /// Posts with a compound score of at most -0.05.
    pub negative: u64,
    /// The other posts.
    pub neutral: u64,
    /// Mean score weighted by `ln(1 + followers)` of each post's author (an
    /// author of unknown reach weighs as one follower).
    pub weighted_score: f64,
    /// Final or provisional.
    pub finality: Finality,
}

/// One symbol's place in a trending list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendingEntry {
    /// The symbol.
    pub symbol: Symbol,
    /// Mentions within the window.
    pub mentions: u64,
    /// Z-score of `mentions` against the symbol's own recent windows.
    pub zscore: f64,
}

/// The symbols most mentioned in one (sliding) window, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trending {
    /// The window length.
    pub interval: Interval,
    /// Start of the window, ms since the epoch.
    pub window_start: TimestampMs,
    /// Ranked entries, best first.
    pub entries: Vec<TrendingEntry>,
    /// Final or provisional.
    pub finality: Finality,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The price moved more than a threshold (relative) within a window.
    PriceMove,
    /// Volume within a window exceeded a multiple of its recent mean.
    VolumeSpike,
    /// Mean sentiment changed more than a threshold between windows.
    SentimentShift,
}

impl AlertKind {
    /// The kind as a stable lower-case word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PriceMove => "price_move",
            Self::VolumeSpike => "volume_spike",
            Self::SentimentShift => "sentiment_shift",
        }
    }
}

/// A threshold crossed by one symbol in one window; raised once per
/// (symbol, kind, interval, window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The symbol.
    pub symbol: Symbol,
    /// What crossed its threshold.
    pub kind: AlertKind,
    /// The window length.
    pub interval: Interval,
    /// Start of the window, ms since the epoch.
    pub window_start: TimestampMs,
    /// The measured value (relative move, volume ratio, score change).
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// A human-readable sentence.
    pub message: String,
}

/// What kind of input event arrived late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A trade.
    Trade,
    /// A quote.
    Quote,
    /// A post.
    Post,
}

impl EventKind {
    /// The kind as a stable lower-case word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trade => "trade",
            Self::Quote => "quote",
            Self::Post => "post",
        }
    }
}

/// An input event that arrived after the watermark passed its window's end:
/// counted, recorded, never silently dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LateEvent {
    /// What kind of event it was.
    pub kind: EventKind,
    /// The symbol it concerns.
    pub symbol: Symbol,
    /// Its event time.
    pub ts: TimestampMs,
    /// The watermark when it arrived.
    pub watermark: TimestampMs,
    /// A stable id of the event (trade id, post id or content hash).
    pub event_id: String,
}
