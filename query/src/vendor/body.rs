//! The vendor's JSON shapes, field for field: aggregates (`o`, `h`, `l`,
//! `c`, `v`, `vw`, `t`, `n`, and `T` where the vendor names the ticker),
//! last trade and quote (`T`, `p`, `s`, `t` in nanoseconds, `x`, `i`, `c`;
//! `P`, `S`, `p`, `s`), snapshots, and the `request_id` every answer
//! carries.

use std::sync::atomic::{AtomicU64, Ordering};

use insite_schemas::{Quote, TimestampMs, Trade};
use serde::Serialize;
use utoipa::ToSchema;

use super::rollup::Granule;

/// A request id: unique within the process, not guessable across
/// restarts (a hash of the start time and a counter).
pub fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let hash = xxhash_rust::xxh3::xxh3_128(&[seed.to_le_bytes(), n.to_le_bytes()].concat());
    format!("{hash:032x}")
}

/// One aggregate bar.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VendorAgg {
    /// The ticker (grouped daily and previous close only).
    #[serde(rename = "T", skip_serializing_if = "Option::is_none")]
    pub ticker: Option<String>,
    /// Volume.
    pub v: f64,
    /// Volume-weighted average price.
    pub vw: f64,
    /// Open.
    pub o: f64,
    /// Close.
    pub c: f64,
    /// High.
    pub h: f64,
    /// Low.
    pub l: f64,
    /// Start of the bucket, ms since the epoch.
    pub t: i64,
    /// Number of trades.
    pub n: u64,
}

impl VendorAgg {
    /// The aggregate of a rolled-up bucket.
    pub fn of(g: &Granule, ticker: Option<&str>) -> Self {
        Self {
            ticker: ticker.map(str::to_owned),
            v: g.volume as f64,
            vw: g.vwap(),
            o: g.open,
            c: g.close,
            h: g.high,
            l: g.low,
            t: g.start,
            n: g.trades,
        }
    }
}

/// Aggregates of one ticker over a range (also the previous close).
#[derive(Debug, Serialize, ToSchema)]
pub struct VendorAggsResponse {
    /// The ticker.
    pub ticker: String,
    /// Always `false`: prices are as traded.
    pub adjusted: bool,
    /// Bars read to make the results (granules of stored bars).
    #[serde(rename = "queryCount")]
    pub query_count: usize,
    /// Results in this page.
    #[serde(rename = "resultsCount")]
    pub results_count: usize,
    /// Results in this page.
    pub count: usize,
    /// The aggregates (always present, possibly empty).
    pub results: Vec<VendorAgg>,
    /// `OK`.
    pub status: &'static str,
    /// This request's id.
    pub request_id: String,
    /// The next page, when more results follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_url: Option<String>,
}

/// Daily bars of every ticker on one day.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupedDailyResponse {
    /// Always `false`.
    pub adjusted: bool,
    /// Tickers with bars that day.
    #[serde(rename = "queryCount")]
    pub query_count: usize,
    /// Tickers with bars that day.
    #[serde(rename = "resultsCount")]
    pub results_count: usize,
    /// One aggregate per ticker, with `T`.
    pub results: Vec<VendorAgg>,
    /// `OK`.
    pub status: &'static str,
    /// This request's id.
    pub request_id: String,
}

/// One ticker's day: open, high, low, close, volume, pre-market open and
/// after-hours close.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenCloseResponse {
    /// `OK`.
    pub status: &'static str,
    /// The day, `YYYY-MM-DD`.
    pub from: String,
    /// The ticker.
    pub symbol: String,
    /// First price of the day.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Last price of the day.
    pub close: f64,
    /// Shares traded.
    pub volume: f64,
    /// The close of the last bar starting at or after 16:00 New York.
    #[serde(rename = "afterHours", skip_serializing_if = "Option::is_none")]
    pub after_hours: Option<f64>,
    /// The open of the first bar, when it starts before 09:30 New York.
    #[serde(rename = "preMarket", skip_serializing_if = "Option::is_none")]
    pub pre_market: Option<f64>,
}

/// A trade, as the vendor's last trade and snapshot `lastTrade`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VendorTrade {
    /// The ticker (last trade only).
    #[serde(rename = "T", skip_serializing_if = "Option::is_none")]
    pub ticker: Option<String>,
    /// Price.
    pub p: f64,
    /// Size.
    pub s: u64,
    /// Time, ns since the epoch.
    pub t: i64,
    /// The same time (insite has one time per trade), ns.
    pub y: i64,
    /// The venue's trade id.
    pub i: String,
    /// The vendor's exchange id, when the venue is one it numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<u32>,
    /// Numeric condition codes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub c: Vec<u32>,
}

/// A quote, as the vendor's last NBBO and snapshot `lastQuote`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VendorQuote {
    /// The ticker (last quote only).
    #[serde(rename = "T", skip_serializing_if = "Option::is_none")]
    pub ticker: Option<String>,
    /// Ask price.
    #[serde(rename = "P")]
    pub ask_price: f64,
    /// Ask size.
    #[serde(rename = "S")]
    pub ask_size: u64,
    /// Bid price.
    pub p: f64,
    /// Bid size.
    pub s: u64,
    /// Time, ns since the epoch.
    pub t: i64,
    /// The same time, ns.
    pub y: i64,
}

