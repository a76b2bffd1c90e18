//! The input operator of one stream's dataflow: the reading worker takes
//! that stream's messages from the consumer's channel without blocking, in
//! stream order, stamps every event of each message with the stream's
//! watermark before the message ([`StreamClock`]), sends raw trades and
//! quotes to the output task, and tells the checkpoint task where each
//! message stands (its sequence, its deadline, the clock after it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use insite_operators::StreamClock;
use insite_schemas::time::now_ms;
use insite_schemas::{Inbound, Post, TimestampMs, Trade};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, StreamVec};
use tokio::sync::mpsc::{self, error::TryRecvError};

use super::{send_out, SourceReader};
use crate::output::WorkerOutput;
use crate::progress::{Read, WindowSpans};
use crate::source::{InputBody, InputSource};

/// How the input operators behave.
#[derive(Debug, Clone)]
pub struct InputSettings {
    /// Allowed lateness, ms.
    pub allowed_lateness_ms: i64,
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

impl InputSettings {
    fn spans(&self, source: InputSource) -> &WindowSpans {
        match source {
            InputSource::Market => &self.market_spans,
            InputSource::Social => &self.social_spans,
        }
    }
}

/// What a stream's events are to its dataflow.
pub trait StreamEvent: Clone + Send + 'static + Sized {
    /// The stream these events come from.
    const SOURCE: InputSource;

    /// Splits a message's events into those for the dataflow, and the raw
    /// rows for the output task (if any), calling `time` with every event
    /// time.
    fn take(
        events: Inbound,
        time: &mut dyn FnMut(TimestampMs),
    ) -> (Vec<Self>, Option<WorkerOutput>);
}

impl StreamEvent for Trade {
    const SOURCE: InputSource = InputSource::Market;

    fn take(
        events: Inbound,
        time: &mut dyn FnMut(TimestampMs),
    ) -> (Vec<Self>, Option<WorkerOutput>) {
        match events {
            Inbound::Trades(trades) => {
                trades.iter().for_each(|t| time(t.ts));
                (trades.clone(), Some(WorkerOutput::Trades(trades)))
            }
            Inbound::Quotes(quotes) => {
                // Quotes feed no window, but they are market events: their
                // time moves the market clock.
                quotes.iter().for_each(|q| time(q.ts));
                (Vec::new(), Some(WorkerOutput::Quotes(quotes)))
            }
            Inbound::Posts(_) => (Vec::new(), None),
        }
    }
}

impl StreamEvent for Post {
    const SOURCE: InputSource = InputSource::Social;

    fn take(
        events: Inbound,
        time: &mut dyn FnMut(TimestampMs),
    ) -> (Vec<Self>, Option<WorkerOutput>) {
        match events {
            Inbound::Posts(posts) => {
                posts.iter().for_each(|p| time(p.ts));
                (posts, None)
            }
            Inbound::Trades(_) | Inbound::Quotes(_) => (Vec::new(), None),
        }
    }
}

/// The input operator of `D`'s stream: its events, each stamped with the
/// stream's watermark before its message. `reader` is `Some` on the one
/// reading worker of the pipeline (the first worker of process 0); every
/// other worker drops its capability at once.
pub fn input<'s, D: StreamEvent>(
    scope: Scope<'s, TimestampMs>,
    reader: Option<SourceReader>,
    settings: InputSettings,
    output: mpsc::Sender<WorkerOutput>,
    stop: Arc<AtomicBool>,
) -> StreamVec<'s, TimestampMs, D> {
    let name = match D::SOURCE {
        InputSource::Market => "MarketInput",
        InputSource::Social => "SocialInput",
    };
    source(scope, name, move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut reader = reader;
        let mut clock = StreamClock::new(settings.allowed_lateness_ms);
        let mut capability = reader.as_mut().map(|reader| {
            clock = clock.resume(reader.resume_max_ts);
            capability
        });
        let spans = settings.spans(D::SOURCE).clone();
        move |out| {
            let (Some(reader), Some(cap)) = (reader.as_mut(), capability.as_mut()) else {
                return;
            };
            let mut ended = false;
            let mut taken = 0;
            // This activation's messages as runs for the checkpoint task:
            // a message finished with no later than the one before it joins
            // its run, so one record goes per run, not per message.
            let mut run: Option<Read> = None;
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
                // The stream's watermark before this message: its events'
                // timely time, and what decides whether they are late.
                let stamp = clock.watermark();
                if stamp > *cap.time() {
                    cap.downgrade(&stamp);
                }
                let stamp = *cap.time();
                let mut deadline = stamp;
                match message.body {
                    InputBody::Events(events) => {
                        // The clock moves only after the whole message: its
                        // events share the stamp taken before it.
                        let mut newest: Option<TimestampMs> = None;
                        let (events, raw) = D::take(events, &mut |ts| {
                            newest = Some(newest.map_or(ts, |n| n.max(ts)));
                            deadline = deadline.max(spans.deadline(ts));
                        });
                        if !events.is_empty() {
                            out.session(&*cap).give_iterator(events.into_iter());
                        }
                        if let Some(raw) = raw {
                            send_out(&output, &stop, raw);
                        }
                        if let Some(newest) = newest {
                            clock.advance(newest);
                        }
                    }
                    InputBody::Clock(ts) => clock.advance(ts),
                    InputBody::Rejected => {}
                }
                if reader.reads.is_some() {
                    let read = Read::one(
                        message.stream_seq,
                        deadline.saturating_add(1),
                        clock.max_ts(),
                    );
                    run = match run {
                        Some(mut current) => match current.absorb(read) {
                            Ok(()) => Some(current),
                            Err(next) => {
                                send_read(reader, &stop, current);
                                Some(next)
                            }
                        },
                        None => Some(read),
                    };
                }
            }
            if let Some(current) = run {
                send_read(reader, &stop, current);
            }
            if ended {
                if settings.bounded {
                    // The replay's input is complete: every window closes.
                    capability = None;
                }
                return;
            }
            let watermark = clock.watermark();
            if watermark > *cap.time() {
                cap.downgrade(&watermark);
            }
            if watermark > TimestampMs::MIN {
                metrics::gauge!("insite_pipeline_watermark_lag_seconds", "source" => D::SOURCE.name())
                    .set((now_ms() - watermark) as f64 / 1_000.0);
            }
            if taken == settings.max_messages_per_activation {
                activator.activate();
            } else {
                activator.activate_after(settings.poll);
            }
        }
    })
}

/// Tells the checkpoint task where a run of messages stands; a closed
/// channel means the job is ending: the workers are told to stop.
fn send_read(reader: &SourceReader, stop: &AtomicBool, read: Read) {
    if let Some(reads) = &reader.reads {
        if reads.send(read).is_err() {
            stop.store(true, Ordering::SeqCst);
        }
    }
}
