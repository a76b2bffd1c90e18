//! Alerts from final bars and sentiment windows: price moves, volume spikes
//! and sentiment shifts, each raised at most once per (symbol, kind,
//! interval, window).
//!
//! - **Price move**: for bars of `price_move_intervals`, `value = close /
//!   open - 1`, raised when `|value| >= price_move_threshold`.
//! - **Volume spike**: for bars of `volume_intervals`, `value = volume /
//!   mean(volume of the symbol's previous `volume_history` final bars of
//!   that interval)` (bars exist only for windows with trades; gaps are
//!   skipped), raised when at least `volume_min_history` previous bars exist,
//!   their mean is positive and `value >= volume_spike_ratio`.
//! - **Sentiment shift**: for windows of `sentiment_intervals`, `value =
//!   score - previous score`, where the previous window is the immediately
//!   preceding one (`window_start - interval`), raised when both have at
//!   least `sentiment_min_posts` posts and `|value| >=
//!   sentiment_shift_threshold`.
//!
//! The operator holds finals by time (= window end) and processes a time
//! only when both input frontiers have passed it, in (symbol, interval,
//! window) order, so per-symbol history — and thus every alert — is the same
//! whatever the arrival order or worker count. Alerts are emitted at the
//! window's end time. Provisional inputs are ignored.
//!
//! ```
//! use insite_operators::alerts::Alerts;
//! use insite_operators::AlertsConfig;
//! use insite_schemas::{AlertKind, Bar, Finality, Interval, SentimentWindow, Symbol};
//! use timely::dataflow::operators::{Capture, ToStream};
//!
//! let alerts = timely::execute_directly(|worker| worker.dataflow::<i64, _, _>(|scope| {
//!     let bar = Bar {
//!         symbol: Symbol::new("ACME").unwrap(), interval: Interval::MINUTE, window_start: 0,
//!         open: 100.0, high: 106.0, low: 99.0, close: 105.0, volume: 10, vwap: 103.0,
//!         trades: 3, finality: Finality::Final,
//!     };
//!     let bars = vec![bar].to_stream(scope).container::<Vec<_>>();
//!     let sentiment = Vec::<SentimentWindow>::new().to_stream(scope).container::<Vec<_>>();
//!     bars.alerts(sentiment, &AlertsConfig::default()).capture()
//! }));
//! let alerts = insite_operators::captured(alerts);
//! assert_eq!(alerts.len(), 1);
//! assert_eq!(alerts[0].1.kind, AlertKind::PriceMove);
//! assert!((alerts[0].1.value - 0.05).abs() < 1e-12);
//! ```

use std::collections::{BTreeMap, VecDeque};

use insite_schemas::{
    Alert, AlertKind, Bar, Finality, Interval, SentimentWindow, Symbol, TimestampMs,
};
use rustc_hash::FxHashMap;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, Concat};
use timely::dataflow::StreamVec;

use crate::config::AlertsConfig;

/// Per-symbol memory of the alert rules.
#[derive(Debug, Default)]
pub struct AlertState {
    /// Previous final volumes per (symbol, interval), oldest first.
    volumes: FxHashMap<(Symbol, Interval), VecDeque<u64>>,
    /// Previous final sentiment window per (symbol, interval): (start,
    /// score, posts).
    sentiment: FxHashMap<(Symbol, Interval), (TimestampMs, f64, u64)>,
}

impl AlertState {
    /// Applies the bar rules to one final bar (call in window order).
    pub fn on_bar(&mut self, config: &AlertsConfig, bar: &Bar, out: &mut Vec<Alert>) {
        if config.price_move_intervals.contains(&bar.interval) && bar.open > 0.0 {
            let value = bar.close / bar.open - 1.0;
            if value.abs() >= config.price_move_threshold {
                out.push(Alert {
                    symbol: bar.symbol.clone(),
                    kind: AlertKind::PriceMove,
                    interval: bar.interval,
                    window_start: bar.window_start,
                    value,
                    threshold: config.price_move_threshold,
                    message: format!(
                        "{} moved {:+.2}% in {} (open {}, close {})",
                        bar.symbol,
                        value * 100.0,
                        bar.interval,
                        bar.open,
                        bar.close
                    ),
                });
            }
        }
        if config.volume_intervals.contains(&bar.interval) {
            let history = self
                .volumes
                .entry((bar.symbol.clone(), bar.interval))
                .or_default();
            if history.len() >= config.volume_min_history {
                let mean = history.iter().map(|v| *v as f64).sum::<f64>() / history.len() as f64;
                if mean > 0.0 {
                    let value = bar.volume as f64 / mean;
                    if value >= config.volume_spike_ratio {
                        out.push(Alert {
                            symbol: bar.symbol.clone(),
                            kind: AlertKind::VolumeSpike,
                            interval: bar.interval,
                            window_start: bar.window_start,
                            value,
                            threshold: config.volume_spike_ratio,
                            message: format!(
                                "{} traded {} shares in {}, {:.1}x its recent mean of {:.0}",
                                bar.symbol, bar.volume, bar.interval, value, mean
                            ),
                        });
                    }
                }
            }
            history.push_back(bar.volume);
            while history.len() > config.volume_history {
                history.pop_front();
            }
        }
    }

