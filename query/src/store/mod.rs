//! Reading what the pipeline wrote: Redis first, ClickHouse on a miss (the
//! answer written back to Redis), and warming Redis from ClickHouse at start.
//!
//! Redis keys are those of [`insite_sinks::redis::RedisKeys`]; answers to
//! closed ranges (response bodies) are cached under
//! `<prefix>{SYM}:q:<kind>:<interval>:<from>:<to>:<limit>` (same hash tag as
//! the symbol's other keys). Every SQL value goes through `.bind()`.

use std::sync::atomic::{AtomicUsize, Ordering};

use clickhouse::Row;
use insite_schemas::config::RedisConfig;
use insite_schemas::{
    Alert, AlertKind, Bar, Finality, Interval, SentimentWindow, Symbol, TimestampMs, Trending,
    TrendingEntry,
};
use insite_sinks::clickhouse::rows::{datetime_secs, millis, AlertRow, BarRow, SentimentRow};
use insite_sinks::redis::RedisKeys;
use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::CacheConfig;
use crate::error::{ApiError, QueryError};

/// Where an answer came from (for metrics and the `X-Insite-Source` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Redis hot state (written by the pipeline, or warmed).
    Redis,
    /// A ClickHouse answer cached in Redis.
    Cache,
    /// ClickHouse itself.
    ClickHouse,
}

impl Source {
    /// A lower-case word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Cache => "cache",
            Self::ClickHouse => "clickhouse",
        }
    }
}

/// A few multiplexed Redis connections used round-robin.
#[derive(Clone)]
pub struct RedisPool {
    /// The connections (each reconnects by itself).
    conns: std::sync::Arc<Vec<ConnectionManager>>,
    /// The next connection to hand out.
    next: std::sync::Arc<AtomicUsize>,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("connections", &self.conns.len())
            .finish()
    }
}

impl RedisPool {
    /// `size` connections to the configured Redis, opened on first use (so
    /// the service starts, and `/readyz` says why, while Redis is down);
    /// each reconnects by itself. Must be called within a Tokio runtime.
    pub fn lazy(config: &RedisConfig, size: usize) -> Result<Self, QueryError> {
        let client = redis::Client::open(config.url.as_str())?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(5)))
            .set_number_of_retries(2);
        let mut conns = Vec::new();
        for _ in 0..size.max(1) {
            conns.push(ConnectionManager::new_lazy_with_config(
                client.clone(),
                manager_config.clone(),
            )?);
        }
        Ok(Self {
            conns: std::sync::Arc::new(conns),
            next: std::sync::Arc::new(AtomicUsize::new(0)),
        })
    }

    /// A connection (cheap clone of a multiplexed one).
    pub fn get(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }
}

/// One kind of windowed result that can be read over a range.
pub trait RangeKind {
    /// The schema type (what Redis holds as JSON).
    type Item: Serialize + DeserializeOwned + Clone + Send + 'static;
    /// The ClickHouse row.
    type Row: Row + for<'a> Row<Value<'a> = Self::Row> + DeserializeOwned + Send + 'static;
    /// A word for keys and metrics.
    const NAME: &'static str;
    /// The ClickHouse table.
    const TABLE: &'static str;
    /// The sorted set of recent final results.
    fn history_key(keys: &RedisKeys, symbol: &Symbol, interval: Interval) -> String;
    /// The current (provisional or last final) result.
    fn current_key(keys: &RedisKeys, symbol: &Symbol, interval: Interval) -> String;
    /// The item of a row.
    fn from_row(row: Self::Row) -> Result<Self::Item, ApiError>;
    /// Start of the item's window.
    fn window_start(item: &Self::Item) -> TimestampMs;
    /// Whether the item is final.
    fn is_final(item: &Self::Item) -> bool;
}

/// Bars.
#[derive(Debug)]
pub struct Bars;

impl RangeKind for Bars {
    type Item = Bar;
    type Row = BarRow;
    const NAME: &'static str = "bars";
    const TABLE: &'static str = "bars";
    fn history_key(keys: &RedisKeys, symbol: &Symbol, interval: Interval) -> String {
        keys.bars(symbol, interval)
    }
    fn current_key(keys: &RedisKeys, symbol: &Symbol, interval: Interval) -> String {
        keys.bar(symbol, interval)
    }
    fn from_row(row: BarRow) -> Result<Bar, ApiError> {
        Ok(Bar {
            symbol: stored_symbol(&row.symbol)?,
            interval: stored_interval(row.interval_s)?,
            window_start: stored_ms(row.window_start_ms),
            open: row.open,
            high: row.high,
            low: row.low,
            close: row.close,
            volume: row.volume,
            vwap: row.vwap,
            trades: row.trades,
            finality: Finality::Final,
        })
    }
    fn window_start(item: &Bar) -> TimestampMs {
        item.window_start
    }
    fn is_final(item: &Bar) -> bool {
        item.finality == Finality::Final
    }
}

