//! Builders of plain, valid values for tests: one for each type that tests
//! make by hand, so that no test crate writes its own.
//!
//! Only compiled for this crate's own tests and behind the `test-fixtures`
//! feature, which other crates enable in their `[dev-dependencies]`; the
//! test kit (`insite-testkit`) re-exports this module as
//! `insite_testkit::fixtures`.
//!
//! A provisional minute bar closing at 12.5:
//! `bar("AAPL", Interval::MINUTE, t).close(12.5).finality(Finality::Provisional).build()`.

#![allow(clippy::panic)]

use crate::{Bar, Finality, Interval, Symbol, TimestampMs, Trade};

/// `symbol` as a [`Symbol`].
///
/// # Panics
/// If `symbol` is not a valid symbol: a test's typo, not a case to handle.
pub fn symbol(symbol: &str) -> Symbol {
    Symbol::new(symbol).unwrap_or_else(|e| panic!("fixture symbol {symbol:?}: {e}"))
}

/// A trade of 5 shares at 10.0 on `XNAS`, without conditions.
///
/// Other values by struct update: `Trade { price: 11.0, ..trade(..) }`.
///
/// # Panics
/// If `symbol` is not a valid symbol.
pub fn trade(symbol: &str, ts: TimestampMs, trade_id: &str) -> Trade {
    Trade {
        symbol: self::symbol(symbol),
        ts,
        price: 10.0,
        size: 5,
        exchange: "XNAS".into(),
        trade_id: trade_id.into(),
        conditions: Vec::new(),
    }
}

/// A final bar of `symbol` for the window of `interval` starting at
/// `window_start`: open 10.0, high 11.0, low 9.0, close 10.5, 500 shares in
/// 7 trades at a VWAP of 10.2. The [`BarBuilder`] changes any of it.
///
/// # Panics
/// If `symbol` is not a valid symbol.
pub fn bar(symbol: &str, interval: Interval, window_start: TimestampMs) -> BarBuilder {
    BarBuilder {
        bar: Bar {
            symbol: self::symbol(symbol),
            interval,
            window_start,
            open: 10.0,
            high: 11.0,
            low: 9.0,
            close: 10.5,
            volume: 500,
            vwap: 10.2,
            trades: 7,
            finality: Finality::Final,
        },
    }
}

/// A [`Bar`] under construction, from [`bar`].
#[derive(Debug, Clone)]
#[must_use]
pub struct BarBuilder {
    bar: Bar,
}

impl BarBuilder {
    /// The close; high and low widen to take it in, so the bar stays a
    /// possible one.
    pub fn close(mut self, close: f64) -> Self {
        self.bar.close = close;
        self.bar.high = self.bar.high.max(close);
        self.bar.low = self.bar.low.min(close);
        self
    }

    /// Open, high, low and close, as given.
    pub fn ohlc(mut self, open: f64, high: f64, low: f64, close: f64) -> Self {
        self.bar.open = open;
        self.bar.high = high;
        self.bar.low = low;
        self.bar.close = close;
        self
    }

    /// The volume-weighted average price.
    pub fn vwap(mut self, vwap: f64) -> Self {
        self.bar.vwap = vwap;
        self
    }

    /// The volume, in shares.
    pub fn volume(mut self, volume: u64) -> Self {
        self.bar.volume = volume;
        self
    }

    /// The number of trades.
    pub fn trades(mut self, trades: u64) -> Self {
        self.bar.trades = trades;
        self
    }

    /// Final or provisional.
    pub fn finality(mut self, finality: Finality) -> Self {
        self.bar.finality = finality;
        self
    }

    /// The bar.
    pub fn build(self) -> Bar {
        self.bar
    }
}

impl From<BarBuilder> for Bar {
    fn from(builder: BarBuilder) -> Self {
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_bar_is_valid_and_keeps_what_was_set() {
        let b = bar("BRK.B", Interval::SECOND, 1_000)
            .close(20.0)
            .volume(3)
            .trades(1)
            .finality(Finality::Provisional)
            .build();
        assert_eq!(b.symbol.as_str(), "BRK.B");
        assert_eq!((b.interval, b.window_start), (Interval::SECOND, 1_000));
        assert_eq!((b.open, b.high, b.low, b.close), (10.0, 20.0, 9.0, 20.0));
        assert_eq!((b.volume, b.trades), (3, 1));
        assert_eq!(b.finality, Finality::Provisional);
        let low = bar("AAPL", Interval::MINUTE, 0).close(1.0).build();
        assert_eq!((low.high, low.low), (11.0, 1.0));
    }

    #[test]
    fn a_trade_is_valid() {
        trade("AAPL", 1_700_000_000_000, "1").validate().unwrap();
    }
}
