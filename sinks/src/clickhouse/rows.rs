//! One row type per ClickHouse table, in column order, with conversions
//! from the schema types. `DateTime` columns are whole seconds (`u32`); the
//! `*_ms` column beside each holds the exact milliseconds.
//!
//! Every row type names its table ([`Table::TABLE`]), and [`TABLES`] lists
//! them all: the one place in insite's writers where table names are
//! spelled (the migrations in `insite_schemas::migrations` create them; a
//! test here checks that the two agree).
//!
//! See `docs/schema.md` for every table and column.

use clickhouse::Row;
use insite_schemas::{
    Alert, Bar, LateEvent, Post, Quote, SentimentWindow, TimestampMs, Trade, Trending,
};
use serde::{Deserialize, Serialize};

/// A row type of one ClickHouse table.
pub trait Table {
    /// The table's name (unqualified: the client's database holds it).
    /// Called `TABLE`, not `NAME`: [`Row::NAME`] is the row struct's name.
    const TABLE: &'static str;
}

/// The least `version` a live pipeline or a replay stamps on result rows:
/// they use the wall clock in milliseconds at their start (well above
/// 10^12 since 2001). A backfill stamps its rows with the wall clock in
/// *seconds* ([`backfill_version`]), always below this, so that in a
/// `ReplacingMergeTree(version)` a live final always wins over a backfilled
/// row for the same window, and a later backfill over an earlier one.
pub const LIVE_VERSION_FLOOR: u64 = 1_000_000_000_000;

/// The version of a backfill's result rows, started at `now_ms`: its
/// wall-clock second (below [`LIVE_VERSION_FLOOR`]).
pub fn backfill_version(now_ms: TimestampMs) -> u64 {
    (millis(now_ms) / 1_000).clamp(1, LIVE_VERSION_FLOOR - 1)
}

/// The raw and result tables, which a backfill fills in a staging
/// database and then copies: [`TABLES`] without the pipeline's own
/// progress records.
pub const DATA_TABLES: [&str; 8] = [
    TradeRow::TABLE,
    QuoteRow::TABLE,
    PostRow::TABLE,
    BarRow::TABLE,
    SentimentRow::TABLE,
    TrendingRow::TABLE,
    AlertRow::TABLE,
    LateEventRow::TABLE,
];

/// Every table insite writes, in the order of the migrations that create
/// them: the raw events, the results, late events, then the durable
/// frontier (`pipeline_progress`, superseded by `pipeline_checkpoints`).
pub const TABLES: [&str; 10] = [
    TradeRow::TABLE,
    QuoteRow::TABLE,
    PostRow::TABLE,
    BarRow::TABLE,
    SentimentRow::TABLE,
    TrendingRow::TABLE,
    AlertRow::TABLE,
    LateEventRow::TABLE,
    ProgressRow::TABLE,
    CheckpointRow::TABLE,
];

/// Names the table of each row type.
macro_rules! tables {
    ($($row:ty => $name:literal),* $(,)?) => {
        $(impl Table for $row {
            const TABLE: &'static str = $name;
        })*
    };
}

tables! {
    TradeRow => "trades",
    QuoteRow => "quotes",
    PostRow => "posts",
    BarRow => "bars",
    SentimentRow => "sentiment",
    TrendingRow => "trending",
    AlertRow => "alerts",
    LateEventRow => "late_events",
    ProgressRow => "pipeline_progress",
    CheckpointRow => "pipeline_checkpoints",
}

/// Seconds of a millisecond timestamp, clamped to `DateTime`'s range.
pub fn datetime_secs(ts: TimestampMs) -> u32 {
    u32::try_from(ts.div_euclid(1_000)).unwrap_or(if ts < 0 { 0 } else { u32::MAX })
}

/// A millisecond timestamp as the unsigned column type (negative clamps to 0).
pub fn millis(ts: TimestampMs) -> u64 {
    u64::try_from(ts).unwrap_or(0)
}

/// A row of `bars`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct BarRow {
    /// Symbol.
    pub symbol: String,
    /// Interval in seconds.
    pub interval_s: u32,
    /// Window start, seconds.
    pub window_start: u32,
    /// Window start, ms.
    pub window_start_ms: u64,
    /// First price.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Last price.
    pub close: f64,
    /// Shares traded.
    pub volume: u64,
    /// Volume-weighted average price.
    pub vwap: f64,
    /// Trade count.
    pub trades: u64,
    /// Version for `ReplacingMergeTree` (the highest wins).
    pub version: u64,
}

impl BarRow {
    /// The row of a bar, with `version`.
    pub fn from_bar(bar: &Bar, version: u64) -> Self {
        Self {
            symbol: bar.symbol.as_str().to_owned(),
            interval_s: bar.interval.seconds(),
            window_start: datetime_secs(bar.window_start),
            window_start_ms: millis(bar.window_start),
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
            vwap: bar.vwap,
            trades: bar.trades,
            version,
        }
    }
}

