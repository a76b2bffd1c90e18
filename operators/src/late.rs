//! Late-event detection: one [`LateEvent`] per record that is late for at
//! least one of its windows, never a silent drop.
//!
//! A record read at timely time `t` (its input's watermark at read time)
//! with event time `ts` is late for a window `[s, e)` iff `e <= t`. Since the
//! earliest-closing window of `ts` ends at `slide_start(ts) + slide`, a
//! record is late for some window iff that end is `<= t`. The `LateEvent`
//! carries `watermark = t` and is emitted at time `t`. The record still
//! feeds every window it is on time for (the window operators check the
//! same rule per window).
//!
//! Trades feed the bar windows; posts feed sentiment and trending windows
//! of each of their cashtags, and a post without cashtags feeds no window,
//! so it is never late. A late post's `LateEvent` names its first cashtag.
//!
//! ```
//! use insite_operators::late::LateEvents;
//! use insite_operators::window::WindowSpec;
//! use insite_schemas::{Interval, Symbol, Trade};
//! use timely::dataflow::operators::{Capture, Input};
//!
//! let late = timely::execute_directly(|worker| {
//!     let (mut input, captured) = worker.dataflow::<i64, _, _>(|scope| {
//!         let (input, trades) = scope.new_input::<Vec<Trade>>();
//!         let late = trades.late_events(vec![WindowSpec::tumbling(Interval::SECOND)]);
//!         (input, late.capture())
//!     });
//!     let trade = |ts| Trade {
//!         symbol: Symbol::new("ACME").unwrap(), ts, price: 1.0, size: 1,
//!         exchange: "X".into(), trade_id: format!("{ts}").into(), conditions: vec![],
//!     };
//!     input.advance_to(5_000); // the watermark when these were read
//!     input.send(trade(4_999)); // window [4 000, 5 000) closed: late
//!     input.send(trade(5_000)); // on time
//!     drop(input);
//!     while worker.step() {}
//!     captured
//! });
//! let late: Vec<_> = insite_operators::captured(late)
//!     .into_iter()
//!     .map(|(time, l)| (time, l.ts, l.watermark))
//!     .collect();
//! assert_eq!(late, [(5_000, 4_999, 5_000)]);
//! ```

use insite_schemas::{msgid, EventKind, LateEvent, Post, TimestampMs, Trade};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use crate::window::{is_late_for_any, WindowSpec};

/// A record that can be late.
pub trait Windowed {
    /// Its event time.
    fn event_ts(&self) -> TimestampMs;
    /// Whether it feeds any window at all.
    fn has_windows(&self) -> bool;
    /// Its `LateEvent`, given the watermark it was read at.
    fn late_event(&self, watermark: TimestampMs) -> Option<LateEvent>;
}

impl Windowed for Trade {
    fn event_ts(&self) -> TimestampMs {
        self.ts
    }

    fn has_windows(&self) -> bool {
        true
    }

    fn late_event(&self, watermark: TimestampMs) -> Option<LateEvent> {
        Some(LateEvent {
            kind: EventKind::Trade,
            symbol: self.symbol.clone(),
            ts: self.ts,
            watermark,
            event_id: msgid::trade_msg_id(self),
        })
    }
}

impl Windowed for (Post, f64) {
    fn event_ts(&self) -> TimestampMs {
        self.0.ts
    }

    fn has_windows(&self) -> bool {
        !self.0.cashtags.is_empty()
    }

    fn late_event(&self, watermark: TimestampMs) -> Option<LateEvent> {
        let post = &self.0;
        Some(LateEvent {
            kind: EventKind::Post,
            symbol: post.cashtags.first()?.clone(),
            ts: post.ts,
            watermark,
            event_id: msgid::post_msg_id(post),
        })
    }
}

/// Late-event detection.
pub trait LateEvents<'scope> {
    /// One `LateEvent` per record late for at least one window of `specs`,
    /// emitted at the record's time.
    fn late_events(self, specs: Vec<WindowSpec>) -> StreamVec<'scope, TimestampMs, LateEvent>;
}

impl<'scope, D: Windowed + 'static> LateEvents<'scope> for StreamVec<'scope, TimestampMs, D> {
    fn late_events(self, specs: Vec<WindowSpec>) -> StreamVec<'scope, TimestampMs, LateEvent> {
        self.unary(Pipeline, "LateEvents", move |_cap, _info| {
            move |input, output| {
                input.for_each_stamp(|cap, batches| {
                    let Some(&t) = cap.least() else { return };
                    let mut session = output.session(&cap);
                    for batch in batches {
                        for record in batch.iter() {
                            if record.has_windows() && is_late_for_any(&specs, record.event_ts(), t)
                            {
                                if let Some(late) = record.late_event(t) {
                                    session.give(late);
                                }
                            }
                        }
                    }
                });
            }
        })
    }
}
