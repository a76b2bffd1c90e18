//! Operator settings: window intervals, lateness, cadence, trending and
//! alert thresholds, with documented defaults.
//!
//! Intervals are written as whole seconds (`Interval`'s serde form), e.g.
//! `bar_intervals = [1, 60, 300]` in TOML.

use insite_schemas::{Interval, TimestampMs};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::window::WindowSpec;

/// Settings of every operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorsConfig {
    /// Tumbling bar intervals (default 1 s, 1 m, 5 m).
    pub bar_intervals: Vec<Interval>,
    /// Tumbling sentiment intervals (default 1 m, 5 m).
    pub sentiment_intervals: Vec<Interval>,
    /// How far behind the largest event time seen a source's watermark
    /// stays, in ms (default 2 000).
    pub allowed_lateness_ms: i64,
    /// An input stream with no new message for this long (wall clock, ms),
    /// read to its end, is idle: the pipeline writes clock ticks into it, so
    /// its last windows close (default 5 000).
    pub idle_timeout_ms: i64,
    /// Wall-clock cadence of provisional (in-progress) output per operator,
    /// ms (default 100; 0 means at every activation).
    pub provisional_every_ms: u64,
    /// Trending symbols.
    pub trending: TrendingConfig,
    /// Alerts.
    pub alerts: AlertsConfig,
}

impl Default for OperatorsConfig {
    fn default() -> Self {
        Self {
            bar_intervals: vec![Interval::SECOND, Interval::MINUTE, Interval::FIVE_MINUTES],
            sentiment_intervals: vec![Interval::MINUTE, Interval::FIVE_MINUTES],
            allowed_lateness_ms: 2_000,
            idle_timeout_ms: 5_000,
            provisional_every_ms: 100,
            trending: TrendingConfig::default(),
            alerts: AlertsConfig::default(),
        }
    }
}

/// Trending: mentions per symbol per sliding window, ranked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrendingConfig {
    /// Window length (default 5 m).
    pub size: Interval,
    /// Window slide (default 1 m); `size` must be a multiple of it.
    pub slide: Interval,
    /// Entries per list (default 20).
    pub top_n: usize,
    /// How many of the symbol's previous windows form its baseline
    /// (default 30).
    pub baseline_windows: usize,
    /// A symbol needs at least this many mentions in a window to be listed
    /// (default 2).
    pub min_mentions: u64,
}

impl Default for TrendingConfig {
    fn default() -> Self {
        Self {
            size: Interval::FIVE_MINUTES,
            slide: Interval::MINUTE,
            top_n: 20,
            baseline_windows: 30,
            min_mentions: 2,
        }
    }
}

/// Alert thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Bar intervals checked for price moves (default 1 m, 5 m).
    pub price_move_intervals: Vec<Interval>,
    /// Relative move `|close / open - 1|` that raises an alert (default 0.02).
    pub price_move_threshold: f64,
    /// Bar intervals checked for volume spikes (default 1 m).
    pub volume_intervals: Vec<Interval>,
    /// Volume at least this multiple of the recent mean raises an alert
    /// (default 3.0).
    pub volume_spike_ratio: f64,
    /// How many previous final bars form the recent mean (default 20).
    pub volume_history: usize,
    /// Fewest previous bars needed before a spike can be raised (default 5).
    pub volume_min_history: usize,
    /// Sentiment intervals checked for shifts (default 5 m).
    pub sentiment_intervals: Vec<Interval>,
    /// Change of mean score from the previous window that raises an alert
    /// (default 0.5).
    pub sentiment_shift_threshold: f64,
    /// Fewest posts needed in both windows (default 5).
    pub sentiment_min_posts: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            price_move_intervals: vec![Interval::MINUTE, Interval::FIVE_MINUTES],
            price_move_threshold: 0.02,
            volume_intervals: vec![Interval::MINUTE],
            volume_spike_ratio: 3.0,
            volume_history: 20,
            volume_min_history: 5,
            sentiment_intervals: vec![Interval::FIVE_MINUTES],
            sentiment_shift_threshold: 0.5,
            sentiment_min_posts: 5,
        }
    }
}

