//! The whole operator graph: trades and posts in, every result out.
//!
//! ```text
//! trades ─► Bars (1s, 1m, 5m) ─────────────────────────┬─► bars
//!        └► LateEvents ──────────────────────────┐     └─► Alerts ─► alerts
//! posts ─► ScorePosts ─┬─► scored_posts          │           ▲
//!                      ├─► LateEvents ───────────┴─► late    │
//!                      └─► mentions ─┬─► SentimentWindows ───┴─► sentiment
//!                                    └─► TrendingCounts ─► TrendingRank ─► trending
//! ```
//!
//! Inputs may arrive on any worker; the window operators exchange by
//! `Symbol::route_hash()`. A record's timely time must be its input's
//! watermark when it was read (see [`crate::window`]).

use std::time::Duration;

use insite_schemas::{Alert, Bar, LateEvent, Post, SentimentWindow, TimestampMs, Trade, Trending};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

use crate::alerts::Alerts;
use crate::bars::Bars;
use crate::config::OperatorsConfig;
use crate::late::LateEvents;
use crate::sentiment::{mentions, ScorePosts, SentimentWindows};
use crate::trending::TrendingWindows;

/// The result streams of [`build_dataflow`].
pub struct Outputs<'scope> {
    /// Provisional and final bars, all configured intervals.
    pub bars: StreamVec<'scope, TimestampMs, Bar>,
    /// Provisional and final sentiment windows.
    pub sentiment: StreamVec<'scope, TimestampMs, SentimentWindow>,
    /// Every post once, cashtags filled in, with its compound score.
    pub scored_posts: StreamVec<'scope, TimestampMs, (Post, f64)>,
    /// Final trending lists, one per sliding window with candidates.
    pub trending: StreamVec<'scope, TimestampMs, Trending>,
    /// Alerts, each (symbol, kind, interval, window) at most once.
    pub alerts: StreamVec<'scope, TimestampMs, Alert>,
    /// Late trades and posts.
    pub late: StreamVec<'scope, TimestampMs, LateEvent>,
}

/// Wires every operator over `trades` and `posts` (with a validated
/// `config`; see [`OperatorsConfig::validate`]).
///
/// ```
/// use insite_operators::{build_dataflow, OperatorsConfig};
/// use insite_schemas::{Post, Trade};
/// use timely::dataflow::operators::{Capture, Input};
///
/// timely::execute_directly(|worker| {
///     let (mut trades, mut posts, bars) = worker.dataflow::<i64, _, _>(|scope| {
///         let (trades_in, trades) = scope.new_input::<Vec<Trade>>();
///         let (posts_in, posts) = scope.new_input::<Vec<Post>>();
///         let out = build_dataflow(trades, posts, &OperatorsConfig::default());
///         (trades_in, posts_in, out.bars.capture())
///     });
///     trades.advance_to(0);
///     posts.advance_to(0);
/// });
/// ```
pub fn build_dataflow<'scope>(
    trades: StreamVec<'scope, TimestampMs, Trade>,
    posts: StreamVec<'scope, TimestampMs, Post>,
    config: &OperatorsConfig,
) -> Outputs<'scope> {
    let cadence = Duration::from_millis(config.provisional_every_ms);
    let late_trades = trades.clone().late_events(config.trade_windows());
    let bars = trades.bars(&config.bar_intervals, cadence);

    let scored_posts = posts.score_posts();
    let late_posts = scored_posts.clone().late_events(config.post_windows());
    let mentions = scored_posts
        .clone()
        .flat_map(|scored| mentions(&scored).collect::<Vec<_>>());
    let sentiment = mentions
        .clone()
        .sentiment_windows(&config.sentiment_intervals, cadence);
    let trending = mentions.trending(&config.trending);
    let alerts = bars.clone().alerts(sentiment.clone(), &config.alerts);

    Outputs {
        bars,
        sentiment,
        scored_posts,
        trending,
        alerts,
        late: late_trades.concat(late_posts),
    }
}
