//! Warming Redis from ClickHouse at start, so the first requests after a
//! Redis restart do not all fall through to ClickHouse: the newest final
//! results of the hot symbols, and each interval's trending list.

use insite_schemas::{Interval, Symbol, TimestampMs};
use insite_sinks::clickhouse::rows::datetime_secs;

use super::range::{from_rows, Bars, RangeKind, Sentiments};
use super::statements;
use super::stored::{self, sql_count};
use super::timed::timed;
use super::{Source, Store};
use crate::error::{encode_json, ApiError};

impl Store {
    /// Warms Redis from ClickHouse: for each hot symbol and interval whose
    /// history is missing in Redis, the newest final bars and sentiment
    /// windows; the current trending list of each interval. Returns the
    /// number of keys written.
    pub async fn warm(&self, intervals: &[Interval], now: TimestampMs) -> Result<usize, ApiError> {
        let symbols = self.hot_symbols(now).await?;
        let mut written = 0;
        for symbol in &symbols {
            for &interval in intervals {
                written += self.warm_kind::<Bars>(symbol, interval).await?;
                written += self.warm_kind::<Sentiments>(symbol, interval).await?;
            }
        }
        for &interval in intervals {
            let read = self
                .read_through(
                    &self.keys.trending(interval),
                    self.trending_from_clickhouse(interval),
                )
                .await?;
            if let Some((_, Source::ClickHouse)) = read {
                written += 1;
            }
        }
        tracing::info!(
            symbols = symbols.len(),
            keys = written,
            "warmed Redis from ClickHouse"
        );
        Ok(written)
    }

    /// The symbols to warm: those configured, else the most traded over the
    /// last day.
    async fn hot_symbols(&self, now: TimestampMs) -> Result<Vec<Symbol>, ApiError> {
        if !self.cache.warm_symbols.is_empty() {
            return self
                .cache
                .warm_symbols
                .iter()
                .map(|s| Symbol::new(s).map_err(|e| ApiError::Internal(e.to_string())))
                .collect();
        }
        let sql = statements::WARM_TOP_SYMBOLS;
        let query = self
            .clickhouse
            .query(sql)
            .bind(datetime_secs(now - 86_400_000))
            .bind(sql_count(self.cache.warm_top))
            .fetch_all();
        let names: Vec<String> = timed(self.slow_query, sql, query).await?;
        names.iter().map(|s| stored::symbol(s)).collect()
    }

    /// Loads the newest final results of kind `K` of one symbol and interval
    /// when Redis has no history of them: the history and the current
    /// result. Returns the number of keys written.
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
        let sql = statements::warm_history(K::TABLE);
        let query = self
            .clickhouse
            .query(&sql)
            .bind(symbol.as_str())
            .bind(interval.seconds())
            .bind(sql_count(self.cache.warm_history))
            .fetch_all();
        let rows: Vec<K::Row> = timed(self.slow_query, &sql, query).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let items = from_rows::<K>(rows)?;
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
