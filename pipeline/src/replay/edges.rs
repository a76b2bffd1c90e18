//! Which results of a replay are written: only those the range determines
//! exactly, so that a replay into the live database never replaces a live
//! final with a partial one.
//!
//! A replay reads a range of each stream with a clock that starts from
//! nothing. Its results differ from the live run's at two edges:
//!
//! * **The start.** Messages before the range may hold events of the first
//!   windows, and the live clock already stood higher there, so an event
//!   late for the live run may be on time for the replay. Every event (and
//!   clock tick) before the range was at most `max_clock_skew_ms` ahead of
//!   its message's storage time, and those messages were stored no later
//!   than the range's first; so their event times are at most a bound `B`
//!   ([`crate::source::ReplayStart::before_max_ts`]). A window `[s, e)` with
//!   `s > B` holds none of them, and since `e > B`, an event of it is late
//!   for the live run iff it is late for the replay: the live clock exceeds
//!   the replay's only by events at or before `B`. So windows starting at or
//!   after `B + 1` are exact; earlier ones are not written.
//! * **The end.** When the range ends, the dataflow closes every open
//!   window; those still open at the stream clock's end (`W_end`, the
//!   watermark after the range's last message) are partial. Windows ending
//!   at or before `W_end` were closed by the stream's own clock: a later
//!   message's event in them is late for the live run too. Windows ending
//!   after `W_end` are not written.
//!
//! Results that look back at earlier windows need those windows exact too:
//! a **trending** list's z-score uses the symbol's previous
//! `baseline_windows` windows (so its start must be `baseline_windows ×
//! slide` past the edge), a **sentiment shift** the previous window (one
//! interval past the edge), and a **volume spike** the symbol's previous
//! `volume_history` final bars, however far back they lie: it is written
//! only once that many bars of its symbol and interval, all past the edge,
//! precede it. Price moves depend on their bar alone.
//!
//! Late events are written when the replay's clock at their message equals
//! the live one (the replay's watermark is at least `B - allowed lateness`:
//! the events before the range no longer lead the clock), so the recorded
//! watermark is the live run's. Raw trades, quotes and scored posts are
//! the same whoever writes them and are written for the whole range (for an
//! event-time range: those with event times inside it). Provisional results
//! are never written: a replay rebuilds history.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use insite_operators::OperatorsConfig;
use insite_schemas::{
    Alert, AlertKind, Bar, EventKind, Finality, Interval, LateEvent, SentimentWindow, Symbol,
    TimestampMs, Trending,
};

use crate::output::WorkerOutput;
use crate::source::InputSource;

/// The fixed edges of one stream's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edges {
    /// The first event time the range determines: `B + 1`, or
    /// `TimestampMs::MIN` if the range starts at the stream's first message.
    /// Results needing history need it past here.
    pub cut: TimestampMs,
    /// Windows starting before this are not written: the later of `cut`
    /// and the event-time range's start.
    pub start: TimestampMs,
    /// Windows ending after this are not written (the event-time range's
    /// end; `TimestampMs::MAX`: none). The stream clock's end applies too.
    pub end: TimestampMs,
    /// Late events recorded at a watermark below this are not written.
    pub late_floor: TimestampMs,
    /// Raw events and late events outside `[from, to)` of event time are not
    /// written.
    pub events: (TimestampMs, TimestampMs),
}

impl Edges {
    /// The edges of a range whose preceding messages hold no event after
    /// `before_max_ts` (`None`: nothing precedes it), limited to the event
    /// times `[from_event, to_event)`, with `allowed_lateness_ms`.
    pub fn new(
        before_max_ts: Option<TimestampMs>,
        from_event: Option<TimestampMs>,
        to_event: Option<TimestampMs>,
        allowed_lateness_ms: i64,
    ) -> Self {
        let cut = before_max_ts.map_or(TimestampMs::MIN, |b| b.saturating_add(1));
        let from = from_event.unwrap_or(TimestampMs::MIN);
        let to = to_event.unwrap_or(TimestampMs::MAX);
        Self {
            cut,
            start: cut.max(from),
            end: to,
            late_floor: before_max_ts.map_or(TimestampMs::MIN, |b| {
                b.saturating_sub(allowed_lateness_ms.max(0))
            }),
            events: (from, to),
        }
    }

