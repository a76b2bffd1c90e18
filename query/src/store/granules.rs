//! Stored bars combined over epoch-aligned spans ("granules"), for the
//! vendor-compatible roll-ups: ClickHouse combines a range's final bars of
//! one stored interval per span (first open, last close, extremes, sums,
//! Σ vwap × volume), and Redis adds the newest bars that ClickHouse does
//! not hold yet (final ones a flush ahead, and the current one).

use clickhouse::Row;
use insite_schemas::{Bar, Interval, Symbol, TimestampMs};
use insite_sinks::clickhouse::rows::{datetime_secs, millis};
use serde::Deserialize;

use super::statements::{self, SymbolFilter};
use super::stored::{self, decode_json, sql_count};
use super::Store;
use crate::error::ApiError;
use crate::vendor::rollup::Granule;

/// Read buffer per column of a part, in bytes, for the vendor aggregates'
/// reads, which span many partitions' parts at once (ClickHouse's default
/// is 1 MiB a column a part).
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Which symbols a granule read covers.
#[derive(Debug, Clone, Copy)]
pub enum Symbols<'a> {
    /// One symbol.
    One(&'a Symbol),
    /// These symbols.
    Some(&'a [Symbol]),
    /// Every symbol.
    All,
}

/// A granule read: bars of interval `base` with window starts in
/// `[from, to)`, combined per `granule_ms`.
#[derive(Debug, Clone, Copy)]
pub struct GranuleQuery<'a> {
    /// The symbols.
    pub symbols: Symbols<'a>,
    /// The stored interval read.
    pub base: Interval,
    /// The span bars are combined over, ms (a multiple of `base`).
    pub granule_ms: i64,
    /// First window start included, ms.
    pub from: TimestampMs,
    /// Window starts before this, ms.
    pub to: TimestampMs,
    /// Newest first.
    pub desc: bool,
    /// At most this many granules (`None`: all).
    pub limit: Option<usize>,
}

/// One granule as ClickHouse sends it (by position; the SQL's aliases
/// differ from the column names, which ClickHouse would otherwise read as
/// the aggregates themselves).
#[derive(Debug, Row, Deserialize)]
struct GranuleRow {
    symbol: String,
    g: u64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: u64,
    notional: f64,
    trades: u64,
    last_ms: u64,
}

impl Store {
    /// The Redis key of the cached answer of a durable vendor request of
    /// `symbol` (`request`: everything the answer depends on), beside the
    /// symbol's other keys.
    pub fn vendor_answer_key(&self, symbol: &Symbol, request: &str) -> String {
        format!(
            "{}{{{}}}:qv:{:016x}",
            self.prefix,
            symbol,
            xxhash_rust::xxh3::xxh3_64(request.as_bytes())
        )
    }

    /// The Redis key of the cached answer of a durable vendor request over
    /// every symbol (grouped daily bars; `request`: everything the answer
    /// depends on).
    pub fn vendor_all_answer_key(&self, request: &str) -> String {
        format!(
            "{}{{all}}:qv:{:016x}",
            self.prefix,
            xxhash_rust::xxh3::xxh3_64(request.as_bytes())
        )
    }

    /// Granules of `q` from ClickHouse's final bars, per symbol, each
    /// symbol's in start order (as `q.desc` asks).
    pub async fn granules(&self, q: &GranuleQuery<'_>) -> Result<Vec<(Symbol, Granule)>, ApiError> {
        let filter = match q.symbols {
            Symbols::One(_) => SymbolFilter::One,
            Symbols::Some(_) => SymbolFilter::Many,
            Symbols::All => SymbolFilter::All,
        };
        let sql = statements::granules(filter, q.desc, q.limit.is_some());
        let granule = millis(q.granule_ms);
        // `FINAL` over a long range reads every partition's parts at once,
        // each column through a read buffer of its own: with the default
        // 1 MiB buffers, a year of one symbol's bars in daily partitions
        // needed more than the server's per-query memory limit (3.7 GiB on
        // this machine); monthly partitions (migration 5) hold fewer parts,
        // and the small buffers keep the bound for many parts per month.
        let mut query = self
            .clickhouse
            .query(&sql)
            .with_setting("max_read_buffer_size", READ_BUFFER_BYTES.to_string())
            .bind(granule)
            .bind(granule);
        match q.symbols {
            Symbols::One(s) => query = query.bind(s.as_str()),
            Symbols::Some(list) => {
                query = query.bind(list.iter().map(Symbol::as_str).collect::<Vec<_>>());
            }
            Symbols::All => {}
        }
        query = query
            .bind(q.base.seconds())
            .bind(datetime_secs(q.from))
            .bind(datetime_secs(q.to))
            .bind(millis(q.from))
            .bind(millis(q.to));
        if let Some(limit) = q.limit {
            query = query.bind(sql_count(limit));
        }
        // Waits for a turn: a burst of long scans queues here instead of
        // failing on the server (memory, file descriptors).
        let _turn =
            self.aggregate_reads.acquire().await.map_err(|_| {
                ApiError::Internal("the aggregate reads' semaphore is closed".into())
            })?;
        let rows: Vec<GranuleRow> = query.fetch_all().await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    stored::symbol(&r.symbol)?,
                    Granule {
                        start: stored::ms(r.g),
                        last_bar: stored::ms(r.last_ms),
                        open: r.open,
                        high: r.high,
                        low: r.low,
                        close: r.close,
                        volume: r.volume,
                        notional: r.notional,
                        trades: r.trades,
                    },
                ))
            })
            .collect()
    }

    /// Redis's bars of `symbol` and `base` with window starts in
    /// `[from, to)`: recent final ones and the current one (a final one
    /// wins over a provisional one of the same window).
    pub async fn recent_bars(
        &self,
        symbol: &Symbol,
        base: Interval,
        from: TimestampMs,
        to: TimestampMs,
    ) -> Result<Vec<Bar>, ApiError> {
        let mut conn = self.redis.get();
        let (members, current): (Vec<String>, Option<String>) = redis::pipe()
            .cmd("ZRANGEBYSCORE")
            .arg(self.keys.bars(symbol, base))
            .arg(from)
            .arg(format!("({to}"))
            .cmd("GET")
            .arg(self.keys.bar(symbol, base))
            .query_async(&mut conn)
            .await?;
        let mut bars = members
            .iter()
            .map(|json| decode_json::<Bar>("bar", json))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(current) = current.as_deref() {
            let current: Bar = decode_json("bar", current)?;
            let inside = (from..to).contains(&current.window_start);
            if inside && !bars.iter().any(|b| b.window_start == current.window_start) {
                bars.push(current);
            }
        }
        bars.sort_by_key(|b| b.window_start);
        Ok(bars)
    }

    /// The window start of the newest stored bar of `base` before `before`
    /// (of `symbol`, or of any symbol), if any.
    pub async fn newest_bar_before(
        &self,
        symbol: Option<&Symbol>,
        base: Interval,
        before: TimestampMs,
    ) -> Result<Option<TimestampMs>, ApiError> {
        let sql = match symbol {
            Some(_) => statements::NEWEST_BAR_BEFORE_OF_SYMBOL,
            None => statements::NEWEST_BAR_BEFORE,
        };
        let mut query = self.clickhouse.query(sql);
        if let Some(s) = symbol {
            query = query.bind(s.as_str());
        }
        let (m, n): (u64, u64) = query
            .bind(base.seconds())
            .bind(millis(before))
            .fetch_one()
            .await?;
        Ok((n > 0).then(|| stored::ms(m)))
    }
}