/// A row of `sentiment`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct SentimentRow {
    /// Symbol.
    pub symbol: String,
    /// Interval in seconds.
    pub interval_s: u32,
    /// Window start, seconds.
    pub window_start: u32,
    /// Window start, ms.
    pub window_start_ms: u64,
    /// Posts.
    pub posts: u64,
    /// Mean compound score in [-1, 1].
    pub score: f64,
    /// Positive posts.
    pub positive: u64,
    /// Negative posts.
    pub negative: u64,
    /// Neutral posts.
    pub neutral: u64,
    /// Author-weighted mean score.
    pub weighted_score: f64,
    /// Version.
    pub version: u64,
}

impl SentimentRow {
    /// The row of a sentiment window, with `version`.
    pub fn from_window(w: &SentimentWindow, version: u64) -> Self {
        Self {
            symbol: w.symbol.as_str().to_owned(),
            interval_s: w.interval.seconds(),
            window_start: datetime_secs(w.window_start),
            window_start_ms: millis(w.window_start),
            posts: w.posts,
            score: w.score,
            positive: w.positive,
            negative: w.negative,
            neutral: w.neutral,
            weighted_score: w.weighted_score,
            version,
        }
    }
}

/// A row of `trades`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct TradeRow {
    /// Symbol.
    pub symbol: String,
    /// Event time, seconds.
    pub ts: u32,
    /// Event time, ms.
    pub ts_ms: u64,
    /// Price.
    pub price: f64,
    /// Shares.
    pub size: u64,
    /// Venue.
    pub exchange: String,
    /// Venue trade id.
    pub trade_id: String,
    /// Condition codes.
    pub conditions: Vec<String>,
}

impl From<&Trade> for TradeRow {
    fn from(t: &Trade) -> Self {
        Self {
            symbol: t.symbol.as_str().to_owned(),
            ts: datetime_secs(t.ts),
            ts_ms: millis(t.ts),
            price: t.price,
            size: t.size,
            exchange: t.exchange.as_str().to_owned(),
            trade_id: t.trade_id.as_str().to_owned(),
            conditions: t.conditions.iter().map(|c| c.as_str().to_owned()).collect(),
        }
    }
}

/// A row of `quotes`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct QuoteRow {
    /// Symbol.
    pub symbol: String,
    /// Event time, seconds.
    pub ts: u32,
    /// Event time, ms.
    pub ts_ms: u64,
    /// Bid.
    pub bid: f64,
    /// Bid size.
    pub bid_size: u64,
    /// Ask.
    pub ask: f64,
    /// Ask size.
    pub ask_size: u64,
}

impl From<&Quote> for QuoteRow {
    fn from(q: &Quote) -> Self {
        Self {
            symbol: q.symbol.as_str().to_owned(),
            ts: datetime_secs(q.ts),
            ts_ms: millis(q.ts),
            bid: q.bid,
            bid_size: q.bid_size,
            ask: q.ask,
            ask_size: q.ask_size,
        }
    }
}

/// A row of `posts`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct PostRow {
    /// Source.
    pub source: String,
    /// The source's post id.
    pub id: String,
    /// Author.
    pub author: String,
    /// Event time, seconds.
    pub ts: u32,
    /// Event time, ms.
    pub ts_ms: u64,
    /// Text.
    pub text: String,
    /// Symbols mentioned.
    pub cashtags: Vec<String>,
    /// Author's followers (0 when unknown).
    pub author_followers: u64,
    /// Compound sentiment score in [-1, 1].
    pub score: f64,
}

impl PostRow {
    /// The row of a scored post.
    pub fn from_post(p: &Post, score: f64) -> Self {
        Self {
            source: p.source.to_string(),
            id: p.id.clone(),
            author: p.author.clone(),
            ts: datetime_secs(p.ts),
            ts_ms: millis(p.ts),
            text: p.text.clone(),
            cashtags: p.cashtags.iter().map(ToString::to_string).collect(),
            author_followers: p.author_followers.unwrap_or(0),
            score,
        }
    }
}

/// A row of `trending` (one per ranked symbol).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct TrendingRow {
    /// Interval in seconds.
    pub interval_s: u32,
    /// Window start, seconds.
    pub window_start: u32,
    /// Window start, ms.
    pub window_start_ms: u64,
    /// Rank, 1 = most mentioned.
    pub rank: u32,
    /// Symbol.
    pub symbol: String,
    /// Mentions in the window.
    pub mentions: u64,
    /// Z-score against the symbol's baseline.
    pub zscore: f64,
    /// Version.
    pub version: u64,
}

impl TrendingRow {
    /// The rows of a trending list, with `version`.
    pub fn from_trending(t: &Trending, version: u64) -> Vec<Self> {
        t.entries
            .iter()
            .zip(1u32..)
            .map(|(e, rank)| Self {
                interval_s: t.interval.seconds(),
                window_start: datetime_secs(t.window_start),
                window_start_ms: millis(t.window_start),
                rank,
                symbol: e.symbol.as_str().to_owned(),
                mentions: e.mentions,
                zscore: e.zscore,
                version,
            })
            .collect()
    }
}

