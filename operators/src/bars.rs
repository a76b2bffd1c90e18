//! OHLCV + VWAP bars per symbol per epoch-aligned interval.
//!
//! - **open / close**: the price of the first / last trade by event time,
//!   ties broken by (trade id, exchange, price, size), never by arrival;
//! - **high / low**: extreme prices; **volume**: total shares; **trades**:
//!   count;
//! - **VWAP**: `Σ price·size / Σ size`, with the numerator accumulated
//!   exactly in fixed point (price in nano-units, rounded, times size, as
//!   `i128`), so the sum does not depend on arrival order or worker count;
//!   the VWAP thus carries an error of at most 5·10⁻¹⁰ in price units.
//!
//! Every interval is computed from the trades directly (a trade late for
//! 1 s may still count in 1 m). Finals are emitted at time = window end,
//! provisionals at the configured cadence.
//!
//! ```
//! use insite_operators::bars::Bars;
//! use insite_schemas::{Finality, Interval, Symbol, Trade};
//! use timely::dataflow::operators::{Capture, ToStream};
//!
//! let captured = timely::execute_directly(|worker| worker.dataflow::<i64, _, _>(|scope| {
//!     let trade = |ts, price, size| Trade {
//!         symbol: Symbol::new("ACME").unwrap(), ts, price, size,
//!         exchange: "X".into(), trade_id: format!("{ts}").into(), conditions: vec![],
//!     };
//!     vec![trade(1_000, 10.0, 100), trade(1_500, 12.0, 100), trade(1_200, 9.0, 200)]
//!         .to_stream(scope)
//!         .container::<Vec<_>>()
//!         .bars(&[Interval::SECOND], std::time::Duration::ZERO)
//!         .capture()
//! }));
//! let finals: Vec<_> = insite_operators::captured(captured)
//!     .into_iter()
//!     .filter(|(_, b)| b.finality == Finality::Final)
//!     .collect();
//! assert_eq!(finals.len(), 1);
//! let (time, bar) = &finals[0];
//! assert_eq!(*time, 2_000); // emitted at the window's end
//! assert_eq!((bar.open, bar.high, bar.low, bar.close), (10.0, 12.0, 9.0, 12.0));
//! assert_eq!((bar.volume, bar.trades), (400, 3));
//! assert!((bar.vwap - 10.0).abs() < 1e-9);
//! ```

use std::cmp::Ordering;
use std::time::Duration;

use compact_str::CompactString;
use insite_schemas::{Bar, Finality, Interval, Symbol, TimestampMs, Trade};
use timely::dataflow::StreamVec;

use crate::window::WindowSpec;
use crate::windowed::{windowed, Aggregate};

/// Fixed-point scale of prices in the VWAP numerator.
pub const VWAP_PRICE_SCALE: f64 = 1e9;

/// The deterministic order of trades within a window: (ts, trade id,
/// exchange, price, size).
#[derive(Debug, Clone)]
struct TradeKey {
    ts: TimestampMs,
    trade_id: CompactString,
    exchange: CompactString,
    price: f64,
    size: u64,
}

impl TradeKey {
    fn of(trade: &Trade) -> Self {
        Self {
            ts: trade.ts,
            trade_id: trade.trade_id.clone(),
            exchange: trade.exchange.clone(),
            price: trade.price,
            size: trade.size,
        }
    }

    fn cmp_trade(&self, trade: &Trade) -> Ordering {
        self.ts
            .cmp(&trade.ts)
            .then_with(|| self.trade_id.cmp(&trade.trade_id))
            .then_with(|| self.exchange.cmp(&trade.exchange))
            .then_with(|| self.price.total_cmp(&trade.price))
            .then_with(|| self.size.cmp(&trade.size))
    }
}

/// The order in which open and close are chosen, exposed for reference
/// computations: compares (ts, trade id, exchange, price, size).
pub fn trade_order(a: &Trade, b: &Trade) -> Ordering {
    TradeKey::of(a).cmp_trade(b)
}

