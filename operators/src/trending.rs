//! Trending symbols: mentions per symbol per sliding window, with a z-score
//! against the symbol's own recent windows, ranked.
//!
//! Per symbol (on the worker owning it) and per window `[s, s + size)`:
//! `mentions` counts the posts mentioning it (a post naming N symbols counts
//! once for each). Its baseline is the symbol's mentions in the previous
//! `baseline_windows` windows `s - k·slide` (k = 1..N), a window without
//! mentions counting 0; with mean μ and population standard deviation σ,
//! `zscore = (mentions - μ) / max(σ, 1)` — σ is floored at one mention so
//! that a flat history (often all zeros for a new symbol) gives a finite
//! score, `mentions - μ`, rather than infinity.
//!
//! Symbols with at least `min_mentions` are gathered on worker 0 and ranked
//! by mentions (descending), then z-score (descending), then symbol; the
//! first `top_n` form the window's [`Trending`] list, emitted at time = the
//! window's end. A window in which no symbol reaches `min_mentions` yields
//! no list. Only final lists are produced.
//!
//! ```
//! use insite_operators::sentiment::Mention;
//! use insite_operators::trending::TrendingWindows;
//! use insite_operators::TrendingConfig;
//! use insite_schemas::{Interval, Symbol};
//! use timely::dataflow::operators::{Capture, ToStream};
//!
//! let config = TrendingConfig { size: Interval::MINUTE, slide: Interval::MINUTE, min_mentions: 1, ..Default::default() };
//! let lists = timely::execute_directly(move |worker| worker.dataflow::<i64, _, _>(|scope| {
//!     let mention = |s: &str| Mention { symbol: Symbol::new(s).unwrap(), ts: 1_000, score: 0.0, weight: 1.0 };
//!     vec![mention("AAA"), mention("BBB"), mention("BBB")]
//!         .to_stream(scope)
//!         .container::<Vec<_>>()
//!         .trending(&config)
//!         .capture()
//! }));
//! let lists = insite_operators::captured(lists);
//! let (time, list) = &lists[0];
//! assert_eq!(*time, 60_000);
//! assert_eq!(list.entries[0].symbol.as_str(), "BBB");
//! assert_eq!(list.entries[0].zscore, 2.0); // flat zero history, σ floored at 1
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use insite_schemas::{Finality, Interval, Symbol, TimestampMs, Trending, TrendingEntry};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use crate::config::TrendingConfig;
use crate::sentiment::Mention;
use crate::window::WindowSpec;
use crate::windowed::{windowed, Aggregate};

/// One symbol's count in one window, before ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendingCandidate {
    /// The window length.
    pub interval: Interval,
    /// The window start.
    pub window_start: TimestampMs,
    /// The symbol's entry.
    pub entry: TrendingEntry,
}

