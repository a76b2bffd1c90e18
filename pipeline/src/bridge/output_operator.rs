//! The output operator: every worker sends the dataflow's results to the
//! output task, then its output frontier whenever it moves, and drops
//! windowed results an earlier run already made durable.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use insite_operators::{MarketOutputs, SocialOutputs};
use insite_schemas::{
    Alert, Bar, Finality, LateEvent, Post, SentimentWindow, TimestampMs, Trending,
};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concatenate, Operator};
use timely::dataflow::{Scope, StreamVec};
use tokio::sync::mpsc;

use super::send_out;
use crate::output::WorkerOutput;
use crate::source::InputSource;

/// A result on its way out of the dataflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Out {
    /// A bar, provisional or final.
    Bar(Bar),
    /// A sentiment window, provisional or final.
    Sentiment(SentimentWindow),
    /// A post with its score.
    ScoredPost((Post, f64)),
    /// A trending list.
    Trending(Trending),
    /// An alert.
    Alert(Alert),
    /// A late event.
    Late(LateEvent),
}

/// The market dataflow's results, as one kind of stream.
pub fn market_results<'s>(outputs: MarketOutputs<'s>) -> Vec<StreamVec<'s, TimestampMs, Out>> {
    vec![
        outputs.bars.map(Out::Bar),
        outputs.alerts.map(Out::Alert),
        outputs.late.map(Out::Late),
    ]
}

/// The social dataflow's results, as one kind of stream.
pub fn social_results<'s>(outputs: SocialOutputs<'s>) -> Vec<StreamVec<'s, TimestampMs, Out>> {
    vec![
        outputs.sentiment.map(Out::Sentiment),
        outputs.scored_posts.map(Out::ScoredPost),
        outputs.trending.map(Out::Trending),
        outputs.alerts.map(Out::Alert),
        outputs.late.map(Out::Late),
    ]
}

/// Batches of one output activation, by kind.
#[derive(Default)]
struct OutBatches {
    bars: Vec<Bar>,
    sentiment: Vec<SentimentWindow>,
    posts: Vec<(Post, f64)>,
    trending: Vec<Trending>,
    alerts: Vec<Alert>,
    late: Vec<LateEvent>,
}

impl OutBatches {
    fn send(self, tx: &mpsc::Sender<WorkerOutput>, stop: &AtomicBool) {
        let OutBatches {
            bars,
            sentiment,
            posts,
            trending,
            alerts,
            late,
        } = self;
        let outputs = [
            (!bars.is_empty()).then_some(WorkerOutput::Bars(bars)),
            (!sentiment.is_empty()).then_some(WorkerOutput::Sentiment(sentiment)),
            (!posts.is_empty()).then_some(WorkerOutput::Posts(posts)),
            (!trending.is_empty()).then_some(WorkerOutput::Trending(trending)),
            (!alerts.is_empty()).then_some(WorkerOutput::Alerts(alerts)),
            (!late.is_empty()).then_some(WorkerOutput::Late(late)),
        ];
        for output in outputs.into_iter().flatten() {
            send_out(tx, stop, output);
        }
    }
}

/// The output operator of `source`'s dataflow: sends every result to the
/// output task, then the worker's output frontier whenever it moves.
///
/// Windowed results stamped before `resume_from` (the stream's durable
/// frontier of an earlier run) are already in ClickHouse: a restarted
/// pipeline reads again the messages after the stream's checkpoint, and
/// would otherwise recompute those windows from only part of their input.
/// They are dropped here; raw events, scored posts and late events are
/// idempotent and pass.
pub fn output<'s>(
    scope: Scope<'s, TimestampMs>,
    results: Vec<StreamVec<'s, TimestampMs, Out>>,
    tx: mpsc::Sender<WorkerOutput>,
    source: InputSource,
    worker: usize,
    resume_from: TimestampMs,
    stop: Arc<AtomicBool>,
) {
    let merged = scope.concatenate(results);
    let mut reported = TimestampMs::MIN;
    merged.sink(Pipeline, "ResultsOut", move |(input, frontier)| {
        let mut batches = OutBatches::default();
        input.for_each(|cap, data: &mut Vec<Out>| {
            let settled = cap.least().is_some_and(|time| *time < resume_from);
            for out in data.drain(..) {
                match out {
                    Out::Bar(bar) if !settled => batches.bars.push(bar),
                    Out::Sentiment(window) if !settled => batches.sentiment.push(window),
                    Out::Trending(list) if !settled => batches.trending.push(list),
                    Out::Alert(alert) if !settled => batches.alerts.push(alert),
                    Out::ScoredPost(post) => batches.posts.push(post),
                    Out::Late(late) => batches.late.push(late),
                    Out::Bar(_) | Out::Sentiment(_) | Out::Trending(_) | Out::Alert(_) => {
                        metrics::counter!("insite_pipeline_settled_results_dropped_total")
                            .increment(1);
                    }
                }
            }
        });
        count_finals(&batches);
        batches.send(&tx, &stop);
        let now = frontier
            .frontier()
            .iter()
            .min()
            .copied()
            .unwrap_or(TimestampMs::MAX);
        if now > reported {
            reported = now;
            send_out(
                &tx,
                &stop,
                WorkerOutput::Progress {
                    source,
                    worker,
                    frontier: now,
                },
            );
        }
    });
}

fn count_finals(batches: &OutBatches) {
    let finals = batches
        .bars
        .iter()
        .filter(|b| b.finality == Finality::Final)
        .count();
    if finals > 0 {
        metrics::counter!("insite_pipeline_results_out_total", "kind" => "bar_final")
            .increment(finals as u64);
    }
    for (kind, n) in [
        ("bar", batches.bars.len()),
        ("sentiment", batches.sentiment.len()),
        ("post", batches.posts.len()),
        ("trending", batches.trending.len()),
        ("alert", batches.alerts.len()),
        ("late", batches.late.len()),
    ] {
        if n > 0 {
            metrics::counter!("insite_pipeline_results_out_total", "kind" => kind)
                .increment(n as u64);
        }
    }
}
