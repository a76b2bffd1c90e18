//! One-minute bars from both systems, and their comparison: Bytewax's from
//! its CSV, insite's from ClickHouse (`bars FINAL`, `interval_s = 60`).
//! Open, high, low, close, volume and trade count must be equal exactly,
//! VWAP within [`VWAP_RELATIVE`] (insite sums notional in fixed point,
//! the Python fold in `f64`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::Context;

/// The largest relative difference of two VWAPs that counts as equal.
pub const VWAP_RELATIVE: f64 = 1e-9;

/// One bar's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarValues {
    /// Open.
    pub open: f64,
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
    /// Volume.
    pub volume: u64,
    /// VWAP.
    pub vwap: f64,
    /// Trades.
    pub trades: u64,
}

impl BarValues {
    /// Whether `other` is the same bar (VWAP within [`VWAP_RELATIVE`]).
    fn matches(&self, other: &BarValues) -> bool {
        let vwap_scale = self.vwap.abs().max(other.vwap.abs()).max(f64::MIN_POSITIVE);
        self.open == other.open
            && self.high == other.high
            && self.low == other.low
            && self.close == other.close
            && self.volume == other.volume
            && self.trades == other.trades
            && (self.vwap - other.vwap).abs() <= VWAP_RELATIVE * vwap_scale
    }
}

impl fmt::Display for BarValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "o {} h {} l {} c {} v {} vwap {} n {}",
            self.open, self.high, self.low, self.close, self.volume, self.vwap, self.trades
        )
    }
}

/// Bars by (symbol, window start in epoch ms).
pub type BarSet = BTreeMap<(String, u64), BarValues>;

/// Reads Bytewax's bars CSV (no header;
/// `symbol,window_start_ms,open,high,low,close,volume,vwap,trades`).
pub fn read_bytewax(path: &Path) -> anyhow::Result<BarSet> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bars = BarSet::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let parsed =
            parse_line(line).with_context(|| format!("{}:{}: {line:?}", path.display(), i + 1))?;
        anyhow::ensure!(
            bars.insert(parsed.0.clone(), parsed.1).is_none(),
            "{}:{}: a second bar for {} at {}",
            path.display(),
            i + 1,
            parsed.0 .0,
            parsed.0 .1
        );
    }
    Ok(bars)
}

fn parse_line(line: &str) -> anyhow::Result<((String, u64), BarValues)> {
    let f: Vec<&str> = line.split(',').collect();
    anyhow::ensure!(f.len() == 9, "{} fields, not 9", f.len());
    let float = |i: usize| {
        f[i].parse::<f64>()
            .with_context(|| format!("field {}", i + 1))
    };
    let int = |i: usize| {
        f[i].parse::<u64>()
            .with_context(|| format!("field {}", i + 1))
    };
    Ok((
        (f[0].to_owned(), int(1)?),
        BarValues {
            open: float(2)?,
            high: float(3)?,
            low: float(4)?,
            close: float(5)?,
            volume: int(6)?,
            vwap: float(7)?,
            trades: int(8)?,
        },
    ))
}

/// insite's final 1-minute bars in `client`'s database.
pub async fn read_insite(client: &clickhouse::Client) -> anyhow::Result<BarSet> {
    type Row = (String, u64, f64, f64, f64, f64, u64, f64, u64);
    let rows = client
        .query(
            "SELECT symbol, window_start_ms, open, high, low, close, volume, vwap, trades \
             FROM bars FINAL WHERE interval_s = 60 ORDER BY symbol, window_start_ms",
        )
        .fetch_all::<Row>()
        .await
        .context("reading the 1-minute bars from ClickHouse")?;
    Ok(rows
        .into_iter()
        .map(
            |(symbol, start, open, high, low, close, volume, vwap, trades)| {
                (
                    (symbol, start),
                    BarValues {
                        open,
                        high,
                        low,
                        close,
                        volume,
                        vwap,
                        trades,
                    },
                )
            },
        )
        .collect())
}