/// Sentiment windows.
#[derive(Debug)]
pub struct Sentiments;

impl RangeKind for Sentiments {
    type Item = SentimentWindow;
    type Row = SentimentRow;
    const NAME: &'static str = "sentiment";
    const TABLE: &'static str = "sentiment";
    fn history_key(keys: &RedisKeys, symbol: &Symbol, interval: Interval) -> String {
        keys.sentiments(symbol, interval)
    }
    fn current_key(keys: &RedisKeys, symbol: &Symbol, interval: Interval) -> String {
        keys.sentiment(symbol, interval)
    }
    fn from_row(row: SentimentRow) -> Result<SentimentWindow, ApiError> {
        Ok(SentimentWindow {
            symbol: stored_symbol(&row.symbol)?,
            interval: stored_interval(row.interval_s)?,
            window_start: stored_ms(row.window_start_ms),
            posts: row.posts,
            score: row.score,
            positive: row.positive,
            negative: row.negative,
            neutral: row.neutral,
            weighted_score: row.weighted_score,
            finality: Finality::Final,
        })
    }
    fn window_start(item: &SentimentWindow) -> TimestampMs {
        item.window_start
    }
    fn is_final(item: &SentimentWindow) -> bool {
        item.finality == Finality::Final
    }
}

fn stored_symbol(s: &str) -> Result<Symbol, ApiError> {
    Symbol::new(s).map_err(|e| ApiError::Internal(format!("stored symbol: {e}")))
}

fn stored_interval(s: u32) -> Result<Interval, ApiError> {
    Interval::from_seconds(s).map_err(|e| ApiError::Internal(format!("stored interval: {e}")))
}

fn stored_ms(ms: u64) -> TimestampMs {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn decode_json<T: DeserializeOwned>(what: &str, json: &str) -> Result<T, ApiError> {
    serde_json::from_str(json).map_err(|e| ApiError::Internal(format!("stored {what}: {e}")))
}

fn encode_json<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| ApiError::Internal(format!("encoding: {e}")))
}

/// A range request: `[from, to)` of one symbol and interval, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRequest {
    /// The symbol.
    pub symbol: Symbol,
    /// The interval.
    pub interval: Interval,
    /// First window start included, ms.
    pub from: TimestampMs,
    /// End of the range (exclusive), ms.
    pub to: TimestampMs,
    /// Most results.
    pub limit: usize,
}

/// The answer to a range request.
#[derive(Debug, Clone)]
pub struct RangeAnswer<T> {
    /// Results, oldest first, at most `limit`.
    pub items: Vec<T>,
    /// Whether more results follow the last one within the range.
    pub more: bool,
    /// Where they came from.
    pub source: Source,
}

/// Reads hot state from Redis and history from ClickHouse.
#[derive(Clone)]
pub struct Store {
    /// Redis connections.
    pub redis: RedisPool,
    /// ClickHouse client (read-only use).
    pub clickhouse: clickhouse::Client,
    /// Redis key names.
    pub keys: RedisKeys,
    /// The Redis key prefix (for the query cache keys).
    prefix: String,
    /// Caching settings.
    cache: CacheConfig,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("redis", &self.redis)
            .field("keys", &self.keys)
            .finish()
    }
}

impl Store {
    /// A store over these connections.
    pub fn new(
        redis: RedisPool,
        clickhouse: clickhouse::Client,
        redis_config: &RedisConfig,
        cache: CacheConfig,
    ) -> Self {
        Self {
            redis,
            clickhouse,
            keys: RedisKeys::new(&redis_config.key_prefix),
            prefix: redis_config.key_prefix.clone(),
            cache,
        }
    }

    /// Whether every window of `[.., to)` of `interval` has closed for good,
    /// so an answer about it can never change.
    pub fn is_closed(&self, to: TimestampMs, now: TimestampMs) -> bool {
        to.saturating_add(self.cache.settle_ms) <= now
    }

