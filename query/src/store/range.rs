//! Windowed results over a range, of any [`RangeKind`] (bars, sentiment):
//! whether the range is durable (its last window before the pipeline's
//! durable frontier, see [`super::frontier`]); for a durable range
//! ClickHouse alone, else Redis when its recent history reaches back far
//! enough, else ClickHouse merged with Redis's newest results; and the
//! cached answers of durable ranges.

use clickhouse::Row;
use insite_schemas::{Bar, Finality, Interval, SentimentWindow, Symbol, TimestampMs};
use insite_sinks::clickhouse::rows::{datetime_secs, millis, BarRow, SentimentRow};
use insite_sinks::redis::RedisKeys;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::frontier::{self, Durability, FrontierSource};
use super::statements;
use super::stored::{self, decode_json, sql_count};
use super::timed::timed;
use super::{Source, Store};
use crate::error::ApiError;

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
    /// The input stream whose durable frontier says when its windows are
    /// final and in ClickHouse.
    const SOURCE: FrontierSource;
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
    const SOURCE: FrontierSource = FrontierSource::Market;
    fn history_key(keys: &RedisKeys, symbol: &Symbol, interval: Interval) -> String {
        keys.bars(symbol, interval)
    }
    fn current_key(keys: &RedisKeys, symbol: &Symbol, interval: Interval) -> String {
        keys.bar(symbol, interval)
    }
    fn from_row(row: BarRow) -> Result<Bar, ApiError> {
        stored::bar(row)
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
    const SOURCE: FrontierSource = FrontierSource::Social;
    fn history_key(keys: &RedisKeys, symbol: &Symbol, interval: Interval) -> String {
        keys.sentiments(symbol, interval)
    }
    fn current_key(keys: &RedisKeys, symbol: &Symbol, interval: Interval) -> String {
        keys.sentiment(symbol, interval)
    }
    fn from_row(row: SentimentRow) -> Result<SentimentWindow, ApiError> {
        stored::sentiment(row)
    }
    fn window_start(item: &SentimentWindow) -> TimestampMs {
        item.window_start
    }
    fn is_final(item: &SentimentWindow) -> bool {
        item.finality == Finality::Final
    }
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

impl<T> RangeAnswer<T> {
    /// The first `limit` of `items` (read one over, to know whether more
    /// follow).
    fn page(mut items: Vec<T>, limit: usize, source: Source) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        Self {
            items,
            more,
            source,
        }
    }
}

impl Store {
    /// Whether the answer to `r` can never change: the last window it
    /// covers (the one holding `to - 1`) ends before the durable frontier
    /// of `K`'s source, as the configured pipeline recorded it. Ask before
    /// reading the results: results read after a durable verdict are all in
    /// ClickHouse, final.
    pub async fn durability<K: RangeKind>(&self, r: &RangeRequest) -> Durability {
        let durable_ms = self.frontiers.durable_ms(&self.clickhouse, K::SOURCE).await;
        frontier::durability(frontier::last_window_end(r.interval, r.to), durable_ms)
    }

    /// The Redis key of the cached answer to a durable range request of
    /// `kind`. (`qd`, not the `q` of the wall-clock rule, which cached
    /// answers that lack their last window.)
    pub fn answer_key(&self, kind: &str, r: &RangeRequest) -> String {
        format!(
            "{}{{{}}}:qd:{}:{}:{}:{}:{}",
            self.prefix, r.symbol, kind, r.interval, r.from, r.to, r.limit
        )
    }

    /// A cached answer (a response body), if any.
    pub async fn cached_answer(&self, key: &str) -> Result<Option<String>, ApiError> {
        self.get(key).await
    }

    /// Caches an answer (a response body) that can no longer change (of a
    /// [`Durability::Durable`] range).
    pub async fn cache_answer(&self, key: &str, body: &str) -> Result<(), ApiError> {
        self.write_back(key, body).await
    }

    /// Results of kind `K` over a range of `durability` (see
    /// [`Store::durability`]): a durable range from ClickHouse alone (the
    /// frontier speaks for ClickHouse, not for Redis); an open one from
    /// Redis when its recent history covers the range's start, else from
    /// ClickHouse plus Redis's newest results.
    pub async fn range<K: RangeKind>(
        &self,
        r: &RangeRequest,
        durability: Durability,
    ) -> Result<RangeAnswer<K::Item>, ApiError> {
        let fetch = r.limit.saturating_add(1);
        if durability == Durability::Durable {
            let items = self.clickhouse_range::<K>(r, fetch).await?;
            return Ok(RangeAnswer::page(items, r.limit, Source::ClickHouse));
        }
        let history_key = K::history_key(&self.keys, &r.symbol, r.interval);
        let current_key = K::current_key(&self.keys, &r.symbol, r.interval);
        let mut conn = self.redis.get();
        let (oldest, members, current): (Vec<(String, f64)>, Vec<String>, Option<String>) =
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
            let mut items = decode_all::<K>(&members)?;
            merge_current::<K>(&mut items, current, r);
            return Ok(RangeAnswer::page(items, r.limit, Source::Redis));
        }

        let mut items = self.clickhouse_range::<K>(r, fetch).await?;
        // ClickHouse receives final results a flush later than Redis: the
        // open end of the range also takes Redis's recent ones.
        for recent in decode_all::<K>(&members)? {
            let start = K::window_start(&recent);
            if let Err(i) = items.binary_search_by_key(&start, K::window_start) {
                items.insert(i, recent);
            }
        }
        merge_current::<K>(&mut items, current, r);
        Ok(RangeAnswer::page(items, r.limit, Source::ClickHouse))
    }

    /// The first `fetch` results of kind `K` in ClickHouse over the range.
    async fn clickhouse_range<K: RangeKind>(
        &self,
        r: &RangeRequest,
        fetch: usize,
    ) -> Result<Vec<K::Item>, ApiError> {
        let sql = statements::range(K::TABLE);
        let query = self
            .clickhouse
            .query(&sql)
            .bind(r.symbol.as_str())
            .bind(r.interval.seconds())
            .bind(datetime_secs(r.from))
            .bind(datetime_secs(r.to))
            .bind(millis(r.from))
            .bind(millis(r.to))
            .bind(sql_count(fetch))
            .fetch_all();
        let rows: Vec<K::Row> = timed(self.slow_query, &sql, query).await?;
        from_rows::<K>(rows)
    }
}

/// Items of kind `K` from their ClickHouse rows.
pub(super) fn from_rows<K: RangeKind>(rows: Vec<K::Row>) -> Result<Vec<K::Item>, ApiError> {
    rows.into_iter().map(K::from_row).collect()
}

/// Items of kind `K` from their JSON in Redis.
fn decode_all<K: RangeKind>(members: &[String]) -> Result<Vec<K::Item>, ApiError> {
    members
        .iter()
        .map(|json| decode_json(K::NAME, json))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(start: i64, finality: Finality) -> Bar {
        insite_schemas::fixtures::bar("AAPL", Interval::MINUTE, start)
            .finality(finality)
            .build()
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
