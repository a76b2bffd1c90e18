//! Rolling stored bars up into the vendor's buckets, exactly: open is the
//! first bar's open, close the last bar's close, high and low the extremes,
//! volume and trade count the sums, and VWAP the volume-weighted mean of the
//! bars' VWAPs, i.e. Σ(vwap × volume) / Σ volume. A stored bar's
//! `vwap × volume` is its notional (Σ price × size of its trades) to within
//! one rounding of a double, so the rolled-up VWAP equals the VWAP of the
//! bucket's trades to about 1e-15 relative.
//!
//! Bars come in as [`Granule`]s: bars already combined over an
//! epoch-aligned span (by ClickHouse, or one bar from Redis), which a
//! bucket is always a whole number of ([`super::calendar`]).

use insite_schemas::{Bar, TimestampMs};

use super::calendar::Bucketing;

/// Bars combined over one epoch-aligned span (or over one bucket).
#[derive(Debug, Clone, PartialEq)]
pub struct Granule {
    /// Start of the span (or bucket), ms.
    pub start: TimestampMs,
    /// Window start of the newest bar in it, ms.
    pub last_bar: TimestampMs,
    /// The first bar's open.
    pub open: f64,
    /// The highest high.
    pub high: f64,
    /// The lowest low.
    pub low: f64,
    /// The last bar's close.
    pub close: f64,
    /// Σ volume.
    pub volume: u64,
    /// Σ vwap × volume of the bars (the notional).
    pub notional: f64,
    /// Σ trades.
    pub trades: u64,
}

impl Granule {
    /// One bar as the granule of span `granule_ms` holding it.
    pub fn of_bar(bar: &Bar, granule_ms: i64) -> Self {
        Self {
            start: bar.window_start - bar.window_start.rem_euclid(granule_ms),
            last_bar: bar.window_start,
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
            notional: bar.vwap * bar.volume as f64,
            trades: bar.trades,
        }
    }

    /// Adds the bars of `later`, all of which are newer than this one's.
    pub fn absorb(&mut self, later: &Granule) {
        self.last_bar = later.last_bar;
        self.high = self.high.max(later.high);
        self.low = self.low.min(later.low);
        self.close = later.close;
        self.volume = self.volume.saturating_add(later.volume);
        self.notional += later.notional;
        self.trades = self.trades.saturating_add(later.trades);
    }

    /// The volume-weighted average price (0 without volume).
    pub fn vwap(&self) -> f64 {
        if self.volume == 0 {
            0.0
        } else {
            self.notional / self.volume as f64
        }
    }
}

/// Granules (sorted by start, oldest first, none overlapping) rolled up
/// into the buckets of `bucketing`, oldest first; each result's `start` is
/// its bucket's start.
pub fn roll_up(granules: &[Granule], bucketing: Bucketing) -> Vec<Granule> {
    let mut out: Vec<Granule> = Vec::new();
    for g in granules {
        let start = bucketing.start(g.start);
        match out.last_mut() {
            Some(bucket) if bucket.start == start => bucket.absorb(g),
            _ => out.push(Granule { start, ..g.clone() }),
        }
    }
    out
}

/// Adds newer bars (from Redis, not yet in ClickHouse) to `granules`
/// (sorted, oldest first): a bar newer than every granule's last bar
/// joins its granule or starts one; an older one is already counted.
pub fn merge_newer(granules: &mut Vec<Granule>, mut bars: Vec<Bar>, granule_ms: i64) {
    bars.sort_by_key(|b| b.window_start);
    for bar in bars {
        let newest = granules.iter().map(|g| g.last_bar).max();
        if newest.is_some_and(|n| bar.window_start <= n) {
            continue;
        }
        let g = Granule::of_bar(&bar, granule_ms);
        match granules.iter_mut().find(|x| x.start == g.start) {
            Some(x) => x.absorb(&g),
            None => {
                let at = granules.partition_point(|x| x.start < g.start);
                granules.insert(at, g);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::calendar::Timespan;
    use super::*;
    use insite_schemas::Interval;
    use proptest::prelude::*;

    fn bar(start: i64, price: f64, volume: u64) -> Bar {
        insite_schemas::fixtures::bar("AAPL", Interval::MINUTE, start)
            .ohlc(price, price + 1.0, price - 1.0, price + 0.5)
            .vwap(price + 0.25)
            .volume(volume)
            .trades(3)
            .build()
    }

    #[test]
    fn five_minutes_from_one_minute_bars() {
        let bars: Vec<Granule> = (0..10)
            .map(|i| Granule::of_bar(&bar(i * 60_000, 10.0 + i as f64, 100), 60_000))
            .collect();
        let b = Bucketing::new(5, Timespan::Minute).unwrap();
        let out = roll_up(&bars, b);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].start, 0);
        assert_eq!(out[0].open, 10.0);
        assert_eq!(out[0].close, 14.5);
        assert_eq!(out[0].high, 15.0);
        assert_eq!(out[0].low, 9.0);
        assert_eq!(out[0].volume, 500);
        assert_eq!(out[0].trades, 15);
        assert!((out[0].vwap() - 12.25).abs() < 1e-12);
        assert_eq!(out[1].start, 300_000);
    }

    #[test]
    fn newer_bars_join_without_double_counting() {
        let mut granules = vec![Granule::of_bar(&bar(0, 10.0, 100), 300_000)];
        merge_newer(
            &mut granules,
            vec![
                bar(0, 99.0, 1),
                bar(60_000, 11.0, 50),
                bar(300_000, 12.0, 7),
            ],
            300_000,
        );
        assert_eq!(granules.len(), 2);
        assert_eq!(granules[0].volume, 150);
        assert_eq!(granules[0].close, 11.5);
        assert_eq!(granules[1].volume, 7);
    }

    proptest! {
        /// Rolling up in two steps (minutes, then hours of them) is the
        /// same as rolling the bars straight into hours.
        #[test]
        fn roll_ups_compose(
            bars in proptest::collection::btree_map(0i64..600, (1.0f64..500.0, 1u64..10_000), 1..200)
        ) {
            let bars: Vec<Granule> = bars
                .iter()
                .map(|(i, (p, v))| Granule::of_bar(&bar(i * 60_000, *p, *v), 60_000))
                .collect();
            let hour = Bucketing::new(1, Timespan::Hour).unwrap();
            let ten = Bucketing::new(10, Timespan::Minute).unwrap();
            let direct = roll_up(&bars, hour);
            let stepped = roll_up(&roll_up(&bars, ten), hour);
            prop_assert_eq!(direct.len(), stepped.len());
            for (a, b) in direct.iter().zip(&stepped) {
                prop_assert_eq!((a.start, a.open, a.close, a.high, a.low, a.volume, a.trades),
                    (b.start, b.open, b.close, b.high, b.low, b.volume, b.trades));
                prop_assert!((a.vwap() - b.vwap()).abs() <= 1e-9 * a.vwap());
            }
            let volume: u64 = bars.iter().map(|g| g.volume).sum();
            prop_assert_eq!(direct.iter().map(|g| g.volume).sum::<u64>(), volume);
        }
    }
}