    /// Applies the sentiment rule to one final window (call in window order).
    pub fn on_sentiment(
        &mut self,
        config: &AlertsConfig,
        window: &SentimentWindow,
        out: &mut Vec<Alert>,
    ) {
        if !config.sentiment_intervals.contains(&window.interval) {
            return;
        }
        let key = (window.symbol.clone(), window.interval);
        let current = (window.window_start, window.score, window.posts);
        if let Some((start, score, posts)) = self.sentiment.insert(key, current) {
            let adjacent = start == window.window_start - window.interval.millis();
            let enough =
                posts >= config.sentiment_min_posts && window.posts >= config.sentiment_min_posts;
            let value = window.score - score;
            if adjacent && enough && value.abs() >= config.sentiment_shift_threshold {
                out.push(Alert {
                    symbol: window.symbol.clone(),
                    kind: AlertKind::SentimentShift,
                    interval: window.interval,
                    window_start: window.window_start,
                    value,
                    threshold: config.sentiment_shift_threshold,
                    message: format!(
                        "{} sentiment moved {:+.2} in {} ({:.2} -> {:.2}, {} posts)",
                        window.symbol, value, window.interval, score, window.score, window.posts
                    ),
                });
            }
        }
    }
}

/// Alerting over final bars and sentiment.
pub trait Alerts<'scope> {
    /// Alerts from the final bars in `self` and final sentiment windows in
    /// `sentiment`, at time = window end (inputs exchanged by symbol): the
    /// bar rules ([`BarAlerts`]) and the sentiment rule
    /// ([`SentimentAlerts`]) together. The two share no state, so each
    /// half can also run on its own, in a dataflow of its own stream's time.
    fn alerts(
        self,
        sentiment: StreamVec<'scope, TimestampMs, SentimentWindow>,
        config: &AlertsConfig,
    ) -> StreamVec<'scope, TimestampMs, Alert>;
}

impl<'scope> Alerts<'scope> for StreamVec<'scope, TimestampMs, Bar> {
    fn alerts(
        self,
        sentiment: StreamVec<'scope, TimestampMs, SentimentWindow>,
        config: &AlertsConfig,
    ) -> StreamVec<'scope, TimestampMs, Alert> {
        self.bar_alerts(config)
            .concat(sentiment.sentiment_alerts(config))
    }
}

/// Price-move and volume-spike alerts over final bars.
pub trait BarAlerts<'scope> {
    /// Alerts from the final bars in `self`, at time = window end.
    fn bar_alerts(self, config: &AlertsConfig) -> StreamVec<'scope, TimestampMs, Alert>;
}

impl<'scope> BarAlerts<'scope> for StreamVec<'scope, TimestampMs, Bar> {
    fn bar_alerts(self, config: &AlertsConfig) -> StreamVec<'scope, TimestampMs, Alert> {
        let config = config.clone();
        in_window_order(
            self,
            "BarAlerts",
            |b: &Bar| b.symbol.route_hash(),
            |b: &Bar| b.finality == Finality::Final,
            |b: &Bar| (b.symbol.clone(), b.interval, b.window_start),
            move |state: &mut AlertState, bar: &Bar, out: &mut Vec<Alert>| {
                state.on_bar(&config, bar, out)
            },
        )
    }
}

/// Sentiment-shift alerts over final sentiment windows.
pub trait SentimentAlerts<'scope> {
    /// Alerts from the final windows in `self`, at time = window end.
    fn sentiment_alerts(self, config: &AlertsConfig) -> StreamVec<'scope, TimestampMs, Alert>;
}

impl<'scope> SentimentAlerts<'scope> for StreamVec<'scope, TimestampMs, SentimentWindow> {
    fn sentiment_alerts(self, config: &AlertsConfig) -> StreamVec<'scope, TimestampMs, Alert> {
        let config = config.clone();
        in_window_order(
            self,
            "SentimentAlerts",
            |w: &SentimentWindow| w.symbol.route_hash(),
            |w: &SentimentWindow| w.finality == Finality::Final,
            |w: &SentimentWindow| (w.symbol.clone(), w.interval, w.window_start),
            move |state: &mut AlertState, window: &SentimentWindow, out: &mut Vec<Alert>| {
                state.on_sentiment(&config, window, out)
            },
        )
    }
}

/// Exchanges `input` by `route`, keeps the records passing `keep` by time,
/// and once the frontier has passed a time applies `rule` to that time's
/// records in `order_key` order, so that per-symbol history (and so every
/// alert) is the same whatever the arrival order or worker count.
fn in_window_order<'scope, D, K>(
    input: StreamVec<'scope, TimestampMs, D>,
    name: &str,
    route: impl Fn(&D) -> u64 + 'static,
    keep: impl Fn(&D) -> bool + 'static,
    order_key: impl Fn(&D) -> K + 'static,
    mut rule: impl FnMut(&mut AlertState, &D, &mut Vec<Alert>) + 'static,
) -> StreamVec<'scope, TimestampMs, Alert>
where
    D: timely::ExchangeData,
    K: Ord,
{
    input.unary_frontier(Exchange::new(route), name, move |_cap, _info| {
        let mut pending: BTreeMap<TimestampMs, (Capability<TimestampMs>, Vec<D>)> = BTreeMap::new();
        let mut state = AlertState::default();
        move |(records, frontier), output| {
            let output_index = output.output_index();
            records.for_each_stamp(|cap, batches| {
                let Some(&t) = cap.least() else { return };
                let Some(held) = cap.retain_least(output_index) else {
                    return;
                };
                let slot = pending.entry(t).or_insert_with(|| (held, Vec::new()));
                for batch in batches {
                    slot.1.extend(batch.drain(..).filter(|r| keep(r)));
                }
            });
            while let Some(entry) = pending.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let (cap, mut records) = entry.remove();
                records.sort_by_key(|r| order_key(r));
                let mut alerts = Vec::new();
                for record in &records {
                    rule(&mut state, record, &mut alerts);
                }
                if !alerts.is_empty() {
                    output.session(&cap).give_iterator(alerts.into_iter());
                }
            }
        }
    })
}