impl OperatorsConfig {
    /// Checks the settings; every operator assumes a validated config.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: &str| Err(ConfigError::new(field, reason));
        if self.bar_intervals.is_empty() {
            return bad("bar_intervals", "at least one interval is needed");
        }
        if self.sentiment_intervals.is_empty() {
            return bad("sentiment_intervals", "at least one interval is needed");
        }
        if self.allowed_lateness_ms < 0 {
            return bad("allowed_lateness_ms", "must not be negative");
        }
        if self.idle_timeout_ms <= 0 {
            return bad("idle_timeout_ms", "must be positive");
        }
        let t = &self.trending;
        if !t.size.seconds().is_multiple_of(t.slide.seconds()) {
            return bad("trending.size", "must be a multiple of trending.slide");
        }
        if t.top_n == 0 {
            return bad("trending.top_n", "must be positive");
        }
        let a = &self.alerts;
        if !(a.price_move_threshold.is_finite() && a.price_move_threshold > 0.0) {
            return bad("alerts.price_move_threshold", "must be a positive number");
        }
        if !(a.volume_spike_ratio.is_finite() && a.volume_spike_ratio > 0.0) {
            return bad("alerts.volume_spike_ratio", "must be a positive number");
        }
        if a.volume_history == 0
            || a.volume_min_history == 0
            || a.volume_min_history > a.volume_history
        {
            return bad(
                "alerts.volume_min_history",
                "need 1 <= volume_min_history <= volume_history",
            );
        }
        if !(a.sentiment_shift_threshold.is_finite() && a.sentiment_shift_threshold > 0.0) {
            return bad(
                "alerts.sentiment_shift_threshold",
                "must be a positive number",
            );
        }
        for i in &a.price_move_intervals {
            if !self.bar_intervals.contains(i) {
                return bad(
                    "alerts.price_move_intervals",
                    "each must be one of bar_intervals",
                );
            }
        }
        for i in &a.volume_intervals {
            if !self.bar_intervals.contains(i) {
                return bad(
                    "alerts.volume_intervals",
                    "each must be one of bar_intervals",
                );
            }
        }
        for i in &a.sentiment_intervals {
            if !self.sentiment_intervals.contains(i) {
                return bad(
                    "alerts.sentiment_intervals",
                    "each must be one of sentiment_intervals",
                );
            }
        }
        Ok(())
    }

    /// (tumbling intervals, sliding `(size, slide)` windows) an event can
    /// contribute to: the union of bar and sentiment intervals (sorted, no
    /// duplicates) and the trending window. The pipeline uses it to compute,
    /// per input message, the latest window end its events touch.
    pub fn window_spans(&self) -> (Vec<Interval>, Vec<(Interval, Interval)>) {
        let mut tumbling: Vec<Interval> = self
            .bar_intervals
            .iter()
            .chain(&self.sentiment_intervals)
            .copied()
            .collect();
        tumbling.sort();
        tumbling.dedup();
        (tumbling, vec![(self.trending.size, self.trending.slide)])
    }

    /// The latest end of any window (of [`OperatorsConfig::window_spans`])
    /// that an event at `ts` belongs to: once the watermark reaches it, every
    /// final that event feeds has been emitted.
    pub fn latest_window_end(&self, ts: TimestampMs) -> TimestampMs {
        let (tumbling, sliding) = self.window_spans();
        tumbling
            .into_iter()
            .map(WindowSpec::tumbling)
            .chain(
                sliding
                    .into_iter()
                    .map(|(size, slide)| WindowSpec::sliding(size, slide)),
            )
            .map(|spec| spec.latest_end(ts))
            .max()
            .unwrap_or(ts)
    }

    /// The windows a trade feeds.
    pub fn trade_windows(&self) -> Vec<WindowSpec> {
        self.bar_intervals
            .iter()
            .copied()
            .map(WindowSpec::tumbling)
            .collect()
    }

    /// The windows a post feeds (sentiment and trending).
    pub fn post_windows(&self) -> Vec<WindowSpec> {
        self.sentiment_intervals
            .iter()
            .copied()
            .map(WindowSpec::tumbling)
            .chain([WindowSpec::sliding(self.trending.size, self.trending.slide)])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() {
        let config = OperatorsConfig::default();
        config.validate().unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            serde_json::from_str::<OperatorsConfig>(&json).unwrap(),
            config
        );
        let partial: OperatorsConfig =
            serde_json::from_str(r#"{"allowed_lateness_ms": 500, "trending": {"top_n": 5}}"#)
                .unwrap();
        assert_eq!(partial.allowed_lateness_ms, 500);
        assert_eq!(partial.trending.top_n, 5);
        assert_eq!(partial.trending.size, Interval::FIVE_MINUTES);
        assert!(serde_json::from_str::<OperatorsConfig>(r#"{"lateness": 1}"#).is_err());
    }

    #[test]
    fn rejects_bad_settings() {
        let mut c = OperatorsConfig::default();
        c.trending.size = Interval::from_seconds(90).unwrap();
        assert_eq!(c.validate().unwrap_err().field, "trending.size");
        let mut c = OperatorsConfig::default();
        c.alerts.volume_intervals = vec![Interval::HOUR];
        assert_eq!(c.validate().unwrap_err().field, "alerts.volume_intervals");
        let mut c = OperatorsConfig::default();
        c.bar_intervals.clear();
        assert!(c.validate().is_err());
    }

    #[test]
    fn spans_cover_every_window() {
        let c = OperatorsConfig::default();
        let (tumbling, sliding) = c.window_spans();
        assert_eq!(
            tumbling,
            [Interval::SECOND, Interval::MINUTE, Interval::FIVE_MINUTES]
        );
        assert_eq!(sliding, [(Interval::FIVE_MINUTES, Interval::MINUTE)]);
        // An event at 00:01:30.5 is in the 5 m sliding window [00:01, 00:06).
        assert_eq!(c.latest_window_end(90_500), 360_000);
    }
}
