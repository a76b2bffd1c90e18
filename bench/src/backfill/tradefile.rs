//! The benchmark's input: a deterministic trades CSV in insite's native
//! layout (`symbol,ts,price,size,trade_id,exchange`, `ts` in epoch
//! milliseconds), one file sorted by time.
//!
//! Consecutive trades are 1 or 2 ms apart (so no two share a timestamp),
//! each on a symbol drawn uniformly; every symbol's price is a random walk
//! in whole cents (written with two decimals, so that every reader parses
//! the same `f64`); sizes are round lots (60 %) or odd lots; trade ids are
//! the line's index, so every trade is distinct. The same seed, count,
//! symbols and start give the same bytes.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Well-known tickers, used first.
const TICKERS: [&str; 50] = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B", "JPM", "V", "UNH", "XOM",
    "JNJ", "WMT", "MA", "PG", "AVGO", "HD", "CVX", "MRK", "ABBV", "LLY", "PEP", "KO", "COST",
    "ADBE", "CSCO", "TMO", "MCD", "CRM", "ACN", "ABT", "DHR", "NFLX", "AMD", "LIN", "TXN", "NKE",
    "DIS", "WFC", "PM", "INTC", "VZ", "CMCSA", "NEE", "ORCL", "UPS", "QCOM", "HON", "IBM",
];

/// Venues, as exchange codes.
const VENUES: [&str; 6] = ["XNAS", "XNYS", "ARCX", "BATS", "EDGX", "IEXG"];

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct TradeFileSpec {
    /// Trades (lines after the header).
    pub trades: u64,
    /// Symbols.
    pub symbols: usize,
    /// RNG seed.
    pub seed: u64,
    /// Event time of the first trade, epoch ms.
    pub start_ms: i64,
}

/// What was generated.
#[derive(Debug, Clone, Copy)]
pub struct TradeFile {
    /// Trades written.
    pub trades: u64,
    /// Event time of the first trade, epoch ms.
    pub first_ms: i64,
    /// Event time of the last trade, epoch ms.
    pub last_ms: i64,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// The `i`-th symbol's name.
fn symbol_name(i: usize) -> String {
    TICKERS
        .get(i)
        .map_or_else(|| format!("S{i:05}"), |t| (*t).to_owned())
}

/// Writes the file described by `spec` to `path`.
pub fn generate(path: &Path, spec: TradeFileSpec) -> anyhow::Result<TradeFile> {
    anyhow::ensure!(spec.symbols > 0, "--symbols must be at least 1");
    anyhow::ensure!(spec.trades > 0, "--trades must be at least 1");
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let names: Vec<String> = (0..spec.symbols).map(symbol_name).collect();
    // Starting prices between $20 and $500, in cents.
    let mut cents: Vec<i64> = (0..spec.symbols)
        .map(|_| rng.random_range(2_000..50_000))
        .collect();
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "symbol,ts,price,size,trade_id,exchange")?;
    let mut ts = spec.start_ms;
    let first_ms = ts;
    for i in 0..spec.trades {
        if i > 0 {
            ts += rng.random_range(1..=2);
        }
        let s = rng.random_range(0..spec.symbols);
        let price = &mut cents[s];
        *price = (*price + rng.random_range(-5..=5)).max(1);
        let size: u64 = if rng.random_bool(0.6) {
            100 * rng.random_range(1..=10)
        } else {
            rng.random_range(1..100)
        };
        let venue = VENUES[rng.random_range(0..VENUES.len())];
        writeln!(
            out,
            "{},{ts},{}.{:02},{size},{i},{venue}",
            names[s],
            *price / 100,
            *price % 100
        )?;
    }
    out.flush()?;
    let bytes = out
        .into_inner()
        .map_err(|e| e.into_error())?
        .metadata()?
        .len();
    Ok(TradeFile {
        trades: spec.trades,
        first_ms,
        last_ms: ts,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TradeFileSpec {
        TradeFileSpec {
            trades: 2_000,
            symbols: 60,
            seed: 3,
            start_ms: 1_709_562_600_000,
        }
    }

    #[test]
    fn same_spec_same_bytes_sorted_and_spaced() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        let made = generate(&a, spec()).unwrap();
        generate(&b, spec()).unwrap();
        let text = std::fs::read_to_string(&a).unwrap();
        assert_eq!(text, std::fs::read_to_string(&b).unwrap());
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("symbol,ts,price,size,trade_id,exchange"));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len() as u64, made.trades);
        let ts: Vec<i64> = rows.iter().map(|r| r[1].parse().unwrap()).collect();
        assert_eq!(ts[0], made.first_ms);
        assert_eq!(*ts.last().unwrap(), made.last_ms);
        assert!(ts.windows(2).all(|w| (1..=2).contains(&(w[1] - w[0]))));
        assert!(rows.iter().all(|r| r[2].parse::<f64>().unwrap() > 0.0));
        // Past the 50 well-known tickers, names are generated.
        assert!(rows
            .iter()
            .any(|r| r[0].starts_with('S') && r[0].len() == 6));
        assert_eq!(made.bytes, text.len() as u64);
    }
}