/// The VWAP numerator contribution of one trade (fixed point, exact).
pub fn vwap_contribution(trade: &Trade) -> i128 {
    // Prices are validated finite and positive; the cast saturates anyway.
    ((trade.price * VWAP_PRICE_SCALE).round() as i128) * i128::from(trade.size)
}

/// VWAP from a fixed-point numerator and a volume.
pub fn vwap_from(numerator: i128, volume: u64) -> f64 {
    if volume == 0 {
        0.0
    } else {
        numerator as f64 / VWAP_PRICE_SCALE / volume as f64
    }
}

/// A bar under construction.
#[derive(Debug, Clone)]
pub(crate) struct BarAcc {
    open_key: TradeKey,
    open: f64,
    close_key: TradeKey,
    close: f64,
    high: f64,
    low: f64,
    volume: u64,
    notional: i128,
    trades: u64,
}

struct BarAggregate;

impl BarAggregate {
    fn bar(
        symbol: &Symbol,
        spec: WindowSpec,
        start: TimestampMs,
        acc: &BarAcc,
        finality: Finality,
    ) -> Bar {
        Bar {
            symbol: symbol.clone(),
            interval: spec.size,
            window_start: start,
            open: acc.open,
            high: acc.high,
            low: acc.low,
            close: acc.close,
            volume: acc.volume,
            vwap: vwap_from(acc.notional, acc.volume),
            trades: acc.trades,
            finality,
        }
    }
}

impl Aggregate for BarAggregate {
    type In = Trade;
    type Acc = BarAcc;
    type Out = Bar;
    const PROVISIONAL: bool = true;

    fn symbol(record: &Trade) -> &Symbol {
        &record.symbol
    }

    fn ts(record: &Trade) -> TimestampMs {
        record.ts
    }

    fn first(trade: &Trade) -> BarAcc {
        let key = TradeKey::of(trade);
        BarAcc {
            open_key: key.clone(),
            open: trade.price,
            close_key: key,
            close: trade.price,
            high: trade.price,
            low: trade.price,
            volume: trade.size,
            notional: vwap_contribution(trade),
            trades: 1,
        }
    }

    fn add(acc: &mut BarAcc, trade: &Trade) {
        if acc.close_key.cmp_trade(trade) == Ordering::Less {
            acc.close_key = TradeKey::of(trade);
            acc.close = trade.price;
        }
        if acc.open_key.cmp_trade(trade) == Ordering::Greater {
            acc.open_key = TradeKey::of(trade);
            acc.open = trade.price;
        }
        acc.high = acc.high.max(trade.price);
        acc.low = acc.low.min(trade.price);
        acc.volume = acc.volume.saturating_add(trade.size);
        acc.notional = acc.notional.saturating_add(vwap_contribution(trade));
        acc.trades += 1;
    }

    fn provisional(
        &self,
        symbol: &Symbol,
        spec: WindowSpec,
        start: TimestampMs,
        acc: &BarAcc,
    ) -> Option<Bar> {
        Some(Self::bar(symbol, spec, start, acc, Finality::Provisional))
    }

    fn finish(
        &mut self,
        symbol: &Symbol,
        spec: WindowSpec,
        start: TimestampMs,
        acc: BarAcc,
    ) -> Option<Bar> {
        Some(Self::bar(symbol, spec, start, &acc, Finality::Final))
    }
}

/// Bars over a stream of trades.
pub trait Bars<'scope> {
    /// OHLCV/VWAP bars per symbol for each of `intervals` (provisional at
    /// most once per `provisional_every`, final at time = window end).
    /// Trades are exchanged by symbol.
    fn bars(
        self,
        intervals: &[Interval],
        provisional_every: Duration,
    ) -> StreamVec<'scope, TimestampMs, Bar>;
}

impl<'scope> Bars<'scope> for StreamVec<'scope, TimestampMs, Trade> {
    fn bars(
        self,
        intervals: &[Interval],
        provisional_every: Duration,
    ) -> StreamVec<'scope, TimestampMs, Bar> {
        let specs = intervals
            .iter()
            .copied()
            .map(WindowSpec::tumbling)
            .collect();
        windowed(self, "Bars", specs, provisional_every, BarAggregate)
    }
}
