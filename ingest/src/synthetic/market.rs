//! The market half of the simulator: per-symbol prices as geometric Brownian
//! motion with jumps, quotes with a spread around the price, trades at the
//! bid, the ask or the midpoint with lognormal / round-lot sizes.

use insite_schemas::{Quote, Symbol, TimestampMs, Trade};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, StandardNormal};

/// Milliseconds of trading in a year (252 sessions of 6.5 h): the unit of
/// the volatilities.
const TRADING_YEAR_MS: f64 = 252.0 * 23_400_000.0;

/// Expected price jumps per trading day and symbol.
const JUMPS_PER_DAY: f64 = 1.5;

/// Venues a trade is reported on, with their share of trades.
const VENUES: [(&str, f64); 6] = [
    ("XNAS", 0.30),
    ("XNYS", 0.22),
    ("ARCX", 0.14),
    ("BATS", 0.14),
    ("EDGX", 0.12),
    ("IEXG", 0.08),
];

/// Well-known tickers used first, in order; further symbols get generated
/// names.
pub(crate) const KNOWN: [&str; 60] = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B", "JPM", "V", "UNH", "XOM",
    "JNJ", "WMT", "MA", "PG", "AVGO", "HD", "CVX", "LLY", "MRK", "ABBV", "KO", "PEP", "COST",
    "ADBE", "CRM", "NFLX", "AMD", "INTC", "CSCO", "ORCL", "BAC", "WFC", "DIS", "MCD", "NKE", "T",
    "VZ", "PFE", "QCOM", "TXN", "IBM", "GS", "MS", "BA", "CAT", "GE", "UBER", "PLTR", "SPY", "QQQ",
    "IWM", "SHOP", "SQ", "PYPL", "COIN", "GME", "AMC", "RIVN",
];

/// One symbol's simulated state.
#[derive(Debug, Clone)]
pub(crate) struct SymbolState {
    /// The ticker.
    pub(crate) symbol: Symbol,
    /// The current (unrounded) mid price.
    pub(crate) mid: f64,
    /// Annualised volatility.
    pub(crate) sigma: f64,
    /// Half the quoted spread, as a fraction of the price.
    pub(crate) half_spread: f64,
    /// When the price was last moved.
    pub(crate) last_ts: TimestampMs,
    /// A slow moving average of the price: the reference for "recent move".
    pub(crate) reference: f64,
}

impl SymbolState {
    /// A symbol with a random starting price, volatility and spread.
    pub(crate) fn new(symbol: Symbol, start: TimestampMs, rng: &mut ChaCha8Rng) -> Self {
        let price = LogNormal::new(80f64.ln(), 0.9)
            .map(|d| d.sample(rng))
            .unwrap_or(80.0)
            .clamp(2.0, 2_000.0);
        let sigma = LogNormal::new(0.35f64.ln(), 0.4)
            .map(|d| d.sample(rng))
            .unwrap_or(0.35)
            .clamp(0.08, 1.5);
        let half_spread = rng.random_range(0.000_05..0.000_6);
        Self {
            symbol,
            mid: price,
            sigma,
            half_spread,
            last_ts: start,
            reference: price,
        }
    }

    /// Moves the price from its last update to `ts`: GBM plus a compound
    /// Poisson jump.
    pub(crate) fn evolve(&mut self, ts: TimestampMs, rng: &mut ChaCha8Rng) {
        let dt_ms = (ts - self.last_ts).max(0) as f64;
        self.last_ts = ts;
        if dt_ms > 0.0 {
            let dt = dt_ms / TRADING_YEAR_MS;
            let z: f64 = StandardNormal.sample(rng);
            let mut log_return = -0.5 * self.sigma * self.sigma * dt + self.sigma * dt.sqrt() * z;
            let jump_probability = JUMPS_PER_DAY * dt_ms / 23_400_000.0;
            if rng.random_bool(jump_probability.clamp(0.0, 1.0)) {
                let size: f64 = StandardNormal.sample(rng);
                log_return += size * 0.015;
            }
            self.mid = (self.mid * log_return.exp()).max(0.05);
        }
        self.reference += 0.002 * (self.mid - self.reference);
    }

    /// The recent move: log of the price over its slow average.
    pub(crate) fn recent_move(&self) -> f64 {
        (self.mid / self.reference).ln()
    }

    fn bid_ask(&self) -> (f64, f64) {
        let half = (self.mid * self.half_spread).max(0.005);
        let bid = round_down_cent(self.mid - half).max(0.01);
        let ask = round_up_cent(self.mid + half).max(bid + 0.01);
        (bid, round_cent(ask))
    }

