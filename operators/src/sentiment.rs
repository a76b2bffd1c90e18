//! Post scoring and per-symbol windowed sentiment.
//!
//! [`ScorePosts`] fills in each post's cashtags (extracted from the text
//! when the post carries none) and scores it with VADER plus the finance
//! lexicon ([`crate::vader`]); it is stateless, runs on the worker that read
//! the post, and emits at the post's time.
//!
//! [`SentimentWindows`] turns scored posts into one [`Mention`] per
//! (post, cashtag) and aggregates per symbol per tumbling interval: post
//! count, mean compound score, positive (≥ 0.05) / negative (≤ -0.05) /
//! neutral counts, and the mean weighted by `ln(1 + followers)` (unknown
//! reach weighs as one follower, `ln 2`; when every weight is 0 the weighted
//! mean is the plain mean). Sums are kept in fixed point (10⁻¹² units, as
//! `i128`) so they do not depend on arrival order or worker count.
//!
//! ```
//! use insite_operators::sentiment::{ScorePosts, SentimentWindows};
//! use insite_schemas::{Finality, Interval, Post, SourceName};
//! use timely::dataflow::operators::{Capture, ToStream};
//!
//! let (scored, windows) = timely::execute_directly(|worker| worker.dataflow::<i64, _, _>(|scope| {
//!     let post = |id: &str, text: &str| Post {
//!         id: id.into(), source: SourceName::new("x").unwrap(), author: "a".into(),
//!         ts: 1_000, text: text.into(), cashtags: vec![], author_followers: Some(100),
//!     };
//!     let scored = vec![post("1", "$TSLA is great!"), post("2", "$TSLA is terrible")]
//!         .to_stream(scope)
//!         .container::<Vec<_>>()
//!         .score_posts();
//!     let windows = scored.clone().sentiment_windows(&[Interval::MINUTE], std::time::Duration::ZERO);
//!     (scored.capture(), windows.capture())
//! }));
//! let scored = insite_operators::captured(scored);
//! assert_eq!(scored[0].1.0.cashtags[0].as_str(), "TSLA");
//! let finals: Vec<_> = insite_operators::captured(windows).into_iter()
//!     .map(|(_, w)| w).filter(|w| w.finality == Finality::Final).collect();
//! assert_eq!((finals[0].posts, finals[0].positive, finals[0].negative), (2, 1, 1));
//! ```

use std::time::Duration;

use insite_schemas::{Finality, Interval, Post, SentimentWindow, Symbol, TimestampMs};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;

use crate::cashtags::extract_cashtags;
use crate::vader::SentimentAnalyzer;
use crate::window::WindowSpec;
use crate::windowed::{windowed, Aggregate};

/// A compound score at or above this is positive.
pub const POSITIVE_THRESHOLD: f64 = 0.05;
/// A compound score at or below this is negative.
pub const NEGATIVE_THRESHOLD: f64 = -0.05;
/// Fixed-point scale of sentiment sums.
pub const SCORE_SCALE: f64 = 1e12;

/// One symbol mentioned by one scored post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mention {
    /// The symbol.
    pub symbol: Symbol,
    /// The post's event time.
    pub ts: TimestampMs,
    /// The post's compound score.
    pub score: f64,
    /// The author weight, `ln(1 + followers)`.
    pub weight: f64,
}

/// The author weight of a post: `ln(1 + followers)`, `ln 2` when unknown.
pub fn author_weight(followers: Option<u64>) -> f64 {
    match followers {
        Some(n) => (n as f64).ln_1p(),
        None => std::f64::consts::LN_2,
    }
}

/// Fills in a post's cashtags (if empty) and scores it.
pub fn score_post(analyzer: &SentimentAnalyzer, mut post: Post) -> (Post, f64) {
    if post.cashtags.is_empty() {
        post.cashtags = extract_cashtags(&post.text);
    } else {
        let mut seen = Vec::with_capacity(post.cashtags.len());
        post.cashtags.retain(|s| {
            let fresh = !seen.contains(s);
            if fresh {
                seen.push(s.clone());
            }
            fresh
        });
    }
    let score = analyzer.compound(&post.text);
    (post, score)
}

/// The mentions of a scored post, one per cashtag.
pub fn mentions(scored: &(Post, f64)) -> impl Iterator<Item = Mention> + '_ {
    let (post, score) = scored;
    let weight = author_weight(post.author_followers);
    post.cashtags.iter().map(move |symbol| Mention {
        symbol: symbol.clone(),
        ts: post.ts,
        score: *score,
        weight,
    })
}

fn fixed(value: f64) -> i128 {
    (value * SCORE_SCALE).round() as i128
}

/// Sentiment of one symbol's window under construction (fixed-point sums).
#[derive(Debug, Clone, Default)]
pub(crate) struct SentimentAcc {
    posts: u64,
    positive: u64,
    negative: u64,
    score_sum: i128,
    weighted_sum: i128,
    weight_sum: i128,
}

