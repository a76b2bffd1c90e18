//! Stored data back into schema types: ClickHouse rows (those the sinks
//! write, [`insite_sinks::clickhouse::rows`]) and the JSON Redis holds. What
//! does not decode is a bug ([`ApiError::Internal`]), never the client's.

use insite_schemas::{
    Alert, AlertKind, Bar, Finality, Interval, Quote, SentimentWindow, Symbol, TimestampMs, Trade,
};
use insite_sinks::clickhouse::rows::{AlertRow, BarRow, QuoteRow, SentimentRow, TradeRow};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A symbol read from ClickHouse.
pub(super) fn symbol(s: &str) -> Result<Symbol, ApiError> {
    Symbol::new(s).map_err(|e| ApiError::Internal(format!("stored symbol: {e}")))
}

/// An interval (in seconds) read from ClickHouse.
pub(super) fn interval(s: u32) -> Result<Interval, ApiError> {
    Interval::from_seconds(s).map_err(|e| ApiError::Internal(format!("stored interval: {e}")))
}

/// A timestamp read from ClickHouse (`UInt64` milliseconds).
pub(super) fn ms(ms: u64) -> TimestampMs {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A count bound into SQL (`LIMIT ?`).
pub(super) fn sql_count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// A value Redis holds as JSON; `what` names it in the error.
pub(super) fn decode_json<T: DeserializeOwned>(what: &str, json: &str) -> Result<T, ApiError> {
    serde_json::from_str(json).map_err(|e| ApiError::Internal(format!("stored {what}: {e}")))
}

/// A final bar.
pub(super) fn bar(row: BarRow) -> Result<Bar, ApiError> {
    Ok(Bar {
        symbol: symbol(&row.symbol)?,
        interval: interval(row.interval_s)?,
        window_start: ms(row.window_start_ms),
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

/// A final sentiment window.
pub(super) fn sentiment(row: SentimentRow) -> Result<SentimentWindow, ApiError> {
    Ok(SentimentWindow {
        symbol: symbol(&row.symbol)?,
        interval: interval(row.interval_s)?,
        window_start: ms(row.window_start_ms),
        posts: row.posts,
        score: row.score,
        positive: row.positive,
        negative: row.negative,
        neutral: row.neutral,
        weighted_score: row.weighted_score,
        finality: Finality::Final,
    })
}

/// A quote of `symbol`.
pub(super) fn quote(symbol: &Symbol, row: QuoteRow) -> Quote {
    Quote {
        symbol: symbol.clone(),
        ts: ms(row.ts_ms),
        bid: row.bid,
        bid_size: row.bid_size,
        ask: row.ask,
        ask_size: row.ask_size,
    }
}

/// A trade of `symbol`.
pub(super) fn trade(symbol: &Symbol, row: TradeRow) -> Trade {
    Trade {
        symbol: symbol.clone(),
        ts: ms(row.ts_ms),
        price: row.price,
        size: row.size,
        exchange: row.exchange.into(),
        trade_id: row.trade_id.into(),
        conditions: row.conditions.into_iter().map(Into::into).collect(),
    }
}

/// An alert.
pub(super) fn alert(row: AlertRow) -> Result<Alert, ApiError> {
    let kind: AlertKind = serde_json::from_value(serde_json::Value::String(row.kind))
        .map_err(|e| ApiError::Internal(format!("stored alert kind: {e}")))?;
    Ok(Alert {
        symbol: symbol(&row.symbol)?,
        kind,
        interval: interval(row.interval_s)?,
        window_start: ms(row.window_start_ms),
        value: row.value,
        threshold: row.threshold,
        message: row.message,
    })
}