/// The z-score of `mentions` against `baseline` (see the module docs).
pub fn zscore(mentions: u64, baseline: &[u64]) -> f64 {
    if baseline.is_empty() {
        return mentions as f64;
    }
    let n = baseline.len() as f64;
    let mean = baseline.iter().map(|c| *c as f64).sum::<f64>() / n;
    let variance = baseline
        .iter()
        .map(|c| (*c as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (mentions as f64 - mean) / variance.sqrt().max(1.0)
}

/// Ranks candidates of one window: mentions desc, z-score desc, symbol asc;
/// keeps `top_n`.
pub fn rank(mut entries: Vec<TrendingEntry>, top_n: usize) -> Vec<TrendingEntry> {
    entries.sort_by(|a, b| {
        b.mentions
            .cmp(&a.mentions)
            .then_with(|| b.zscore.total_cmp(&a.zscore))
            .then_with(|| a.symbol.cmp(&b.symbol))
    });
    entries.truncate(top_n);
    entries
}

struct CountAggregate {
    config: TrendingConfig,
    /// Per symbol, (window start, mentions) of recent windows with mentions,
    /// oldest first.
    history: FxHashMap<Symbol, VecDeque<(TimestampMs, u64)>>,
    /// Ends closed since the last pruning pass.
    closes_since_prune: usize,
}

impl Aggregate for CountAggregate {
    type In = Mention;
    type Acc = u64;
    type Out = TrendingCandidate;
    const PROVISIONAL: bool = false;

    fn symbol(record: &Mention) -> &Symbol {
        &record.symbol
    }

    fn ts(record: &Mention) -> TimestampMs {
        record.ts
    }

    fn first(_record: &Mention) -> u64 {
        1
    }

    fn add(acc: &mut u64, _record: &Mention) {
        *acc += 1;
    }

    fn provisional(
        &self,
        _: &Symbol,
        _: WindowSpec,
        _: TimestampMs,
        _: &u64,
    ) -> Option<TrendingCandidate> {
        None
    }

    fn finish(
        &mut self,
        symbol: &Symbol,
        spec: WindowSpec,
        start: TimestampMs,
        mentions: u64,
    ) -> Option<TrendingCandidate> {
        let slide = spec.slide.millis();
        let n = self.config.baseline_windows;
        let history = self.history.entry(symbol.clone()).or_default();
        let baseline: Vec<u64> = (1..=n as i64)
            .map(|k| {
                let s = start - k * slide;
                history
                    .iter()
                    .find(|(hs, _)| *hs == s)
                    .map_or(0, |(_, c)| *c)
            })
            .collect();
        let z = zscore(mentions, &baseline);
        history.push_back((start, mentions));
        let oldest_needed = start - (n as i64) * slide;
        while history.front().is_some_and(|(s, _)| *s <= oldest_needed) {
            history.pop_front();
        }
        (mentions >= self.config.min_mentions).then(|| TrendingCandidate {
            interval: spec.size,
            window_start: start,
            entry: TrendingEntry {
                symbol: symbol.clone(),
                mentions,
                zscore: z,
            },
        })
    }

    fn closed_up_to(&mut self, end: TimestampMs) {
        self.closes_since_prune += 1;
        if self.closes_since_prune < 16 {
            return;
        }
        self.closes_since_prune = 0;
        let horizon = end
            - self.config.size.millis()
            - (self.config.baseline_windows as i64 + 1) * self.config.slide.millis();
        self.history
            .retain(|_, h| h.back().is_some_and(|(s, _)| *s > horizon));
    }
}

/// Trending lists.
pub trait TrendingWindows<'scope> {
    /// Ranked trending lists per sliding window of `config`, final, at time
    /// = window end, produced on worker 0.
    fn trending(self, config: &TrendingConfig) -> StreamVec<'scope, TimestampMs, Trending>;
}

impl<'scope> TrendingWindows<'scope> for StreamVec<'scope, TimestampMs, Mention> {
    fn trending(self, config: &TrendingConfig) -> StreamVec<'scope, TimestampMs, Trending> {
        let spec = WindowSpec::sliding(config.size, config.slide);
        let counts = windowed(
            self,
            "TrendingCounts",
            vec![spec],
            Duration::ZERO,
            CountAggregate {
                config: config.clone(),
                history: FxHashMap::default(),
                closes_since_prune: 0,
            },
        );
        let top_n = config.top_n;
        counts.unary_frontier(
            Exchange::new(|_: &TrendingCandidate| 0),
            "TrendingRank",
            move |_cap, _info| {
                let mut pending: BTreeMap<
                    TimestampMs,
                    (Capability<TimestampMs>, Vec<TrendingCandidate>),
                > = BTreeMap::new();
                move |(input, frontier), output| {
                    let output_index = output.output_index();
                    input.for_each_stamp(|cap, batches| {
                        let Some(&t) = cap.least() else { return };
                        let Some(held) = cap.retain_least(output_index) else {
                            return;
                        };
                        let slot = pending.entry(t).or_insert_with(|| (held, Vec::new()));
                        for batch in batches {
                            slot.1.append(batch);
                        }
                    });
                    while let Some(entry) = pending.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (cap, candidates) = entry.remove();
                        let mut windows: BTreeMap<(Interval, TimestampMs), Vec<TrendingEntry>> =
                            BTreeMap::new();
                        for c in candidates {
                            windows
                                .entry((c.interval, c.window_start))
                                .or_default()
                                .push(c.entry);
                        }
                        let mut session = output.session(&cap);
                        for ((interval, window_start), entries) in windows {
                            session.give(Trending {
                                interval,
                                window_start,
                                entries: rank(entries, top_n),
                                finality: Finality::Final,
                            });
                        }
                    }
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zscore_floors_sigma_at_one() {
        assert_eq!(zscore(5, &[0, 0, 0]), 5.0);
        assert_eq!(zscore(4, &[2, 2]), 2.0);
        // σ = 2 here.
        assert!((zscore(10, &[2, 6]) - 3.0).abs() < 1e-12);
        assert_eq!(zscore(3, &[]), 3.0);
    }
}
