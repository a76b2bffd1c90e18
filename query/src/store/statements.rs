//! Every SQL statement the query service sends to ClickHouse, in one
//! place: the store's reads use these texts, and [`catalog`] renders each
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
    ]
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