    /// Everything: a whole stream.
    pub fn everything() -> Self {
        Self::new(None, None, None, 0)
    }

    fn has_event(&self, ts: TimestampMs) -> bool {
        self.events.0 <= ts && ts < self.events.1
    }
}

/// How many windows' results a replay left out, and why.
#[derive(Debug, Default)]
pub struct Withheld {
    /// Final results (bars, sentiment windows, trending lists, alerts) of
    /// windows the range does not determine.
    pub finals: AtomicU64,
    /// Late events whose lateness the range cannot judge as the live run
    /// did.
    pub late: AtomicU64,
}

/// The filter between a replay's dataflow and its output task.
#[derive(Debug)]
pub struct ReplayFilter {
    /// Per stream (MARKET, SOCIAL), the fixed edges.
    edges: [Edges; 2],
    /// Per stream, the stream's watermark after the last message handed to
    /// the dataflow (set by the reader before it hands the message on).
    clocks: [Arc<AtomicI64>; 2],
    /// Trending lists need this much exact history before them, ms.
    trending_history_ms: i64,
    /// Volume spikes need this many exact bars before them.
    volume_history: usize,
    /// Window starts of final bars past the start edge, per (symbol,
    /// interval), for volume spikes.
    bars: HashMap<(Symbol, Interval), BTreeSet<TimestampMs>>,
    /// Volume spikes waiting for their history.
    pending: Vec<Alert>,
    /// What was left out.
    withheld: Arc<Withheld>,
}

impl ReplayFilter {
    /// A filter with `edges` per stream, the streams' end clocks in
    /// `clocks`, the history rules of `operators`, counting what it leaves
    /// out in `withheld`.
    pub fn new(
        edges: [Edges; 2],
        clocks: [Arc<AtomicI64>; 2],
        operators: &OperatorsConfig,
        withheld: Arc<Withheld>,
    ) -> Self {
        let baseline = i64::try_from(operators.trending.baseline_windows).unwrap_or(i64::MAX);
        Self {
            edges,
            clocks,
            trending_history_ms: baseline.saturating_mul(operators.trending.slide.millis()),
            volume_history: operators.alerts.volume_history,
            bars: HashMap::new(),
            pending: Vec::new(),
            withheld,
        }
    }

    /// Whether the window `[start, start + length)` of `source`'s stream,
    /// needing `history_ms` of exact history before it, is determined (and
    /// inside the event-time range).
    fn keeps(
        &self,
        source: InputSource,
        start: TimestampMs,
        length: Interval,
        history_ms: i64,
    ) -> bool {
        let edges = &self.edges[source.index()];
        let end = start.saturating_add(length.millis());
        let clock = self.clocks[source.index()].load(Ordering::SeqCst);
        start >= edges.start
            && start >= edges.cut.saturating_add(history_ms)
            && end <= edges.end.min(clock)
    }