/// A row of `alerts`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct AlertRow {
    /// Symbol.
    pub symbol: String,
    /// `price_move`, `volume_spike` or `sentiment_shift`.
    pub kind: String,
    /// Interval in seconds.
    pub interval_s: u32,
    /// Window start, seconds.
    pub window_start: u32,
    /// Window start, ms.
    pub window_start_ms: u64,
    /// Measured value.
    pub value: f64,
    /// Threshold crossed.
    pub threshold: f64,
    /// Sentence.
    pub message: String,
    /// Version.
    pub version: u64,
}

impl AlertRow {
    /// The row of an alert, with `version`.
    pub fn from_alert(a: &Alert, version: u64) -> Self {
        Self {
            symbol: a.symbol.as_str().to_owned(),
            kind: a.kind.as_str().to_owned(),
            interval_s: a.interval.seconds(),
            window_start: datetime_secs(a.window_start),
            window_start_ms: millis(a.window_start),
            value: a.value,
            threshold: a.threshold,
            message: a.message.clone(),
            version,
        }
    }
}

/// A row of `late_events`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct LateEventRow {
    /// `trade`, `quote` or `post`.
    pub kind: String,
    /// Symbol.
    pub symbol: String,
    /// Event time, seconds.
    pub ts: u32,
    /// Event time, ms.
    pub ts_ms: u64,
    /// Watermark on arrival, ms.
    pub watermark_ms: u64,
    /// Event id.
    pub event_id: String,
    /// When it was recorded (processing time), seconds.
    pub received_at: u32,
}

impl LateEventRow {
    /// The row of a late event recorded at `received_at` (ms).
    pub fn from_late(e: &LateEvent, received_at: TimestampMs) -> Self {
        Self {
            kind: e.kind.as_str().to_owned(),
            symbol: e.symbol.as_str().to_owned(),
            ts: datetime_secs(e.ts),
            ts_ms: millis(e.ts),
            watermark_ms: millis(e.watermark),
            event_id: e.event_id.clone(),
            received_at: datetime_secs(received_at),
        }
    }
}

/// A row of `pipeline_progress`: how far one pipeline's results are durable.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ProgressRow {
    /// The pipeline's name (its durable consumers share it).
    pub pipeline: String,
    /// Every result stamped before this event time is in ClickHouse, ms.
    pub durable_ms: i64,
    /// When it was written, seconds.
    pub updated_at: u32,
    /// Version for `ReplacingMergeTree` (the highest wins).
    pub version: u64,
}

/// A row of `pipeline_checkpoints`: for one pipeline (or one process of
/// it) and one input stream, how far results are durable and where a
/// restart resumes reading (see migration 4).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct CheckpointRow {
    /// The pipeline's name (the row a restart reads), or `<name>/<process>`.
    pub pipeline: String,
    /// The input stream: `market` or `social`.
    pub source: String,
    /// Results of this stream's windows ending before it are durable, ms.
    pub durable_ms: i64,
    /// Every message at or below this stream sequence is finished with.
    pub resume_seq: u64,
    /// The stream's event-time clock after `resume_seq` (`i64::MIN`: none).
    pub max_ts_ms: i64,
    /// When it was written, seconds.
    pub updated_at: u32,
    /// Version for `ReplacingMergeTree` (the highest wins).
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use insite_schemas::migrations::{MIGRATIONS, MIGRATIONS_TABLE};

    use super::*;

    /// The tables left once every migration has run (creates, drops and
    /// renames followed in order), sorted.
    fn created() -> Vec<String> {
        let first_word = |text: &str| text.split([' ', '(', ',']).next().map(str::to_owned);
        let mut tables: Vec<String> = Vec::new();
        let features = insite_schemas::server::Features::NONE;
        for statement in MIGRATIONS.iter().flat_map(|m| m.statements(&features)) {
            if let Some(rest) = statement.strip_prefix("CREATE TABLE IF NOT EXISTS ") {
                tables.extend(first_word(rest));
            } else if let Some(rest) = statement.strip_prefix("DROP TABLE IF EXISTS ") {
                let name = first_word(rest).unwrap();
                tables.retain(|t| *t != name);
            } else if let Some(rest) = statement.strip_prefix("RENAME TABLE ") {
                for pair in rest.split(',') {
                    let words: Vec<&str> = pair.split_whitespace().collect();
                    let [from, "TO", to] = words.as_slice() else {
                        panic!("unexpected RENAME: {statement}");
                    };
                    tables.retain(|t| t != from);
                    tables.push((*to).to_owned());
                }
            }
        }
        tables.sort();
        tables.dedup();
        tables
    }

    #[test]
    fn the_table_list_is_what_the_migrations_create() {
        let mut listed: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
        listed.sort();
        assert_eq!(created(), listed);
        assert!(!TABLES.contains(&MIGRATIONS_TABLE));
    }
}