    /// A quote around the current price.
    pub(crate) fn quote(&self, ts: TimestampMs, rng: &mut ChaCha8Rng) -> Quote {
        let (bid, ask) = self.bid_ask();
        Quote {
            symbol: self.symbol.clone(),
            ts,
            bid,
            bid_size: 100 * rng.random_range(1..=30),
            ask,
            ask_size: 100 * rng.random_range(1..=30),
        }
    }

    /// A trade at the bid, the ask or the midpoint.
    pub(crate) fn trade(
        &self,
        ts: TimestampMs,
        trade_id: compact_str::CompactString,
        rng: &mut ChaCha8Rng,
    ) -> Trade {
        let (bid, ask) = self.bid_ask();
        let u: f64 = rng.random();
        let price = if u < 0.45 {
            bid
        } else if u < 0.9 {
            ask
        } else {
            round_cent((bid + ask) / 2.0)
        };
        let size = if rng.random_bool(0.6) {
            let lots: f64 = LogNormal::new(0.0, 0.9)
                .map(|d| d.sample(rng))
                .unwrap_or(1.0);
            100 * (lots.ceil() as u64).clamp(1, 500)
        } else {
            let shares: f64 = LogNormal::new(40f64.ln(), 1.0)
                .map(|d| d.sample(rng))
                .unwrap_or(40.0);
            (shares.round() as u64).clamp(1, 99_999)
        };
        let mut pick: f64 = rng.random();
        let mut exchange = VENUES[0].0;
        for (venue, share) in VENUES {
            if pick < share {
                exchange = venue;
                break;
            }
            pick -= share;
        }
        Trade {
            symbol: self.symbol.clone(),
            ts,
            price,
            size,
            exchange: exchange.into(),
            trade_id,
            conditions: if size < 100 { vec!["I".into()] } else { vec![] },
        }
    }
}

fn round_cent(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round_down_cent(x: f64) -> f64 {
    (x * 100.0).floor() / 100.0
}

fn round_up_cent(x: f64) -> f64 {
    (x * 100.0).ceil() / 100.0
}

/// The intraday activity multiplier at `phase` (0 at the open, 1 at the
/// close): U-shaped, busy at both ends, averaging 1 over the session.
pub(crate) fn intraday_intensity(phase: f64) -> f64 {
    let x = 2.0 * phase.clamp(0.0, 1.0) - 1.0;
    // 0.55 + 1.8 x^2 averages 1.15 over the session.
    (0.55 + 1.8 * x * x) / 1.15
}

/// `count` distinct symbols: the well-known tickers first, then generated
/// four-letter names.
pub(crate) fn symbol_names(count: usize) -> Vec<Symbol> {
    let mut names: Vec<Symbol> = KNOWN
        .iter()
        .take(count)
        .filter_map(|s| Symbol::new(s).ok())
        .collect();
    let mut seen: std::collections::HashSet<Symbol> = names.iter().cloned().collect();
    let mut n: u32 = 0;
    while names.len() < count {
        let mut text = String::from("Z");
        let mut k = n;
        for _ in 0..3 {
            text.push(char::from(b'A' + (k % 26) as u8));
            k /= 26;
        }
        if n >= 26 * 26 * 26 {
            text.push_str(&(n / (26 * 26 * 26)).to_string());
        }
        n += 1;
        if let Ok(symbol) = Symbol::new(&text) {
            if seen.insert(symbol.clone()) {
                names.push(symbol);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn intensity_is_u_shaped_with_mean_one() {
        let n = 10_000;
        let mean: f64 = (0..n)
            .map(|i| intraday_intensity((i as f64 + 0.5) / n as f64))
            .sum::<f64>()
            / n as f64;
        assert!((mean - 1.0).abs() < 1e-3, "{mean}");
        assert!(intraday_intensity(0.0) > 2.0 * intraday_intensity(0.5));
        assert!(intraday_intensity(1.0) > 2.0 * intraday_intensity(0.5));
    }

    #[test]
    fn names_are_distinct_and_valid_even_for_ten_thousand() {
        let names = symbol_names(10_000);
        assert_eq!(names.len(), 10_000);
        let set: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(set.len(), 10_000);
        assert_eq!(names[0].as_str(), "AAPL");
    }

    #[test]
    fn quotes_and_trades_are_valid() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let t0 = 1_700_000_000_000;
        let mut s = SymbolState::new(Symbol::new("AAPL").unwrap(), t0, &mut rng);
        for i in 1..2_000 {
            s.evolve(t0 + i * 50, &mut rng);
            let q = s.quote(t0 + i * 50, &mut rng);
            q.validate().unwrap();
            assert!(q.ask > q.bid);
            let t = s.trade(t0 + i * 50, i.to_string().into(), &mut rng);
            t.validate().unwrap();
            assert!(t.price >= q.bid && t.price <= q.ask);
        }
    }
}
