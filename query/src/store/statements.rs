//! Every SQL statement the query service sends to ClickHouse, in one
//! place (its own `/v1` routes' and the vendor-compatible ones'): the
//! store's reads use these texts, and [`catalog`] renders each
//! with sample bound values (and `?fields` expanded) so that a check can
//! run them all against another ClickHouse (`scripts/check-clickhouse-current.sh`).

use clickhouse::Row;
use insite_sinks::clickhouse::rows::{AlertRow, BarRow, QuoteRow, SentimentRow, TradeRow};

/// Readiness.
pub const PING: &str = "SELECT 1";

/// The newest trending window of an interval: `interval_s` twice.
pub const TRENDING_LATEST: &str =
    "SELECT window_start_ms, symbol, mentions, zscore FROM trending FINAL \
     WHERE interval_s = ? AND window_start_ms = \
     (SELECT max(window_start_ms) FROM trending WHERE interval_s = ?) \
     ORDER BY rank";

/// Recent alerts of a symbol: symbol, limit.
pub const ALERTS_OF_SYMBOL: &str = "SELECT ?fields FROM alerts FINAL WHERE symbol = ? \
     ORDER BY window_start_ms DESC LIMIT ?";

/// Recent alerts of every symbol: limit.
pub const ALERTS_ALL: &str =
    "SELECT ?fields FROM alerts FINAL ORDER BY window_start_ms DESC LIMIT ?";

/// The newest bar: symbol, interval_s.
pub const LATEST_BAR: &str = "SELECT ?fields FROM bars FINAL WHERE symbol = ? AND interval_s = ? \
     ORDER BY window_start_ms DESC LIMIT 1";

/// The latest quote: symbol.
pub const LATEST_QUOTE: &str =
    "SELECT ?fields FROM quotes WHERE symbol = ? ORDER BY ts_ms DESC LIMIT 1";

/// The latest trade: symbol.
pub const LATEST_TRADE: &str =
    "SELECT ?fields FROM trades WHERE symbol = ? ORDER BY ts_ms DESC LIMIT 1";

/// The most traded symbols of the last day: since (seconds), limit.
pub const WARM_TOP_SYMBOLS: &str = "SELECT symbol FROM bars WHERE window_start >= toDateTime(?) \
     GROUP BY symbol ORDER BY sum(trades) DESC LIMIT ?";

/// A pipeline's newest durable frontier of a source: pipeline, source.
pub const FRONTIER: &str = "SELECT argMax(durable_ms, version) FROM pipeline_checkpoints \
     WHERE pipeline = ? AND source = ? GROUP BY pipeline, source";

/// Results of `table` over a range: symbol, interval_s, from and to
/// (seconds), from and to (ms), limit.
pub fn range(table: &str) -> String {
    format!(
        "SELECT ?fields FROM {table} FINAL WHERE symbol = ? AND interval_s = ? \
         AND window_start >= toDateTime(?) AND window_start <= toDateTime(?) \
         AND window_start_ms >= ? AND window_start_ms < ? \
         ORDER BY window_start_ms LIMIT ?"
    )
}

/// The newest results of `table` for warming: symbol, interval_s, limit.
pub fn warm_history(table: &str) -> String {
    format!(
        "SELECT ?fields FROM {table} FINAL WHERE symbol = ? AND interval_s = ? \
         ORDER BY window_start_ms DESC LIMIT ?"
    )
}

/// Which symbols a vendor granule read ([`granules`]) covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolFilter {
    /// One symbol, bound as a string.
    One,
    /// A list of symbols, bound as an array.
    Many,
    /// Every symbol: nothing bound.
    All,
}

/// The vendor aggregates' read: final bars of one stored interval combined
/// per epoch-aligned span ("granule"), per symbol. Binds: the span (ms)
/// twice, the symbol or symbols (per `filter`), interval_s, from and to
/// (seconds), from and to (ms), and a limit when `limited`. The result's
/// aliases differ from the column names (`g_open`, ...), which ClickHouse
/// would otherwise read as the aggregates themselves.
pub fn granules(filter: SymbolFilter, desc: bool, limited: bool) -> String {
    let symbol_filter = match filter {
        SymbolFilter::One => "symbol = ? AND",
        SymbolFilter::Many => "has(?, symbol) AND",
        SymbolFilter::All => "",
    };
    let order = if desc { "DESC" } else { "ASC" };
    let limit = if limited { "LIMIT ?" } else { "" };
    format!(
        "SELECT symbol, intDiv(window_start_ms, ?) * ? AS g, \
         argMin(open, window_start_ms) AS g_open, max(high) AS g_high, \
         min(low) AS g_low, argMax(close, window_start_ms) AS g_close, \
         sum(volume) AS g_volume, sum(vwap * volume) AS g_notional, \
         sum(trades) AS g_trades, max(window_start_ms) AS g_last \
         FROM bars FINAL WHERE {symbol_filter} interval_s = ? \
         AND window_start >= toDateTime(?) AND window_start <= toDateTime(?) \
         AND window_start_ms >= ? AND window_start_ms < ? \
         GROUP BY symbol, g ORDER BY symbol, g {order} {limit}"
    )
}

/// The newest stored bar of a symbol before a time (the vendor's previous
/// close, open/close and snapshots find their day by it): symbol,
/// interval_s, before (ms). Answers the newest window start and the count.
pub const NEWEST_BAR_BEFORE_OF_SYMBOL: &str =
    "SELECT max(window_start_ms) AS m, count() AS n FROM bars \
     WHERE symbol = ? AND interval_s = ? AND window_start_ms < ?";

