//! The one place where the async world (tokio: JetStream consumers, sinks,
//! acknowledgement) and the timely worker threads meet.
//!
//! **Input.** The first worker of each process owns the process's input: it
//! takes decoded messages from a bounded tokio channel with `try_recv` (a
//! worker never blocks on input), stamps every event of a message with the
//! process's current *watermark* as its timely time (the watermark when the
//! message was read, before its own events are taken into account), sends
//! raw trades and quotes to the output task, and hands the message's
//! acknowledgement handle, with its *deadline*, to the ack task. Its
//! capability follows the watermark ([`WatermarkTracker`]); the other
//! workers of the process drop theirs at once, so only readers hold the
//! dataflow's frontier back.
//!
//! **Output.** Every worker sends the dataflow's results into the output
//! task's bounded channel with `blocking_send` (a full channel blocks the
//! worker: back-pressure reaches the consumers through the input channel),
//! followed by [`WorkerOutput::Progress`] whenever its output frontier moves.
//!
//! **Deadlines.** Every final result of a window ending at `e` is emitted at
//! timely time `e`, and a late event at the time it was read, `t`. A message
//! read at `t` whose events fall in windows ending at most at `E` is
//! therefore finished with once the durable frontier passes `max(E, t)`: its
//! deadline is `max(E, t) + 1` ([`crate::progress::AckTracker`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::Acker;
use insite_operators::{Outputs, WatermarkTracker};
use insite_schemas::{
    Alert, Bar, Finality, Inbound, LateEvent, Post, SentimentWindow, TimestampMs, Trade, Trending,
};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concatenate, OkErr, Operator};
use timely::dataflow::{Scope, StreamVec};
use tokio::sync::mpsc::{self, error::TryRecvError};

use crate::output::WorkerOutput;
use crate::progress::{wall_clock_ms, WindowSpans};
use crate::source::InputMessage;

/// A message's acknowledgement handle, held until the durable frontier
/// reaches its deadline.
pub struct Hold {
    /// The durable frontier at which the message may be acknowledged.
    pub deadline: TimestampMs,
    /// Its acknowledgement handle.
    pub acker: Acker,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// What the reading worker of a process owns.
pub struct Reader {
    /// Decoded messages from the consumers.
    pub input: mpsc::Receiver<InputMessage>,
    /// Where acknowledgement handles go (`None` in a replay: nothing is
    /// acknowledged).
    pub holds: Option<mpsc::UnboundedSender<Hold>>,
    /// The backlog of each source's consumer (MARKET, SOCIAL), kept up to
    /// date by the consumer tasks.
    pub backlog: [Arc<AtomicU64>; 2],
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("acknowledges", &self.holds.is_some())
            .finish_non_exhaustive()
    }
}

/// How the input operator behaves.
#[derive(Debug, Clone)]
pub struct InputSettings {
    /// Allowed lateness, ms.
    pub allowed_lateness_ms: i64,
    /// A source silent (and caught up) this long stops holding the
    /// watermark back, ms.
    pub idle_timeout_ms: i64,
    /// Windows a trade contributes to.
    pub market_spans: WindowSpans,
    /// Windows a post contributes to.
    pub social_spans: WindowSpans,
    /// Whether the input ends (a replay): when the consumers are done the
    /// capability is dropped and every open window closes. A live pipeline
    /// never closes windows because its input stopped.
    pub bounded: bool,
    /// Most messages taken in one activation.
    pub max_messages_per_activation: usize,
    /// How soon to look again when the channel is empty.
    pub poll: Duration,
}

/// An input event on its way into the dataflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum InputEvent {
    Trade(Trade),
    Post(Post),
}

/// Sends to the output task, blocking the worker while its channel is full.
/// A closed channel means the output task is gone: the worker is told to
/// stop.
fn send_out(tx: &mpsc::Sender<WorkerOutput>, stop: &AtomicBool, output: WorkerOutput) {
    if tx.blocking_send(output).is_err() {
        stop.store(true, Ordering::SeqCst);
    }
}

