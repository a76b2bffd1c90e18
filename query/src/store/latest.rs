//! The latest state of a symbol, as the JSON Redis holds: the current bar,
//! the latest quote and trade. On a miss, ClickHouse's newest row, written
//! back.

use insite_schemas::{Interval, Symbol};
use insite_sinks::clickhouse::rows::{BarRow, QuoteRow, TradeRow};

use super::statements;
use super::timed::timed;
use super::{stored, Source, Store};
use crate::error::ApiError;

impl Store {
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
        self.read_through(&self.keys.bar(symbol, interval), newest)
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
        self.read_through(&self.keys.quote(symbol), newest).await
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
        self.read_through(&self.keys.trade(symbol), newest).await
    }
}