    fn withhold(&self, n: usize) {
        if n > 0 {
            self.withheld.finals.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Whether the volume spike `alert` has `volume_history` exact bars of
    /// its symbol before it.
    fn has_volume_history(&self, alert: &Alert) -> bool {
        let cut = self.edges[InputSource::Market.index()].cut;
        if cut == TimestampMs::MIN {
            return true;
        }
        self.bars
            .get(&(alert.symbol.clone(), alert.interval))
            .is_some_and(|starts| {
                starts.range(cut..alert.window_start).count() >= self.volume_history
            })
    }

    /// Passes on what of `output` a replay writes, into `out`.
    pub fn apply(&mut self, output: WorkerOutput, out: &mut Vec<WorkerOutput>) {
        let market = self.edges[InputSource::Market.index()];
        let social = self.edges[InputSource::Social.index()];
        let kept = match output {
            WorkerOutput::Trades(mut trades) => {
                trades.retain(|t| market.has_event(t.ts));
                (!trades.is_empty()).then_some(WorkerOutput::Trades(trades))
            }
            WorkerOutput::Quotes(mut quotes) => {
                quotes.retain(|q| market.has_event(q.ts));
                (!quotes.is_empty()).then_some(WorkerOutput::Quotes(quotes))
            }
            WorkerOutput::Posts(mut posts) => {
                posts.retain(|(p, _)| social.has_event(p.ts));
                (!posts.is_empty()).then_some(WorkerOutput::Posts(posts))
            }
            WorkerOutput::Bars(bars) => {
                let bars = self.bars(bars);
                (!bars.is_empty()).then_some(WorkerOutput::Bars(bars))
            }
            WorkerOutput::Sentiment(windows) => {
                let finals: Vec<SentimentWindow> = windows
                    .into_iter()
                    .filter(|w| w.finality == Finality::Final)
                    .collect();
                let total = finals.len();
                let kept: Vec<SentimentWindow> = finals
                    .into_iter()
                    .filter(|w| self.keeps(InputSource::Social, w.window_start, w.interval, 0))
                    .collect();
                self.withhold(total - kept.len());
                (!kept.is_empty()).then_some(WorkerOutput::Sentiment(kept))
            }
            WorkerOutput::Trending(lists) => {
                let finals: Vec<Trending> = lists
                    .into_iter()
                    .filter(|t| t.finality == Finality::Final)
                    .collect();
                let total = finals.len();
                let history = self.trending_history_ms;
                let kept: Vec<Trending> = finals
                    .into_iter()
                    .filter(|t| {
                        self.keeps(InputSource::Social, t.window_start, t.interval, history)
                    })
                    .collect();
                self.withhold(total - kept.len());
                (!kept.is_empty()).then_some(WorkerOutput::Trending(kept))
            }
            WorkerOutput::Alerts(alerts) => {
                let kept = self.alerts(alerts);
                (!kept.is_empty()).then_some(WorkerOutput::Alerts(kept))
            }
            WorkerOutput::Late(late) => {
                let total = late.len();
                let kept: Vec<LateEvent> = late
                    .into_iter()
                    .filter(|e| {
                        let edges = match e.kind {
                            EventKind::Post => social,
                            EventKind::Trade | EventKind::Quote => market,
                        };
                        edges.has_event(e.ts) && e.watermark >= edges.late_floor
                    })
                    .collect();
                let left = (total - kept.len()) as u64;
                if left > 0 {
                    self.withheld.late.fetch_add(left, Ordering::Relaxed);
                }
                (!kept.is_empty()).then_some(WorkerOutput::Late(kept))
            }
            progress @ WorkerOutput::Progress { .. } => Some(progress),
        };
        out.extend(kept);
        // Volume spikes whose history has arrived since.
        if !self.pending.is_empty() {
            let (ready, waiting): (Vec<Alert>, Vec<Alert>) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|a| self.has_volume_history(a));
            self.pending = waiting;
            if !ready.is_empty() {
                out.push(WorkerOutput::Alerts(ready));
            }
        }
    }

    /// The final bars a replay writes, noting each for volume spikes.
    fn bars(&mut self, bars: Vec<Bar>) -> Vec<Bar> {
        let cut = self.edges[InputSource::Market.index()].cut;
        let mut kept = Vec::new();
        let mut left = 0;
        for bar in bars {
            if bar.finality != Finality::Final {
                continue;
            }
            if cut != TimestampMs::MIN && bar.window_start >= cut {
                self.bars
                    .entry((bar.symbol.clone(), bar.interval))
                    .or_default()
                    .insert(bar.window_start);
            }
            if self.keeps(InputSource::Market, bar.window_start, bar.interval, 0) {
                kept.push(bar);
            } else {
                left += 1;
            }
        }
        self.withhold(left);
        kept
    }

    /// The alerts a replay writes now; volume spikes still short of their
    /// history wait in `pending` (and are left out if it never comes).
    fn alerts(&mut self, alerts: Vec<Alert>) -> Vec<Alert> {
        let mut kept = Vec::new();
        let mut left = 0;
        for alert in alerts {
            let (source, history) = match alert.kind {
                AlertKind::PriceMove | AlertKind::VolumeSpike => (InputSource::Market, 0),
                AlertKind::SentimentShift => (InputSource::Social, alert.interval.millis()),
            };
            if !self.keeps(source, alert.window_start, alert.interval, history) {
                left += 1;
            } else if alert.kind == AlertKind::VolumeSpike && !self.has_volume_history(&alert) {
                self.pending.push(alert);
            } else {
                kept.push(alert);
            }
        }
        self.withhold(left);
        kept
    }

    /// Volume spikes that never got their history: left out.
    pub fn finish(&mut self) {
        let left = self.pending.len();
        self.pending.clear();
        self.withhold(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insite_schemas::Trade;

    const MIN: i64 = 60_000;

    fn bar(symbol: &str, interval: Interval, start: TimestampMs, finality: Finality) -> Bar {
        Bar {
            symbol: Symbol::new(symbol).unwrap(),
            interval,
            window_start: start,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 1,
            vwap: 1.0,
            trades: 1,
            finality,
        }
    }

    fn spike(start: TimestampMs) -> Alert {
        Alert {
            symbol: Symbol::new("ACME").unwrap(),
            kind: AlertKind::VolumeSpike,
            interval: Interval::MINUTE,
            window_start: start,
            value: 5.0,
            threshold: 3.0,
            message: String::new(),
        }
    }

    fn filter(edges: Edges, clock: TimestampMs) -> (ReplayFilter, Arc<Withheld>) {
        let withheld = Arc::new(Withheld::default());
        let clocks = [
            Arc::new(AtomicI64::new(clock)),
            Arc::new(AtomicI64::new(clock)),
        ];
        let mut operators = OperatorsConfig::default();
        operators.alerts.volume_history = 3;
        let filter = ReplayFilter::new([edges, edges], clocks, &operators, Arc::clone(&withheld));
        (filter, withheld)
    }

    fn bars_of(out: &[WorkerOutput]) -> Vec<TimestampMs> {
        out.iter()
            .flat_map(|o| match o {
                WorkerOutput::Bars(b) => b.iter().map(|b| b.window_start).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn edges_of_a_cut_and_of_an_event_range() {
        let cut = Edges::new(Some(10_000), None, None, 2_000);
        assert_eq!((cut.cut, cut.start), (10_001, 10_001));
        assert_eq!(cut.late_floor, 8_000);
        assert_eq!(cut.events, (TimestampMs::MIN, TimestampMs::MAX));
        let range = Edges::new(None, Some(MIN), Some(5 * MIN), 2_000);
        assert_eq!(
            (range.cut, range.start, range.end),
            (TimestampMs::MIN, MIN, 5 * MIN)
        );
        assert_eq!(range.late_floor, TimestampMs::MIN);
        // An event range beginning before the cut starts at the cut.
        assert_eq!(
            Edges::new(Some(2 * MIN), Some(MIN), None, 0).start,
            2 * MIN + 1
        );
    }

    #[test]
    fn only_windows_inside_both_edges_and_closed_by_the_clock_are_final() {
        // Cut at 1 m + 1 ms; the clock ended at 4 m + 30 s.
        let (mut f, withheld) = filter(Edges::new(Some(MIN), None, None, 2_000), 4 * MIN + 30_000);
        let mut out = Vec::new();
        f.apply(
            WorkerOutput::Bars(vec![
                bar("ACME", Interval::MINUTE, 0, Finality::Final), // cut by the start
                bar("ACME", Interval::MINUTE, MIN, Finality::Final), // starts 1 ms early
                bar("ACME", Interval::MINUTE, 2 * MIN, Finality::Final),
                bar("ACME", Interval::MINUTE, 3 * MIN, Finality::Final),
                bar("ACME", Interval::MINUTE, 4 * MIN, Finality::Final), // open at the end
                bar("ACME", Interval::MINUTE, 3 * MIN, Finality::Provisional),
            ]),
            &mut out,
        );
        assert_eq!(bars_of(&out), [2 * MIN, 3 * MIN]);
        assert_eq!(withheld.finals.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_volume_spike_waits_for_a_full_history_past_the_edge() {
        let (mut f, withheld) = filter(Edges::new(Some(MIN - 1), None, None, 0), 100 * MIN);
        let mut out = Vec::new();
        // Two bars past the edge, then a spike: three are needed.
        for start in [MIN, 2 * MIN] {
            f.apply(
                WorkerOutput::Bars(vec![bar("ACME", Interval::MINUTE, start, Finality::Final)]),
                &mut out,
            );
        }
        out.clear();
        f.apply(WorkerOutput::Alerts(vec![spike(3 * MIN)]), &mut out);
        assert!(out.is_empty(), "{out:?}");
        // A third bar, before the spike's window, completes its history.
        f.apply(
            WorkerOutput::Bars(vec![bar(
                "ACME",
                Interval::MINUTE,
                MIN / 2 + MIN,
                Finality::Final,
            )]),
            &mut out,
        );
        assert!(
            matches!(out.last(), Some(WorkerOutput::Alerts(a)) if a[0].window_start == 3 * MIN)
        );
        // A spike whose history never comes is left out at the end.
        f.apply(WorkerOutput::Alerts(vec![spike(2 * MIN)]), &mut out);
        f.finish();
        assert_eq!(withheld.finals.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn history_is_needed_past_a_cut_not_past_an_event_range_start() {
        let trending = |start| Trending {
            interval: Interval::FIVE_MINUTES,
            window_start: start,
            entries: Vec::new(),
            finality: Finality::Final,
        };
        let kept = |edges: Edges, start| {
            let (mut f, _) = filter(edges, 1_000 * MIN);
            let mut out = Vec::new();
            f.apply(WorkerOutput::Trending(vec![trending(start)]), &mut out);
            !out.is_empty()
        };
        // A cut at 10 m: 30 baseline windows of 1 m must lie past it.
        let cut = Edges::new(Some(10 * MIN - 1), None, None, 0);
        assert!(!kept(cut, 39 * MIN));
        assert!(kept(cut, 40 * MIN));
        // Read from the stream's first message, limited to event times from
        // 10 m: the history before 10 m was read, so it is exact.
        let range = Edges::new(None, Some(10 * MIN), None, 0);
        assert!(!kept(range, 9 * MIN));
        assert!(kept(range, 10 * MIN));
    }

    #[test]
    fn raw_and_late_events_follow_the_event_range_and_the_late_floor() {
        let (mut f, withheld) = filter(
            Edges::new(Some(10_000), Some(20_000), Some(30_000), 2_000),
            0,
        );
        let trade = |ts| Trade {
            symbol: Symbol::new("ACME").unwrap(),
            ts,
            price: 1.0,
            size: 1,
            exchange: "X".into(),
            trade_id: format!("{ts}").into(),
            conditions: vec![],
        };
        let late = |ts, watermark| LateEvent {
            kind: EventKind::Trade,
            symbol: Symbol::new("ACME").unwrap(),
            ts,
            watermark,
            event_id: format!("{ts}"),
        };
        let mut out = Vec::new();
        f.apply(
            WorkerOutput::Trades(vec![trade(19_999), trade(20_000), trade(30_000)]),
            &mut out,
        );
        f.apply(
            WorkerOutput::Late(vec![
                late(25_000, 7_999),
                late(25_001, 8_000),
                late(31_000, 40_000),
            ]),
            &mut out,
        );
        match &out[..] {
            [WorkerOutput::Trades(t), WorkerOutput::Late(l)] => {
                assert_eq!(t.iter().map(|t| t.ts).collect::<Vec<_>>(), [20_000]);
                assert_eq!(l.iter().map(|l| l.ts).collect::<Vec<_>>(), [25_001]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(withheld.late.load(Ordering::Relaxed), 2);
    }
}