    /// Redis answers `PING`.
    pub async fn ping_redis(&self) -> Result<(), ApiError> {
        let mut conn = self.redis.get();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// ClickHouse answers `SELECT 1`.
    pub async fn ping_clickhouse(&self) -> Result<(), ApiError> {
        let _: u8 = self.clickhouse.query("SELECT 1").fetch_one().await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, ApiError> {
        let mut conn = self.redis.get();
        let value: Option<String> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
        Ok(value)
    }

    /// Writes `json` under `key` unless something newer is there already.
    async fn write_back(&self, key: &str, json: &str, ttl_s: u64) -> Result<(), ApiError> {
        let mut conn = self.redis.get();
        let _: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(json)
            .arg("NX")
            .arg("EX")
            .arg(ttl_s.max(1))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The current bar of a symbol as stored JSON: Redis, else the newest
    /// final bar in ClickHouse (written back).
    pub async fn latest_bar(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Option<(String, Source)>, ApiError> {
        let key = self.keys.bar(symbol, interval);
        if let Some(json) = self.get(&key).await? {
            return Ok(Some((json, Source::Redis)));
        }
        let row: Option<BarRow> = self
            .clickhouse
            .query(
                "SELECT ?fields FROM bars FINAL WHERE symbol = ? AND interval_s = ? \
                 ORDER BY window_start_ms DESC LIMIT 1",
            )
            .bind(symbol.as_str())
            .bind(interval.seconds())
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(None) };
        let json = encode_json(&Bars::from_row(row)?)?;
        self.write_back(&key, &json, self.cache.writeback_ttl_s)
            .await?;
        Ok(Some((json, Source::ClickHouse)))
    }

    /// The latest quote as stored JSON: Redis, else ClickHouse (written back).
    pub async fn latest_quote(
        &self,
        symbol: &Symbol,
    ) -> Result<Option<(String, Source)>, ApiError> {
        let key = self.keys.quote(symbol);
        if let Some(json) = self.get(&key).await? {
            return Ok(Some((json, Source::Redis)));
        }
        let row: Option<insite_sinks::clickhouse::rows::QuoteRow> = self
            .clickhouse
            .query("SELECT ?fields FROM quotes WHERE symbol = ? ORDER BY ts_ms DESC LIMIT 1")
            .bind(symbol.as_str())
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(None) };
        let quote = insite_schemas::Quote {
            symbol: symbol.clone(),
            ts: stored_ms(row.ts_ms),
            bid: row.bid,
            bid_size: row.bid_size,
            ask: row.ask,
            ask_size: row.ask_size,
        };
        let json = encode_json(&quote)?;
        self.write_back(&key, &json, self.cache.writeback_ttl_s)
            .await?;
        Ok(Some((json, Source::ClickHouse)))
    }

    /// The latest trade as stored JSON: Redis, else ClickHouse (written back).
    pub async fn latest_trade(
        &self,
        symbol: &Symbol,
    ) -> Result<Option<(String, Source)>, ApiError> {
        let key = self.keys.trade(symbol);
        if let Some(json) = self.get(&key).await? {
            return Ok(Some((json, Source::Redis)));
        }
        let row: Option<insite_sinks::clickhouse::rows::TradeRow> = self
            .clickhouse
            .query("SELECT ?fields FROM trades WHERE symbol = ? ORDER BY ts_ms DESC LIMIT 1")
            .bind(symbol.as_str())
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(None) };
        let trade = insite_schemas::Trade {
            symbol: symbol.clone(),
            ts: stored_ms(row.ts_ms),
            price: row.price,
            size: row.size,
            exchange: row.exchange.into(),
            trade_id: row.trade_id.into(),
            conditions: row.conditions.into_iter().map(Into::into).collect(),
        };
        let json = encode_json(&trade)?;
        self.write_back(&key, &json, self.cache.writeback_ttl_s)
            .await?;
        Ok(Some((json, Source::ClickHouse)))
    }

    /// The Redis key of the cached answer to a range request of `kind`.
    pub fn answer_key(&self, kind: &str, r: &RangeRequest) -> String {
        format!(
            "{}{{{}}}:q:{}:{}:{}:{}:{}",
            self.prefix, r.symbol, kind, r.interval, r.from, r.to, r.limit
        )
    }

    /// A cached answer (a response body), if any.
    pub async fn cached_answer(&self, key: &str) -> Result<Option<String>, ApiError> {
        self.get(key).await
    }

    /// Caches an answer (a response body) that can no longer change.
    pub async fn cache_answer(&self, key: &str, body: &str) -> Result<(), ApiError> {
        self.write_back(key, body, self.cache.writeback_ttl_s).await
    }

    /// Results of kind `K` over a range: from Redis when its recent history
    /// covers the range's start, else from ClickHouse (plus, for a range
    /// that is still open, Redis's newest results).
    pub async fn range<K: RangeKind>(
        &self,
        r: &RangeRequest,
        now: TimestampMs,
    ) -> Result<RangeAnswer<K::Item>, ApiError> {
        let history_key = K::history_key(&self.keys, &r.symbol, r.interval);
        let current_key = K::current_key(&self.keys, &r.symbol, r.interval);
        let fetch = r.limit.saturating_add(1);
        let mut conn = self.redis.get();
        let (oldest, mut members, current): (Vec<(String, f64)>, Vec<String>, Option<String>) =
            redis::pipe()
                .cmd("ZRANGE")
                .arg(&history_key)
                .arg(0)
                .arg(0)
                .arg("WITHSCORES")
                .cmd("ZRANGEBYSCORE")
                .arg(&history_key)
                .arg(r.from)
                .arg(format!("({}", r.to))
                .arg("LIMIT")
                .arg(0)
                .arg(fetch)
                .cmd("GET")
                .arg(&current_key)
                .query_async(&mut conn)
                .await?;
        let current: Option<K::Item> = current
            .as_deref()
            .map(|json| decode_json(K::NAME, json))
            .transpose()?;
        let oldest_start = oldest
            .first()
            .map(|(_, score)| *score as i64)
            .into_iter()
            .chain(current.as_ref().map(K::window_start))
            .min();
        if oldest_start.is_some_and(|start| start <= r.from) {
            let mut items = members
                .drain(..)
                .map(|json| decode_json::<K::Item>(K::NAME, &json))
                .collect::<Result<Vec<_>, _>>()?;
            merge_current::<K>(&mut items, current, r);
            let more = items.len() > r.limit;
            items.truncate(r.limit);
            return Ok(RangeAnswer {
                items,
                more,
                source: Source::Redis,
            });
        }

        let closed = self.is_closed(r.to, now);
        let sql = format!(
            "SELECT ?fields FROM {} FINAL WHERE symbol = ? AND interval_s = ? \
             AND window_start >= toDateTime(?) AND window_start <= toDateTime(?) \
             AND window_start_ms >= ? AND window_start_ms < ? \
             ORDER BY window_start_ms LIMIT ?",
            K::TABLE
        );
        let rows: Vec<K::Row> = self
            .clickhouse
            .query(&sql)
            .bind(r.symbol.as_str())
            .bind(r.interval.seconds())
            .bind(datetime_secs(r.from))
            .bind(datetime_secs(r.to))
            .bind(millis(r.from))
            .bind(millis(r.to))
            .bind(u64::try_from(fetch).unwrap_or(u64::MAX))
            .fetch_all()
            .await?;
        let mut items = rows
            .into_iter()
            .map(K::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if !closed {
            // ClickHouse receives final results a flush later than Redis:
            // the open end of the range also takes Redis's recent ones.
            for json in &members {
                let recent: K::Item = decode_json(K::NAME, json)?;
                let start = K::window_start(&recent);
                if let Err(i) = items.binary_search_by_key(&start, K::window_start) {
                    items.insert(i, recent);
                }
            }
            merge_current::<K>(&mut items, current, r);
        }
        let more = items.len() > r.limit;
        items.truncate(r.limit);
        Ok(RangeAnswer {
            items,
            more,
            source: Source::ClickHouse,
        })
    }

    /// The current trending list of an interval, at most `limit` entries.
    pub async fn trending(
        &self,
        interval: Interval,
        limit: usize,
    ) -> Result<Option<(Trending, Source)>, ApiError> {
        let key = self.keys.trending(interval);
        if let Some(json) = self.get(&key).await? {
            let mut t: Trending = decode_json("trending", &json)?;
            t.entries.truncate(limit);
            return Ok(Some((t, Source::Redis)));
        }
        let Some(t) = self.trending_from_clickhouse(interval).await? else {
            return Ok(None);
        };
        self.write_back(&key, &encode_json(&t)?, self.cache.writeback_ttl_s)
            .await?;
        let mut t = t;
        t.entries.truncate(limit);
        Ok(Some((t, Source::ClickHouse)))
    }

    async fn trending_from_clickhouse(
        &self,
        interval: Interval,
    ) -> Result<Option<Trending>, ApiError> {
        #[derive(Row, Deserialize)]
        struct Entry {
            window_start_ms: u64,
            symbol: String,
            mentions: u64,
            zscore: f64,
        }
        let rows: Vec<Entry> = self
            .clickhouse
            .query(
                "SELECT window_start_ms, symbol, mentions, zscore FROM trending FINAL \
                 WHERE interval_s = ? AND window_start_ms = \
                 (SELECT max(window_start_ms) FROM trending WHERE interval_s = ?) \
                 ORDER BY rank",
            )
            .bind(interval.seconds())
            .bind(interval.seconds())
            .fetch_all()
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let window_start = stored_ms(first.window_start_ms);
        let entries = rows
            .into_iter()
            .map(|e| {
                Ok(TrendingEntry {
                    symbol: stored_symbol(&e.symbol)?,
                    mentions: e.mentions,
                    zscore: e.zscore,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(Some(Trending {
            interval,
            window_start,
            entries,
            finality: Finality::Final,
        }))
    }

    /// Recent alerts, newest first: of one symbol, or of all.
    pub async fn alerts(
        &self,
        symbol: Option<&Symbol>,
        limit: usize,
    ) -> Result<(Vec<Alert>, Source), ApiError> {
        let key = match symbol {
            Some(s) => self.keys.alerts(s),
            None => self.keys.recent_alerts(),
        };
        let mut conn = self.redis.get();
        let stop = isize::try_from(limit)
            .unwrap_or(isize::MAX)
            .saturating_sub(1);
        let listed: Vec<String> = redis::cmd("LRANGE")
            .arg(&key)
            .arg(0)
            .arg(stop)
            .query_async(&mut conn)
            .await?;
        if !listed.is_empty() {
            let alerts = listed
                .iter()
                .map(|json| decode_json("alert", json))
                .collect::<Result<Vec<Alert>, _>>()?;
            return Ok((alerts, Source::Redis));
        }
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        let rows: Vec<AlertRow> = match symbol {
            Some(s) => {
                self.clickhouse
                    .query(
                        "SELECT ?fields FROM alerts FINAL WHERE symbol = ? \
                         ORDER BY window_start_ms DESC LIMIT ?",
                    )
                    .bind(s.as_str())
                    .bind(limit)
                    .fetch_all()
                    .await?
            }
            None => {
                self.clickhouse
                    .query("SELECT ?fields FROM alerts FINAL ORDER BY window_start_ms DESC LIMIT ?")
                    .bind(limit)
                    .fetch_all()
                    .await?
            }
        };
        let alerts = rows
            .into_iter()
            .map(alert_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((alerts, Source::ClickHouse))
    }

    /// Warms Redis from ClickHouse: for each hot symbol and interval whose
    /// history is missing in Redis, the newest final bars and sentiment
    /// windows; the current trending list of each interval. Returns the
    /// number of keys written.
    pub async fn warm(&self, intervals: &[Interval], now: TimestampMs) -> Result<usize, ApiError> {
        let symbols = if self.cache.warm_symbols.is_empty() {
            let rows: Vec<String> = self
                .clickhouse
                .query(
                    "SELECT symbol FROM bars WHERE window_start >= toDateTime(?) \
                     GROUP BY symbol ORDER BY sum(trades) DESC LIMIT ?",
                )
                .bind(datetime_secs(now - 86_400_000))
                .bind(u64::try_from(self.cache.warm_top).unwrap_or(u64::MAX))
                .fetch_all()
                .await?;
            rows.iter()
                .map(|s| stored_symbol(s))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            self.cache
                .warm_symbols
                .iter()
                .map(|s| Symbol::new(s).map_err(|e| ApiError::Internal(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut written = 0;
        for symbol in &symbols {
            for &interval in intervals {
                written += self.warm_kind::<Bars>(symbol, interval).await?;
                written += self.warm_kind::<Sentiments>(symbol, interval).await?;
            }
        }
        for &interval in intervals {
            let key = self.keys.trending(interval);
            if self.get(&key).await?.is_none() {
                if let Some(t) = self.trending_from_clickhouse(interval).await? {
                    self.write_back(&key, &encode_json(&t)?, self.cache.writeback_ttl_s)
                        .await?;
                    written += 1;
                }
            }
        }
        tracing::info!(
            symbols = symbols.len(),
            keys = written,
            "warmed Redis from ClickHouse"
        );
        Ok(written)
    }

    async fn warm_kind<K: RangeKind>(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<usize, ApiError> {
        let history_key = K::history_key(&self.keys, symbol, interval);
        let mut conn = self.redis.get();
        let exists: u64 = redis::cmd("EXISTS")
            .arg(&history_key)
            .query_async(&mut conn)
            .await?;
        if exists > 0 {
            return Ok(0);
        }
        let sql = format!(
            "SELECT ?fields FROM {} FINAL WHERE symbol = ? AND interval_s = ? \
             ORDER BY window_start_ms DESC LIMIT ?",
            K::TABLE
        );
        let rows: Vec<K::Row> = self
            .clickhouse
            .query(&sql)
            .bind(symbol.as_str())
            .bind(interval.seconds())
            .bind(u64::try_from(self.cache.warm_history).unwrap_or(u64::MAX))
            .fetch_all()
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let items = rows
            .into_iter()
            .map(K::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let ttl = self.cache.writeback_ttl_s.max(1);
        let mut pipe = redis::pipe();
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(&history_key).arg("NX");
        for item in &items {
            zadd.arg(K::window_start(item)).arg(encode_json(item)?);
        }
        pipe.add_command(zadd).ignore();
        pipe.cmd("EXPIRE").arg(&history_key).arg(ttl).ignore();
        if let Some(newest) = items.first() {
            pipe.cmd("SET")
                .arg(K::current_key(&self.keys, symbol, interval))
                .arg(encode_json(newest)?)
                .arg("NX")
                .arg("EX")
                .arg(ttl)
                .ignore();
        }
        pipe.exec_async(&mut conn).await?;
        Ok(2)
    }
}

/// Adds the current result to `items` when it falls in the range and is not
/// there yet (a final result in `items` wins over a provisional one).
fn merge_current<K: RangeKind>(
    items: &mut Vec<K::Item>,
    current: Option<K::Item>,
    r: &RangeRequest,
) {
    let Some(current) = current else { return };
    let start = K::window_start(&current);
    if start < r.from || start >= r.to {
        return;
    }
    match items.binary_search_by_key(&start, K::window_start) {
        Ok(i) => {
            if !K::is_final(&items[i]) && K::is_final(&current) {
                items[i] = current;
            }
        }
        Err(i) => items.insert(i, current),
    }
}

fn alert_from_row(row: AlertRow) -> Result<Alert, ApiError> {
    let kind: AlertKind = serde_json::from_value(serde_json::Value::String(row.kind))
        .map_err(|e| ApiError::Internal(format!("stored alert kind: {e}")))?;
    Ok(Alert {
        symbol: stored_symbol(&row.symbol)?,
        kind,
        interval: stored_interval(row.interval_s)?,
        window_start: stored_ms(row.window_start_ms),
        value: row.value,
        threshold: row.threshold,
        message: row.message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(start: i64, finality: Finality) -> Bar {
        Bar {
            symbol: Symbol::new("AAPL").unwrap(),
            interval: Interval::MINUTE,
            window_start: start,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 1,
            vwap: 1.0,
            trades: 1,
            finality,
        }
    }

    #[test]
    fn current_result_merges_in_order_and_final_wins() {
        let r = RangeRequest {
            symbol: Symbol::new("AAPL").unwrap(),
            interval: Interval::MINUTE,
            from: 0,
            to: 600_000,
            limit: 10,
        };
        let mut items = vec![bar(0, Finality::Final), bar(120_000, Finality::Final)];
        merge_current::<Bars>(&mut items, Some(bar(60_000, Finality::Provisional)), &r);
        assert_eq!(
            items.iter().map(|b| b.window_start).collect::<Vec<_>>(),
            [0, 60_000, 120_000]
        );
        // A provisional one never replaces a final one of the same window.
        merge_current::<Bars>(&mut items, Some(bar(120_000, Finality::Provisional)), &r);
        assert_eq!(items[2].finality, Finality::Final);
        // Outside the range: ignored.
        merge_current::<Bars>(&mut items, Some(bar(600_000, Finality::Provisional)), &r);
        assert_eq!(items.len(), 3);
    }
}
