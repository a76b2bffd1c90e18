//! The input operator: the reading worker of each process takes decoded
//! messages from the consumers' channel without blocking, stamps their
//! events with the read-time watermark, sends raw trades and quotes to the
//! output task and hands each message's acknowledgement handle, with its
//! deadline, to the ack task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use insite_operators::WatermarkTracker;
use insite_schemas::time::now_ms;
use insite_schemas::{Inbound, Post, TimestampMs, Trade};
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::OkErr;
use timely::dataflow::{Scope, StreamVec};
use tokio::sync::mpsc::{self, error::TryRecvError};

use super::{send_out, Hold, Reader};
use crate::output::WorkerOutput;
use crate::progress::WindowSpans;

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
                let now = now_ms();
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