/// Nanoseconds of a millisecond time.
fn nanos(ms: TimestampMs) -> i64 {
    ms.saturating_mul(1_000_000)
}

/// The vendor's numeric id of a venue (ISO 10383 MIC), when it has one.
pub fn exchange_id(venue: &str) -> Option<u32> {
    if let Ok(n) = venue.parse() {
        return Some(n);
    }
    Some(match venue {
        "XASE" => 1,
        "XBOS" => 2,
        "XCIS" => 3,
        "FINR" | "XADF" => 4,
        "XISX" => 6,
        "EDGA" => 7,
        "EDGX" => 8,
        "XCHI" => 9,
        "XNYS" => 10,
        "ARCX" => 11,
        "XNAS" => 12,
        "LTSE" => 14,
        "IEXG" => 15,
        "XPHL" => 17,
        "BATY" => 18,
        "BATS" => 19,
        "EPRL" => 20,
        "MEMX" => 21,
        _ => return None,
    })
}

impl VendorTrade {
    /// The vendor's form of a trade.
    pub fn of(t: &Trade, with_ticker: bool) -> Self {
        Self {
            ticker: with_ticker.then(|| t.symbol.to_string()),
            p: t.price,
            s: t.size,
            t: nanos(t.ts),
            y: nanos(t.ts),
            i: t.trade_id.to_string(),
            x: exchange_id(&t.exchange),
            c: t.conditions.iter().filter_map(|c| c.parse().ok()).collect(),
        }
    }
}

impl VendorQuote {
    /// The vendor's form of a quote.
    pub fn of(q: &Quote, with_ticker: bool) -> Self {
        Self {
            ticker: with_ticker.then(|| q.symbol.to_string()),
            ask_price: q.ask,
            ask_size: q.ask_size,
            p: q.bid,
            s: q.bid_size,
            t: nanos(q.ts),
            y: nanos(q.ts),
        }
    }
}

/// The last trade of a ticker.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastTradeResponse {
    /// `OK`.
    pub status: &'static str,
    /// This request's id.
    pub request_id: String,
    /// The trade.
    pub results: VendorTrade,
}

/// The last quote of a ticker.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastQuoteResponse {
    /// `OK`.
    pub status: &'static str,
    /// This request's id.
    pub request_id: String,
    /// The quote.
    pub results: VendorQuote,
}

/// A day's bar in a snapshot (no `t`, `n`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SnapshotDay {
    /// Open.
    pub o: f64,
    /// High.
    pub h: f64,
    /// Low.
    pub l: f64,
    /// Close.
    pub c: f64,
    /// Volume.
    pub v: f64,
    /// VWAP.
    pub vw: f64,
}

impl SnapshotDay {
    /// The snapshot form of a day's bucket.
    pub fn of(g: &Granule) -> Self {
        Self {
            o: g.open,
            h: g.high,
            l: g.low,
            c: g.close,
            v: g.volume as f64,
            vw: g.vwap(),
        }
    }
}

/// The newest minute bar in a snapshot.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SnapshotMinute {
    /// Volume accumulated over the day so far.
    pub av: f64,
    /// Start of the minute, ms.
    pub t: i64,
    /// Trades.
    pub n: u64,
    /// Open.
    pub o: f64,
    /// High.
    pub h: f64,
    /// Low.
    pub l: f64,
    /// Close.
    pub c: f64,
    /// Volume.
    pub v: f64,
    /// VWAP.
    pub vw: f64,
}

/// One ticker's snapshot.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TickerSnapshot {
    /// The ticker.
    pub ticker: String,
    /// Change from the previous day's close, percent.
    #[serde(rename = "todaysChangePerc")]
    pub todays_change_perc: f64,
    /// Change from the previous day's close.
    #[serde(rename = "todaysChange")]
    pub todays_change: f64,
    /// Time of the newest data in it, ns.
    pub updated: i64,
    /// The newest day with bars.
    pub day: SnapshotDay,
    /// The day with bars before it.
    #[serde(rename = "prevDay", skip_serializing_if = "Option::is_none")]
    pub prev_day: Option<SnapshotDay>,
    /// The newest minute bar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<SnapshotMinute>,
    /// The last trade.
    #[serde(rename = "lastTrade", skip_serializing_if = "Option::is_none")]
    pub last_trade: Option<VendorTrade>,
    /// The last quote.
    #[serde(rename = "lastQuote", skip_serializing_if = "Option::is_none")]
    pub last_quote: Option<VendorQuote>,
}

/// One ticker's snapshot answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TickerSnapshotResponse {
    /// `OK`.
    pub status: &'static str,
    /// This request's id.
    pub request_id: String,
    /// The snapshot.
    pub ticker: TickerSnapshot,
}

/// Several tickers' snapshots (all tickers, gainers, losers).
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotsResponse {
    /// `OK`.
    pub status: &'static str,
    /// This request's id.
    pub request_id: String,
    /// Snapshots in the answer.
    pub count: usize,
    /// The snapshots.
    pub tickers: Vec<TickerSnapshot>,
}