/// How two bar sets differ.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Bars in both.
    pub compared: usize,
    /// Bars in both with the same values.
    pub equal: usize,
    /// Bars in both with different values: key, reference, insite.
    pub different: Vec<((String, u64), BarValues, BarValues)>,
    /// Bars only in the reference (Bytewax).
    pub missing: Vec<(String, u64)>,
    /// Bars only in insite.
    pub extra: Vec<(String, u64)>,
}

impl Comparison {
    /// Whether the two sets are the same.
    pub fn identical(&self) -> bool {
        self.different.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }

    /// Prints up to `limit` of each kind of difference to stderr.
    pub fn print_differences(&self, what: &str, limit: usize) {
        for (key, reference, insite) in self.different.iter().take(limit) {
            eprintln!(
                "{what}: {} at {}: Bytewax {reference} | insite {insite}",
                key.0, key.1
            );
        }
        for key in self.missing.iter().take(limit) {
            eprintln!("{what}: {} at {}: only in Bytewax", key.0, key.1);
        }
        for key in self.extra.iter().take(limit) {
            eprintln!("{what}: {} at {}: only in insite", key.0, key.1);
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} bars equal, {} different, {} only in Bytewax, {} only in insite",
            self.equal,
            self.compared,
            self.different.len(),
            self.missing.len(),
            self.extra.len()
        )
    }
}

/// Compares insite's bars with the reference's.
pub fn compare(reference: &BarSet, insite: &BarSet) -> Comparison {
    let mut c = Comparison::default();
    for (key, expected) in reference {
        match insite.get(key) {
            Some(got) => {
                c.compared += 1;
                if expected.matches(got) {
                    c.equal += 1;
                } else {
                    c.different.push((key.clone(), *expected, *got));
                }
            }
            None => c.missing.push(key.clone()),
        }
    }
    c.extra = insite
        .keys()
        .filter(|k| !reference.contains_key(*k))
        .cloned()
        .collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(close: f64, vwap: f64) -> BarValues {
        BarValues {
            open: 10.0,
            high: 11.0,
            low: 9.5,
            close,
            volume: 300,
            vwap,
            trades: 3,
        }
    }

    #[test]
    fn values_equal_exactly_and_vwap_within_tolerance() {
        let reference: BarSet = [
            (("AAPL".to_owned(), 0), bar(10.5, 10.25)),
            (("AAPL".to_owned(), 60_000), bar(10.5, 10.25)),
            (("MSFT".to_owned(), 0), bar(10.5, 10.25)),
        ]
        .into();
        let insite: BarSet = [
            (("AAPL".to_owned(), 0), bar(10.5, 10.25 * (1.0 + 1e-12))),
            (("AAPL".to_owned(), 60_000), bar(10.51, 10.25)),
            (("IBM".to_owned(), 0), bar(10.5, 10.25)),
        ]
        .into();
        let c = compare(&reference, &insite);
        assert_eq!((c.compared, c.equal), (2, 1));
        assert_eq!(c.different.len(), 1);
        assert_eq!(c.different[0].0, ("AAPL".to_owned(), 60_000));
        assert_eq!(c.missing, vec![("MSFT".to_owned(), 0)]);
        assert_eq!(c.extra, vec![("IBM".to_owned(), 0)]);
        assert!(!c.identical());
        assert!(compare(&reference, &reference).identical());
        assert!(!bar(10.5, 10.25).matches(&bar(10.5, 10.25 * (1.0 + 1e-8))));
    }

    #[test]
    fn reads_the_bytewax_csv() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.csv");
        std::fs::write(
            &path,
            "AAPL,1709562600000,100.03,100.75,100.0,100.31,195187,100.30392982114594,813\n",
        )
        .unwrap();
        let bars = read_bytewax(&path).unwrap();
        let got = bars[&("AAPL".to_owned(), 1_709_562_600_000)];
        assert_eq!(got.vwap, 100.30392982114594);
        assert_eq!((got.volume, got.trades, got.high), (195_187, 813, 100.75));
        std::fs::write(&path, "AAPL,1,2\n").unwrap();
        assert!(read_bytewax(&path).is_err());
    }
}
