//! The shared engine of the keyed window operators (bars, sentiment,
//! trending counts): state keyed by (symbol, window), finals on the
//! frontier, provisional output at a wall-clock cadence.
//!
//! Records are exchanged by [`Symbol::route_hash`], so each symbol's windows
//! live on one worker. A record read at timely time `t` feeds each of its
//! windows whose end `e > t` and skips the others (it is late for them; the
//! `LateEvent` is emitted once per record by [`crate::late`]). For every
//! open window the engine holds a capability at its end `e`; when the input
//! frontier reaches `e` (no time `< e` can arrive any more) the window's
//! final result is emitted **at time `e`**, windows of one end in
//! (symbol, window) order. Provisional results of windows updated since the
//! last flush are emitted at most once per cadence, at the least time of the
//! records that updated them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use insite_schemas::{Symbol, TimestampMs};
use rustc_hash::FxHashMap;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use crate::window::WindowSpec;

/// What a keyed window operator computes.
pub(crate) trait Aggregate: 'static {
    /// The records.
    type In: ExchangeData;
    /// Per-window state.
    type Acc;
    /// The results.
    type Out: ExchangeData;
    /// Whether provisional results are produced at all.
    const PROVISIONAL: bool;

    /// The record's symbol (the key).
    fn symbol(record: &Self::In) -> &Symbol;
    /// The record's event time.
    fn ts(record: &Self::In) -> TimestampMs;
    /// A window's state holding only `record`.
    fn first(record: &Self::In) -> Self::Acc;
    /// Adds `record` to a window's state.
    fn add(acc: &mut Self::Acc, record: &Self::In);
    /// The in-progress result of an open window.
    fn provisional(
        &self,
        symbol: &Symbol,
        spec: WindowSpec,
        start: TimestampMs,
        acc: &Self::Acc,
    ) -> Option<Self::Out>;
    /// The final result of a window; called in order of window end, then
    /// (symbol, spec, start), so it may keep deterministic per-symbol state.
    fn finish(
        &mut self,
        symbol: &Symbol,
        spec: WindowSpec,
        start: TimestampMs,
        acc: Self::Acc,
    ) -> Option<Self::Out>;
    /// Called after all windows ending at `end` are finished.
    fn closed_up_to(&mut self, _end: TimestampMs) {}
}

/// One open window of one symbol.
struct Open<Acc> {
    spec: usize,
    start: TimestampMs,
    acc: Acc,
    dirty: bool,
}

/// Windows that close at one end time, and the capability to emit them.
struct Closing {
    cap: Capability<TimestampMs>,
    windows: Vec<(Symbol, usize, TimestampMs)>,
}

/// Builds a keyed window operator named `name` over `specs`.
pub(crate) fn windowed<'scope, A: Aggregate>(
    stream: StreamVec<'scope, TimestampMs, A::In>,
    name: &str,
    specs: Vec<WindowSpec>,
    provisional_every: Duration,
    mut agg: A,
) -> StreamVec<'scope, TimestampMs, A::Out> {
    let scope = stream.scope();
    let pact = Exchange::new(|record: &A::In| A::symbol(record).route_hash());
    stream.unary_frontier(pact, name, move |_cap, info| {
        let activator = scope.activator_for(info.address.clone());
        let mut open: FxHashMap<Symbol, Vec<Open<A::Acc>>> = FxHashMap::default();
        let mut closing: BTreeMap<TimestampMs, Closing> = BTreeMap::new();
        let mut dirty: Vec<(Symbol, usize, TimestampMs)> = Vec::new();
        let mut provisional_cap: Option<Capability<TimestampMs>> = None;
        let mut last_flush = Instant::now();

        move |(input, frontier), output| {
            let output_index = output.output_index();
            input.for_each_stamp(|cap, batches| {
                let Some(&t) = cap.least() else { return };
                if A::PROVISIONAL && provisional_cap.as_ref().is_none_or(|c| *c.time() > t) {
                    provisional_cap = cap.retain_least(output_index);
                }
                for batch in batches {
                    for record in batch.drain(..) {
                        let symbol = A::symbol(&record);
                        let ts = A::ts(&record);
                        let windows = match open.get_mut(symbol) {
                            Some(windows) => windows,
                            None => open.entry(symbol.clone()).or_default(),
                        };
                        for (spec_index, spec) in specs.iter().enumerate() {
                            for start in spec.starts(ts) {
                                let end = spec.end(start);
                                if end <= t {
                                    continue; // late for this window
                                }
                                let found = windows
                                    .iter_mut()
                                    .find(|w| w.start == start && w.spec == spec_index);
                                let window = match found {
                                    Some(window) => {
                                        A::add(&mut window.acc, &record);
                                        window
                                    }
                                    None => {
                                        closing
                                            .entry(end)
                                            .or_insert_with(|| Closing {
                                                cap: cap.delayed(&end, output_index),
                                                windows: Vec::new(),
                                            })
                                            .windows
                                            .push((symbol.clone(), spec_index, start));
                                        windows.push(Open {
                                            spec: spec_index,
                                            start,
                                            acc: A::first(&record),
                                            dirty: false,
                                        });
                                        let last = windows.len() - 1;
                                        &mut windows[last]
                                    }
                                };
                                if A::PROVISIONAL && !window.dirty {
                                    window.dirty = true;
                                    dirty.push((symbol.clone(), spec_index, start));
                                }
                            }
                        }
                    }
                }
            });

            // Finals: every window whose end the frontier has reached.
            while let Some(entry) = closing.first_entry() {
                if frontier.less_than(entry.key()) {
                    break;
                }
                let (end, Closing { cap, mut windows }) = entry.remove_entry();
                windows.sort();
                let mut session = output.session(&cap);
                for (symbol, spec_index, start) in windows {
                    let Some(list) = open.get_mut(&symbol) else {
                        continue;
                    };
                    let Some(position) = list
                        .iter()
                        .position(|w| w.start == start && w.spec == spec_index)
                    else {
                        continue;
                    };
                    let window = list.swap_remove(position);
                    if list.is_empty() {
                        open.remove(&symbol);
                    }
                    if let Some(result) = agg.finish(&symbol, specs[spec_index], start, window.acc)
                    {
                        session.give(result);
                    }
                }
                drop(session);
                agg.closed_up_to(end);
            }

            // Nothing open: nothing to report provisionally either.
            if open.is_empty() {
                dirty.clear();
                provisional_cap = None;
            }

            // Provisionals, at most once per cadence.
            if A::PROVISIONAL && !dirty.is_empty() {
                let elapsed = last_flush.elapsed();
                if elapsed >= provisional_every {
                    if let Some(cap) = provisional_cap.take() {
                        let mut session = output.session(&cap);
                        for (symbol, spec_index, start) in dirty.drain(..) {
                            let Some(window) = open.get_mut(&symbol).and_then(|list| {
                                list.iter_mut()
                                    .find(|w| w.start == start && w.spec == spec_index)
                            }) else {
                                continue; // finalized since
                            };
                            window.dirty = false;
                            if let Some(result) =
                                agg.provisional(&symbol, specs[spec_index], start, &window.acc)
                            {
                                session.give(result);
                            }
                        }
                    }
                    dirty.clear();
                    last_flush = Instant::now();
                } else {
                    activator.activate_after(provisional_every - elapsed);
                }
            } else if dirty.is_empty() {
                provisional_cap = None;
            }
        }
    })
}
