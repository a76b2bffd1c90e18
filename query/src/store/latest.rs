//! The latest state of a symbol, as the JSON Redis holds: the current bar,
//! the latest quote and trade. On a miss, ClickHouse's newest row, written
//! back.

use insite_schemas::{Interval, Symbol};
use insite_sinks::clickhouse::rows::{BarRow, QuoteRow, TradeRow};

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
            let row: Option<QuoteRow> = self
                .clickhouse
                .query("SELECT ?fields FROM quotes WHERE symbol = ? ORDER BY ts_ms DESC LIMIT 1")
                .bind(symbol.as_str())
                .fetch_optional()
                .await?;
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
            let row: Option<TradeRow> = self
                .clickhouse
                .query("SELECT ?fields FROM trades WHERE symbol = ? ORDER BY ts_ms DESC LIMIT 1")
                .bind(symbol.as_str())
                .fetch_optional()
                .await?;
            Ok::<_, ApiError>(row.map(|row| stored::trade(symbol, row)))
        };
        self.read_through(&self.keys.trade(symbol), newest).await
    }
}