/// [`NEWEST_BAR_BEFORE_OF_SYMBOL`] over every symbol (grouped daily, the
/// snapshots of all tickers): interval_s, before (ms).
pub const NEWEST_BAR_BEFORE: &str = "SELECT max(window_start_ms) AS m, count() AS n FROM bars \
     WHERE interval_s = ? AND window_start_ms < ?";

/// `sql` as the client sends it for rows of type `R`: `?fields` replaced
/// by the row's columns.
fn with_fields<R: Row>(sql: String) -> String {
    let fields = R::COLUMN_NAMES
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(",");
    sql.replace("?fields", &fields)
}

/// Every statement above, named, with sample values bound as the client
/// binds them (the same escaping).
pub fn catalog() -> Vec<(&'static str, String)> {
    let client = clickhouse::Client::default();
    let q = |sql: &str| client.query(sql);
    let text = |query: clickhouse::query::Query| query.sql_display().to_string();
    let from_s: u32 = 1_709_251_200;
    let to_s: u32 = from_s + 86_400;
    vec![
        ("ping", text(q(PING))),
        (
            "trending_latest",
            text(q(TRENDING_LATEST).bind(60u32).bind(60u32)),
        ),
        (
            "alerts_of_symbol",
            with_fields::<AlertRow>(text(q(ALERTS_OF_SYMBOL).bind("AAPL").bind(50u64))),
        ),
        (
            "alerts_all",
            with_fields::<AlertRow>(text(q(ALERTS_ALL).bind(50u64))),
        ),
        (
            "latest_bar",
            with_fields::<BarRow>(text(q(LATEST_BAR).bind("AAPL").bind(60u32))),
        ),
        (
            "latest_quote",
            with_fields::<QuoteRow>(text(q(LATEST_QUOTE).bind("AAPL"))),
        ),
        (
            "latest_trade",
            with_fields::<TradeRow>(text(q(LATEST_TRADE).bind("AAPL"))),
        ),
        (
            "warm_top_symbols",
            text(q(WARM_TOP_SYMBOLS).bind(from_s).bind(100u64)),
        ),
        ("frontier", text(q(FRONTIER).bind("insite").bind("market"))),
        (
            "range_bars",
            with_fields::<BarRow>(text(range_query(&client, "bars", from_s, to_s))),
        ),
        (
            "range_sentiment",
            with_fields::<SentimentRow>(text(range_query(&client, "sentiment", from_s, to_s))),
        ),
        (
            "warm_history_bars",
            with_fields::<BarRow>(text(warm_query(&client, "bars"))),
        ),
        (
            "warm_history_sentiment",
            with_fields::<SentimentRow>(text(warm_query(&client, "sentiment"))),
        ),
        (
            "vendor_granules_of_symbol",
            text(granule_query(&client, SymbolFilter::One, false, None)),
        ),
        (
            "vendor_granules_of_symbol_newest_first",
            text(granule_query(&client, SymbolFilter::One, true, Some(121))),
        ),
        (
            "vendor_granules_of_symbols",
            text(granule_query(&client, SymbolFilter::Many, false, None)),
        ),
        (
            "vendor_granules_of_every_symbol",
            text(granule_query(&client, SymbolFilter::All, false, None)),
        ),
        (
            "vendor_newest_bar_before_of_symbol",
            text(
                q(NEWEST_BAR_BEFORE_OF_SYMBOL)
                    .bind("AAPL")
                    .bind(60u32)
                    .bind(u64::from(to_s) * 1_000),
            ),
        ),
        (
            "vendor_newest_bar_before",
            text(
                q(NEWEST_BAR_BEFORE)
                    .bind(60u32)
                    .bind(u64::from(to_s) * 1_000),
            ),
        ),
    ]
}

/// A granule read of one day's spans (the sample day) of 1-minute bars,
/// bound as `Store::granules` binds it.
fn granule_query(
    client: &clickhouse::Client,
    filter: SymbolFilter,
    desc: bool,
    limit: Option<u64>,
) -> clickhouse::query::Query {
    let from_s: u32 = 1_709_251_200;
    let to_s: u32 = from_s + 86_400;
    let day_ms: u64 = 86_400_000;
    let mut query = client
        .query(&granules(filter, desc, limit.is_some()))
        .bind(day_ms)
        .bind(day_ms);
    match filter {
        SymbolFilter::One => query = query.bind("AAPL"),
        SymbolFilter::Many => query = query.bind(vec!["AAPL", "MSFT"]),
        SymbolFilter::All => {}
    }
    query = query
        .bind(60u32)
        .bind(from_s)
        .bind(to_s)
        .bind(u64::from(from_s) * 1_000)
        .bind(u64::from(to_s) * 1_000);
    if let Some(limit) = limit {
        query = query.bind(limit);
    }
    query
}

fn range_query(
    client: &clickhouse::Client,
    table: &str,
    from_s: u32,
    to_s: u32,
) -> clickhouse::query::Query {
    client
        .query(&range(table))
        .bind("AAPL")
        .bind(60u32)
        .bind(from_s)
        .bind(to_s)
        .bind(u64::from(from_s) * 1_000)
        .bind(u64::from(to_s) * 1_000)
        .bind(5_000u64)
}

fn warm_query(client: &clickhouse::Client, table: &str) -> clickhouse::query::Query {
    client
        .query(&warm_history(table))
        .bind("AAPL")
        .bind(60u32)
        .bind(500u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_is_rendered_with_its_values_bound() {
        for (name, sql) in catalog() {
            assert!(!sql.contains('?'), "{name}: {sql}");
            assert!(sql.starts_with("SELECT "), "{name}: {sql}");
        }
        let (_, latest) = catalog()
            .into_iter()
            .find(|(n, _)| *n == "latest_quote")
            .unwrap();
        assert!(latest.contains("WHERE symbol = 'AAPL'"), "{latest}");
        assert!(latest.contains("`bid`"), "{latest}");
    }
}
