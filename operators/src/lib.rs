//! # insite-operators
//!
//! The timely-dataflow operators of insite: event-time windows, OHLCV/VWAP
//! bars, VADER sentiment, trending symbols and alerts. Pure dataflow: no I/O.
//!
//! ## Time model
//! The timely timestamp is [`TimestampMs`]. Every record's timely time is
//! **the watermark of its input when the record was read**; its event time
//! is its own `ts`. A tumbling window `[s, e)` closes when the input
//! frontier reaches `e`; a record read at time `t` is late for a window iff
//! `e <= t`, still feeds the windows it is on time for, and yields exactly
//! one [`LateEvent`](insite_schemas::LateEvent) (at time `t`) if late for
//! any. Every final result of a window ending at `e` — bars, sentiment,
//! trending, alerts — is emitted at timely time exactly `e`; provisional
//! results and scored posts at the time of the records that caused them.
//! So an output frontier beyond `e` means every final of windows ending at
//! or before `e` has been emitted.
//!
//! ## Determinism
//! Finals depend only on the set of (event, read-time watermark) pairs:
//! state is keyed by symbol and window, open/close ties are broken by
//! (ts, trade id, exchange, price, size), sums are exact (fixed point), and
//! stateful steps (trending baselines, alert history) run in window-end
//! order once the frontier has passed. Same output with 1, 2 or 4 workers.
//!
//! ## Layout
//! - [`config`]: [`OperatorsConfig`], [`TrendingConfig`], [`AlertsConfig`].
//! - [`watermark`]: [`StreamClock`], a stream's watermark as a function of
//!   the stream, and the clock-skew bound.
//! - [`window`]: window arithmetic and the lateness rule.
//! - [`late`]: the `LateEvents` operator.
//! - [`bars`]: the `Bars` operator.
//! - [`cashtags`], [`vader`]: cashtag extraction and VADER scoring (with
//!   the finance lexicon in `data/`).
//! - [`sentiment`]: the `ScorePosts` and `SentimentWindows` operators.
//! - [`trending`]: the `TrendingWindows` operator.
//! - [`alerts`]: the `BarAlerts` and `SentimentAlerts` operators.
//! - [`dataflow`]: [`build_market`] and [`build_social`] wire the operators
//!   of each input stream (each in its own stream's time);
//!   [`build_dataflow`] wires both into [`Outputs`].
//! - [`capture`]: reading captured streams back ([`captured`]).
//!
//! Streams are timely 0.32 `StreamVec<'scope, TimestampMs, D>`.

#![forbid(unsafe_code)]

pub mod alerts;
pub mod bars;
pub mod capture;
pub mod cashtags;
pub mod config;
pub mod dataflow;
pub mod error;
pub mod late;
pub mod sentiment;
pub mod trending;
pub mod vader;
pub mod watermark;
pub mod window;
mod windowed;

pub use capture::captured;
pub use config::{AlertsConfig, OperatorsConfig, TrendingConfig};
pub use dataflow::{
    build_dataflow, build_market, build_social, MarketOutputs, Outputs, SocialOutputs,
};
pub use error::ConfigError;
pub use insite_schemas::TimestampMs;
pub use watermark::StreamClock;