/// The input operator: trades and posts for the dataflow, stamped with the
/// read-time watermark. `reader` is `Some` on the one reading worker of the
/// process.
pub fn input<'s>(
    scope: Scope<'s, TimestampMs>,
    reader: Option<Reader>,
    settings: InputSettings,
    output: mpsc::Sender<WorkerOutput>,
    stop: Arc<AtomicBool>,
) -> (
    StreamVec<'s, TimestampMs, Trade>,
    StreamVec<'s, TimestampMs, Post>,
) {
    let events: StreamVec<'s, TimestampMs, InputEvent> =
        source(scope, "JetStreamInput", move |capability, info| {
            let activator = scope.activator_for(info.address);
            let mut reader = reader;
            let mut capability = reader.as_ref().map(|_| capability);
            let mut tracker =
                WatermarkTracker::new(2, settings.allowed_lateness_ms, settings.idle_timeout_ms);
            // Per source: the largest event time seen.
            let mut max_ts: [Option<TimestampMs>; 2] = [None, None];
            move |out| {
                let (Some(reader), Some(cap)) = (reader.as_mut(), capability.as_mut()) else {
                    return;
                };
                let now = wall_clock_ms();
                let time = *cap.time();
                let mut ended = false;
                let mut taken = 0;
                while taken < settings.max_messages_per_activation {
                    let message = match reader.input.try_recv() {
                        Ok(message) => message,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            ended = true;
                            break;
                        }
                    };
                    taken += 1;
                    let src = message.source.index();
                    let mut deadline = time;
                    let mut observe = |ts: TimestampMs| {
                        tracker.observe(src, ts, now);
                        max_ts[src] = Some(max_ts[src].map_or(ts, |m| m.max(ts)));
                    };
                    match message.events {
                        Inbound::Trades(trades) => {
                            let mut session = out.session(&*cap);
                            for trade in &trades {
                                observe(trade.ts);
                                deadline = deadline.max(settings.market_spans.deadline(trade.ts));
                                session.give(InputEvent::Trade(trade.clone()));
                            }
                            drop(session);
                            send_out(&output, &stop, WorkerOutput::Trades(trades));
                        }
                        Inbound::Quotes(quotes) => {
                            for quote in &quotes {
                                observe(quote.ts);
                            }
                            send_out(&output, &stop, WorkerOutput::Quotes(quotes));
                        }
                        Inbound::Posts(posts) => {
                            let mut session = out.session(&*cap);
                            for post in posts {
                                observe(post.ts);
                                deadline = deadline.max(settings.social_spans.deadline(post.ts));
                                session.give(InputEvent::Post(post));
                            }
                        }
                    }
                    if let Some(holds) = &reader.holds {
                        let hold = Hold {
                            deadline: deadline.saturating_add(1),
                            acker: message.acker,
                        };
                        if holds.send(hold).is_err() {
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                }
                if ended {
                    if settings.bounded {
                        // The replay's input is complete: every window closes.
                        capability = None;
                    }
                    return;
                }
                // A source with a backlog is busy, not idle, however long
                // the dataflow took to come back to it.
                for (src, backlog) in reader.backlog.iter().enumerate() {
                    if let (true, Some(ts)) = (backlog.load(Ordering::Relaxed) > 0, max_ts[src]) {
                        tracker.observe(src, ts, now);
                    }
                }
                let watermark = tracker.watermark(now);
                if watermark > time {
                    cap.downgrade(&watermark);
                }
                if watermark > TimestampMs::MIN {
                    metrics::gauge!("insite_pipeline_watermark_lag_seconds")
                        .set((now - watermark) as f64 / 1_000.0);
                }
                if taken == settings.max_messages_per_activation {
                    activator.activate();
                } else {
                    activator.activate_after(settings.poll);
                }
            }
        });
    // The split moves each event once; its `Err` side is a post, not an
    // error, so the size of the variant is no concern.
    #[allow(clippy::result_large_err)]
    let split = events.ok_err(|event| match event {
        InputEvent::Trade(trade) => Ok(trade),
        InputEvent::Post(post) => Err(post),
    });
    split
}

/// A result on its way out of the dataflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Out {
    Bar(Bar),
    Sentiment(SentimentWindow),
    ScoredPost((Post, f64)),
    Trending(Trending),
    Alert(Alert),
    Late(LateEvent),
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

/// The output operator: sends every result to the output task, then the
/// worker's output frontier whenever it moves.
///
/// Windowed results stamped before `resume_from` (the durable frontier of
/// an earlier run) are already in ClickHouse: a restarted pipeline sees
/// again the messages that earlier run had not acknowledged, and would
/// otherwise recompute those windows from only part of their input. They are
/// dropped here; raw events, scored posts and late events are idempotent and
/// pass.
pub fn output<'s>(
    scope: Scope<'s, TimestampMs>,
    outputs: Outputs<'s>,
    tx: mpsc::Sender<WorkerOutput>,
    worker: usize,
    resume_from: TimestampMs,
    stop: Arc<AtomicBool>,
) {
    let merged = scope.concatenate([
        outputs.bars.map(Out::Bar),
        outputs.sentiment.map(Out::Sentiment),
        outputs.scored_posts.map(Out::ScoredPost),
        outputs.trending.map(Out::Trending),
        outputs.alerts.map(Out::Alert),
        outputs.late.map(Out::Late),
    ]);
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