struct SentimentAggregate;

impl SentimentAggregate {
    fn window(
        symbol: &Symbol,
        spec: WindowSpec,
        start: TimestampMs,
        acc: &SentimentAcc,
        finality: Finality,
    ) -> SentimentWindow {
        let posts = acc.posts.max(1) as f64;
        let score = acc.score_sum as f64 / SCORE_SCALE / posts;
        let weighted_score = if acc.weight_sum == 0 {
            score
        } else {
            acc.weighted_sum as f64 / acc.weight_sum as f64
        };
        SentimentWindow {
            symbol: symbol.clone(),
            interval: spec.size,
            window_start: start,
            posts: acc.posts,
            score,
            positive: acc.positive,
            negative: acc.negative,
            neutral: acc.posts - acc.positive - acc.negative,
            weighted_score,
            finality,
        }
    }
}

impl Aggregate for SentimentAggregate {
    type In = Mention;
    type Acc = SentimentAcc;
    type Out = SentimentWindow;
    const PROVISIONAL: bool = true;

    fn symbol(record: &Mention) -> &Symbol {
        &record.symbol
    }

    fn ts(record: &Mention) -> TimestampMs {
        record.ts
    }

    fn first(record: &Mention) -> SentimentAcc {
        let mut acc = SentimentAcc::default();
        Self::add(&mut acc, record);
        acc
    }

    fn add(acc: &mut SentimentAcc, m: &Mention) {
        acc.posts += 1;
        if m.score >= POSITIVE_THRESHOLD {
            acc.positive += 1;
        } else if m.score <= NEGATIVE_THRESHOLD {
            acc.negative += 1;
        }
        acc.score_sum += fixed(m.score);
        acc.weighted_sum += fixed(m.score * m.weight);
        acc.weight_sum += fixed(m.weight);
    }

    fn provisional(
        &self,
        symbol: &Symbol,
        spec: WindowSpec,
        start: TimestampMs,
        acc: &SentimentAcc,
    ) -> Option<SentimentWindow> {
        Some(Self::window(
            symbol,
            spec,
            start,
            acc,
            Finality::Provisional,
        ))
    }

    fn finish(
        &mut self,
        symbol: &Symbol,
        spec: WindowSpec,
        start: TimestampMs,
        acc: SentimentAcc,
    ) -> Option<SentimentWindow> {
        Some(Self::window(symbol, spec, start, &acc, Finality::Final))
    }
}

/// Post scoring.
pub trait ScorePosts<'scope> {
    /// Each post once, with cashtags filled in and its VADER (+ finance)
    /// compound score, at the post's time, on the worker that read it.
    fn score_posts(self) -> StreamVec<'scope, TimestampMs, (Post, f64)>;
}

impl<'scope> ScorePosts<'scope> for StreamVec<'scope, TimestampMs, Post> {
    fn score_posts(self) -> StreamVec<'scope, TimestampMs, (Post, f64)> {
        self.unary(Pipeline, "ScorePosts", |_cap, _info| {
            let analyzer = SentimentAnalyzer::finance();
            move |input, output| {
                input.for_each_stamp(|cap, batches| {
                    let mut session = output.session(&cap);
                    for batch in batches {
                        for post in batch.drain(..) {
                            session.give(score_post(analyzer, post));
                        }
                    }
                });
            }
        })
    }
}

/// Windowed sentiment.
pub trait SentimentWindows<'scope> {
    /// Per-symbol sentiment for each of `intervals` (exchanged by symbol;
    /// provisional at most once per `provisional_every`, final at time =
    /// window end).
    fn sentiment_windows(
        self,
        intervals: &[Interval],
        provisional_every: Duration,
    ) -> StreamVec<'scope, TimestampMs, SentimentWindow>;
}

impl<'scope> SentimentWindows<'scope> for StreamVec<'scope, TimestampMs, (Post, f64)> {
    fn sentiment_windows(
        self,
        intervals: &[Interval],
        provisional_every: Duration,
    ) -> StreamVec<'scope, TimestampMs, SentimentWindow> {
        self.flat_map(|scored| mentions(&scored).collect::<Vec<_>>())
            .sentiment_windows(intervals, provisional_every)
    }
}

impl<'scope> SentimentWindows<'scope> for StreamVec<'scope, TimestampMs, Mention> {
    fn sentiment_windows(
        self,
        intervals: &[Interval],
        provisional_every: Duration,
    ) -> StreamVec<'scope, TimestampMs, SentimentWindow> {
        let specs = intervals
            .iter()
            .copied()
            .map(WindowSpec::tumbling)
            .collect();
        windowed(
            self,
            "SentimentWindows",
            specs,
            provisional_every,
            SentimentAggregate,
        )
    }
}
