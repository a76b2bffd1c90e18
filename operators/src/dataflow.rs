//! The whole operator graph: trades and posts in, every result out.
//!
//! ```text
//! market time:
//! trades ─► Bars (1s, 1m, 5m) ─┬─► bars
//!        │                     └─► BarAlerts ─► alerts
//!        └► LateEvents ─► late
//! social time:
//! posts ─► ScorePosts ─┬─► scored_posts
//!                      ├─► LateEvents ─► late
//!                      └─► mentions ─┬─► SentimentWindows ─┬─► sentiment
//!                                    │                     └─► SentimentAlerts ─► alerts
//!                                    └─► TrendingCounts ─► TrendingRank ─► trending
//! ```
//!
//! Nothing joins the two halves, so the pipeline runs each in a dataflow
//! of its own, in its own stream's time: bars never wait for the social
//! stream's watermark, nor sentiment for the market's.
//!
//! Inputs may arrive on any worker; the window operators exchange by
//! `Symbol::route_hash()`. A record's timely time must be its input's
//! watermark when it was read (see [`crate::window`]).

use std::time::Duration;

use insite_schemas::{Alert, Bar, LateEvent, Post, SentimentWindow, TimestampMs, Trade, Trending};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

use crate::alerts::{BarAlerts, SentimentAlerts};
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

/// The result streams of [`build_market`]: everything that depends only on
/// the market stream's time.
pub struct MarketOutputs<'scope> {
    /// Provisional and final bars, all configured intervals.
    pub bars: StreamVec<'scope, TimestampMs, Bar>,
    /// Price-move and volume-spike alerts.
    pub alerts: StreamVec<'scope, TimestampMs, Alert>,
    /// Late trades.
    pub late: StreamVec<'scope, TimestampMs, LateEvent>,
}

/// The result streams of [`build_social`]: everything that depends only on
/// the social stream's time.
pub struct SocialOutputs<'scope> {
    /// Provisional and final sentiment windows.
    pub sentiment: StreamVec<'scope, TimestampMs, SentimentWindow>,
    /// Every post once, cashtags filled in, with its compound score.
    pub scored_posts: StreamVec<'scope, TimestampMs, (Post, f64)>,
    /// Final trending lists.
    pub trending: StreamVec<'scope, TimestampMs, Trending>,
    /// Sentiment-shift alerts.
    pub alerts: StreamVec<'scope, TimestampMs, Alert>,
    /// Late posts.
    pub late: StreamVec<'scope, TimestampMs, LateEvent>,
}

/// Wires the market operators over `trades` (timely time: the market
/// stream's watermark when each trade was read).
pub fn build_market<'scope>(
    trades: StreamVec<'scope, TimestampMs, Trade>,
    config: &OperatorsConfig,
) -> MarketOutputs<'scope> {
    let cadence = Duration::from_millis(config.provisional_every_ms);
    let late = trades.clone().late_events(config.trade_windows());
    let bars = trades.bars(&config.bar_intervals, cadence);
    let alerts = bars.clone().bar_alerts(&config.alerts);
    MarketOutputs { bars, alerts, late }
}

/// Wires the social operators over `posts` (timely time: the social
/// stream's watermark when each post was read).
pub fn build_social<'scope>(
    posts: StreamVec<'scope, TimestampMs, Post>,
    config: &OperatorsConfig,
) -> SocialOutputs<'scope> {
    let cadence = Duration::from_millis(config.provisional_every_ms);
    let scored_posts = posts.score_posts();
    let late = scored_posts.clone().late_events(config.post_windows());
    let mentions = scored_posts
        .clone()
        .flat_map(|scored| mentions(&scored).collect::<Vec<_>>());
    let sentiment = mentions
        .clone()
        .sentiment_windows(&config.sentiment_intervals, cadence);
    let trending = mentions.trending(&config.trending);
    let alerts = sentiment.clone().sentiment_alerts(&config.alerts);
    SocialOutputs {
        sentiment,
        scored_posts,
        trending,
        alerts,
        late,
    }
}

/// Wires every operator over `trades` and `posts` (with a validated
/// `config`; see [`OperatorsConfig::validate`]), in one time domain: the
/// market and social halves of [`build_market`] and [`build_social`]
/// share no state, so this is their union.
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
    let market = build_market(trades, config);
    let social = build_social(posts, config);
    Outputs {
        bars: market.bars,
        sentiment: social.sentiment,
        scored_posts: social.scored_posts,
        trending: social.trending,
        alerts: market.alerts.concat(social.alerts),
        late: market.late.concat(social.late),
    }
}
