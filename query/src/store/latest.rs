//! The latest state of a symbol, as the JSON Redis holds: the current bar,
//! the latest quote and trade. From memory when held and confirmed
//! ([`HotState`](super::HotState)), else from Redis (and then held); on a
//! miss, ClickHouse's newest row, written back.

use std::future::Future;
use std::time::Instant;

use insite_schemas::{Interval, Symbol};
use insite_sinks::clickhouse::rows::{BarRow, QuoteRow, TradeRow};
use serde::Serialize;

use super::statements;
use super::timed::timed;
use super::{stored, HotKind, Source, Store};
use crate::error::ApiError;

impl Store {
    /// The JSON of `key`: from memory when held and confirmed, else as
    /// [`Store::read_through`] reads it (a Redis answer is then held, as
    /// of when its read was sent).
    async fn read_hot<T: Serialize>(
        &self,
        key: &str,
        kind: HotKind,
        from_clickhouse: impl Future<Output = Result<Option<T>, ApiError>>,
    ) -> Result<Option<(String, Source)>, ApiError> {
        if let Some(json) = self.hot.get(key) {
            return Ok(Some((json, Source::Memory)));
        }
        let sent = Instant::now();
        let found = self.read_through(key, from_clickhouse).await?;
        if let Some((json, Source::Redis)) = &found {
            self.hot.confirm(key, kind, Some(json), sent);
        }
        Ok(found)
    }

    /// The current bar of a symbol as stored JSON: Redis, else the newest
    /// final bar in ClickHouse (written back).
    pub async fn latest_bar(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Option<(String, Source)>, ApiError> {
        let newest = async {
            let sql = statements::LATEST_BAR;
            let query = self
                .clickhouse
                .query(sql)
                .bind(symbol.as_str())
                .bind(interval.seconds())
                .fetch_optional();
            let row: Option<BarRow> = timed(self.slow_query, sql, query).await?;
            row.map(stored::bar).transpose()
        };
        self.read_hot(&self.keys.bar(symbol, interval), HotKind::Bar, newest)
            .await
    }

    /// The latest quote as stored JSON: Redis, else ClickHouse (written back).
    pub async fn latest_quote(
        &self,
        symbol: &Symbol,
    ) -> Result<Option<(String, Source)>, ApiError> {
        let newest = async {
            let sql = statements::LATEST_QUOTE;
            let query = self
                .clickhouse
                .query(sql)
                .bind(symbol.as_str())
                .fetch_optional();
            let row: Option<QuoteRow> = timed(self.slow_query, sql, query).await?;
            Ok::<_, ApiError>(row.map(|row| stored::quote(symbol, row)))
        };
        self.read_hot(&self.keys.quote(symbol), HotKind::Tick, newest)
            .await
    }

    /// The latest trade as stored JSON: Redis, else ClickHouse (written back).
    pub async fn latest_trade(
        &self,
        symbol: &Symbol,
    ) -> Result<Option<(String, Source)>, ApiError> {
        let newest = async {
            let sql = statements::LATEST_TRADE;
            let query = self
                .clickhouse
                .query(sql)
                .bind(symbol.as_str())
                .fetch_optional();
            let row: Option<TradeRow> = timed(self.slow_query, sql, query).await?;
            Ok::<_, ApiError>(row.map(|row| stored::trade(symbol, row)))
        };
        self.read_hot(&self.keys.trade(symbol), HotKind::Tick, newest)
            .await
    }
}
