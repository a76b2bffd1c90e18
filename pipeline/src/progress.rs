//! Which input messages are finished with, and so where a restart may
//! resume reading each stream.
//!
//! Every message is read at a stamp `t` (its stream's watermark before it)
//! and gets a *deadline*: `max(E, t) + 1`, where `E` is the end of the last
//! window any of its events belongs to. Once the durable frontier `F` of
//! its stream reaches the deadline, every result depending on the message
//! (and its raw rows) is in ClickHouse. The [`CheckpointTracker`] keeps the
//! messages of one stream in sequence order and advances the stream's
//! *checkpoint* past the longest prefix of finished messages: a restart
//! reads from the checkpoint's sequence + 1, with the stream clock as it
//! stood after it. A message finished out of order waits for the ones
//! before it; seeing it again after a restart is harmless (see
//! `docs/pipeline.md`).
//!
//! **Runs, not messages.** A message whose deadline is at most that of the
//! message before it is finished with exactly when that one is (the
//! checkpoint passes messages in order, and the frontier only grows), so it
//! joins its predecessor's entry ([`Read::absorb`]): an entry is a run of
//! consecutive messages, held with the run's last sequence and clock and
//! the largest deadline. The entries' deadlines strictly increase, so the
//! tracker holds one entry per distinct deadline (about one per window end
//! of the longest window), not one per message, and the reading worker
//! sends one run per activation rather than one record per message. The
//! checkpoints are those a per-message tracker gives (a property test
//! checks it).
//!
//! ```
//! use insite_pipeline::progress::{CheckpointTracker, Read};
//! let mut tracker = CheckpointTracker::new(0, None);
//! tracker.read(Read::one(1, 60_000, Some(1_000)));
//! tracker.read(Read::one(2, 120_000, Some(61_000)));
//! tracker.read(Read::one(3, 60_000, Some(61_000))); // joins 2's entry
//! assert_eq!((tracker.held(), tracker.entries()), (3, 2));
//! assert!(tracker.advance(60_000)); // seq 1 is finished; 3 waits for 2
//! assert_eq!(tracker.checkpoint(), (1, Some(1_000)));
//! assert!(tracker.advance(120_000));
//! assert_eq!(tracker.checkpoint(), (3, Some(61_000)));
//! assert_eq!(tracker.held(), 0);
//! ```

use std::collections::VecDeque;

use insite_schemas::{Interval, TimestampMs};
use tokio::sync::{mpsc, watch};

use crate::source::InputSource;

/// A run of consecutive messages as read (often one message): where it
/// ends, when all of it is finished with, and its stream's clock after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// The stream sequence of its last message.
    pub seq: u64,
    /// The durable frontier at which every message of the run is finished
    /// with.
    pub deadline: TimestampMs,
    /// The stream's largest event time once its last message was read.
    pub max_ts: Option<TimestampMs>,
    /// How many messages it covers (at least 1).
    pub messages: u64,
}

impl Read {
    /// One message.
    pub fn one(seq: u64, deadline: TimestampMs, max_ts: Option<TimestampMs>) -> Self {
        Self {
            seq,
            deadline,
            max_ts,
            messages: 1,
        }
    }

    /// Takes in `next`, the run just after this one, if it is finished with
    /// no later than this one (its deadline is at most this one's): the
    /// checkpoint then passes both at once, so they are one run. Gives
    /// `next` back otherwise.
    pub fn absorb(&mut self, next: Read) -> Result<(), Read> {
        if next.deadline > self.deadline {
            return Err(next);
        }
        self.seq = next.seq;
        self.max_ts = next.max_ts;
        self.messages += next.messages;
        Ok(())
    }
}

/// The messages of one stream not yet finished with, in sequence order,
/// and the stream's checkpoint; see the module docs.
#[derive(Debug, Default)]
pub struct CheckpointTracker {
    /// Runs of messages read but not behind the checkpoint, in sequence
    /// order, with strictly increasing deadlines.
    pending: VecDeque<Read>,
    /// Messages in `pending`.
    held: usize,
    /// Every message at or below this sequence is finished with.
    seq: u64,
    /// The stream's clock after `seq`.
    max_ts: Option<TimestampMs>,
    /// The highest durable frontier seen.
    durable: TimestampMs,
}

impl CheckpointTracker {
    /// A tracker starting at the checkpoint `(seq, max_ts)` of an earlier
    /// run (`(0, None)`: the stream's start).
    pub fn new(seq: u64, max_ts: Option<TimestampMs>) -> Self {
        Self {
            pending: VecDeque::new(),
            held: 0,
            seq,
            max_ts,
            durable: TimestampMs::MIN,
        }
    }

    /// Notes a message, or a run of them, read (in sequence order).
    pub fn read(&mut self, read: Read) {
        self.held += usize::try_from(read.messages).unwrap_or(usize::MAX);
        let read = match self.pending.back_mut() {
            Some(last) => match last.absorb(read) {
                Ok(()) => return,
                Err(read) => read,
            },
            None => read,
        };
        self.pending.push_back(read);
    }

    /// Advances the checkpoint with the durable frontier `durable`; whether
    /// it moved.
    pub fn advance(&mut self, durable: TimestampMs) -> bool {
        self.durable = self.durable.max(durable);
        let mut moved = false;
        while let Some(front) = self.pending.front() {
            if front.deadline > self.durable {
                break;
            }
            self.seq = front.seq;
            self.max_ts = front.max_ts;
            self.held = self
                .held
                .saturating_sub(usize::try_from(front.messages).unwrap_or(usize::MAX));
            self.pending.pop_front();
            moved = true;
        }
        moved
    }

    /// The checkpoint: the sequence at or below which everything is
    /// finished with, and the stream's clock there.
    pub fn checkpoint(&self) -> (u64, Option<TimestampMs>) {
        (self.seq, self.max_ts)
    }

    /// Messages read but not yet behind the checkpoint.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Entries held for them: runs of messages with one deadline each.
    pub fn entries(&self) -> usize {
        self.pending.len()
    }
}

/// The checkpoint of each stream (MARKET, SOCIAL), as the checkpoint task
/// last advanced it.
pub type Checkpoints = [(u64, Option<TimestampMs>); 2];

/// What the checkpoint task did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Messages finished with (behind the checkpoints) during the run.
    pub finished: u64,
    /// Messages read but not finished with when the task ended (read again
    /// on restart).
    pub held: u64,
}

/// The checkpoint task: takes every message the readers read (`reads`, one
/// channel per stream) and each new durable frontier per stream
/// (`durable`), and publishes the checkpoints they allow on
/// `checkpoints`. Runs until the readers and the output side are gone.
pub async fn run_checkpoints(
    mut reads: [mpsc::UnboundedReceiver<Read>; 2],
    mut durable: watch::Receiver<[TimestampMs; 2]>,
    start: Checkpoints,
    checkpoints: watch::Sender<Checkpoints>,
) -> CheckpointReport {
    let mut trackers = start.map(|(seq, max_ts)| CheckpointTracker::new(seq, max_ts));
    let mut report = CheckpointReport::default();
    let mut open = [true, true];
    let mut durable_open = true;
    while open.iter().any(|o| *o) || durable_open {
        let [market, social] = &mut reads;
        tokio::select! {
            read = market.recv(), if open[0] => match read {
                Some(read) => take_queued(&mut trackers[0], read, market),
                None => open[0] = false,
            },
            read = social.recv(), if open[1] => match read {
                Some(read) => take_queued(&mut trackers[1], read, social),
                None => open[1] = false,
            },
            changed = durable.changed(), if durable_open => {
                if changed.is_err() {
                    durable_open = false;
                }
            },
        }
        let frontiers = *durable.borrow_and_update();
        let mut moved = false;
        for (index, tracker) in trackers.iter_mut().enumerate() {
            let before = tracker.held();
            if tracker.advance(frontiers[index]) {
                moved = true;
                report.finished += (before - tracker.held()) as u64;
            }
        }
        if moved {
            checkpoints.send_replace([trackers[0].checkpoint(), trackers[1].checkpoint()]);
            metrics::counter!("insite_pipeline_finished_messages_total").absolute(report.finished);
        }
        for (tracker, source) in trackers
            .iter()
            .zip([InputSource::Market, InputSource::Social])
        {
            metrics::gauge!("insite_pipeline_held_messages", "source" => source.name())
                .set(tracker.held() as f64);
        }
    }
    report.held = trackers.iter().map(|t| t.held() as u64).sum();
    report
}

/// Notes `first` and every run already queued behind it, so that the
/// checkpoint task advances (and reports) once per wake-up, not per run.
fn take_queued(
    tracker: &mut CheckpointTracker,
    first: Read,
    reads: &mut mpsc::UnboundedReceiver<Read>,
) {
    tracker.read(first);
    while let Ok(read) = reads.try_recv() {
        tracker.read(read);
    }
}

/// The windows an event contributes to, as far as holding its message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpans {
    /// Tumbling intervals.
    tumbling: Vec<Interval>,
    /// Sliding windows as (size, slide).
    sliding: Vec<(Interval, Interval)>,
}

impl WindowSpans {
    /// Spans of the given tumbling and sliding windows.
    pub fn new(tumbling: Vec<Interval>, sliding: Vec<(Interval, Interval)>) -> Self {
        Self { tumbling, sliding }
    }

    /// The end of the last window containing `ts`: the watermark at which
    /// every window the event belongs to has closed.
    ///
    /// ```
    /// use insite_pipeline::progress::WindowSpans;
    /// use insite_schemas::Interval;
    /// let spans = WindowSpans::new(vec![Interval::SECOND, Interval::MINUTE], vec![]);
    /// assert_eq!(spans.deadline(61_500), 120_000);
    /// ```
    pub fn deadline(&self, ts: TimestampMs) -> TimestampMs {
        let tumbling = self
            .tumbling
            .iter()
            .map(|iv| iv.window_end(iv.window_start(ts)));
        // The last sliding window holding ts starts at the last slide
        // boundary at or before ts.
        let sliding = self
            .sliding
            .iter()
            .map(|(size, slide)| slide.window_start(ts) + size.millis());
        tumbling.chain(sliding).max().unwrap_or(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The checkpoint is always the longest finished prefix: every
        /// message at or below it has a deadline within the durable
        /// frontier, and the next one (if any) has not.
        #[test]
        fn checkpoint_is_the_longest_finished_prefix(
            deadlines in proptest::collection::vec(0i64..1_000, 1..100),
            frontiers in proptest::collection::vec(0i64..1_000, 1..20),
        ) {
            let mut tracker = CheckpointTracker::new(0, None);
            for (i, deadline) in deadlines.iter().enumerate() {
                tracker.read(Read::one(i as u64 + 1, *deadline, Some(i as i64)));
            }
            let mut durable = i64::MIN;
            for frontier in frontiers {
                durable = durable.max(frontier);
                tracker.advance(frontier);
                let (seq, max_ts) = tracker.checkpoint();
                let prefix = deadlines.iter().take_while(|d| **d <= durable).count() as u64;
                prop_assert_eq!(seq, prefix);
                prop_assert_eq!(max_ts, (prefix > 0).then(|| prefix as i64 - 1));
                prop_assert_eq!(tracker.held() as u64, deadlines.len() as u64 - prefix);
            }
        }
    }

    /// The checkpoints of per-message bookkeeping (one entry per message,
    /// in order, never merged), for comparison.
    struct PerMessage(
        Vec<(u64, TimestampMs, Option<TimestampMs>)>,
        u64,
        Option<TimestampMs>,
    );

    impl PerMessage {
        fn advance(&mut self, durable: TimestampMs) {
            let done = self.0.iter().take_while(|(_, d, _)| *d <= durable).count();
            if let Some(&(seq, _, max_ts)) = self.0[..done].last() {
                (self.1, self.2) = (seq, max_ts);
            }
            self.0.drain(..done);
        }
    }

    proptest! {
        /// Runs give exactly the checkpoints of per-message bookkeeping,
        /// whether the reader sends messages one by one or already merged
        /// into runs of any length, with frontiers arriving between them;
        /// and the entries held have strictly increasing deadlines.
        #[test]
        fn runs_checkpoint_like_single_messages(
            steps in proptest::collection::vec((0i64..2_000, 1usize..5, proptest::option::of(0i64..2_000)), 1..200),
        ) {
            let mut tracker = CheckpointTracker::new(0, None);
            let mut single = PerMessage(Vec::new(), 0, None);
            let mut seq = 0u64;
            let mut durable = i64::MIN;
            let mut run: Option<Read> = None;
            for (deadline, batch, frontier) in steps {
                seq += 1;
                let read = Read::one(seq, deadline, Some(seq as i64 * 10));
                single.0.push((seq, deadline, read.max_ts));
                // The reader's own merging within an activation of `batch`.
                run = match run {
                    Some(mut r) => match r.absorb(read) {
                        Ok(()) => Some(r),
                        Err(read) => { tracker.read(r); Some(read) }
                    },
                    None => Some(read),
                };
                if seq.is_multiple_of(batch as u64) {
                    if let Some(r) = run.take() {
                        tracker.read(r);
                    }
                }
                if let Some(frontier) = frontier {
                    if let Some(r) = run.take() {
                        tracker.read(r);
                    }
                    durable = durable.max(frontier);
                    tracker.advance(frontier);
                    single.advance(durable);
                    prop_assert_eq!(tracker.checkpoint(), (single.1, single.2));
                    prop_assert_eq!(tracker.held(), single.0.len());
                    let deadlines: Vec<_> = tracker.pending.iter().map(|r| r.deadline).collect();
                    prop_assert!(deadlines.windows(2).all(|w| w[0] < w[1]), "{:?}", deadlines);
                }
            }
        }
    }

    #[test]
    fn one_entry_per_window_end_not_per_message() {
        // 10,000 messages over 3 windows of 5 minutes: their deadlines are
        // the three window ends, so three entries are held.
        let mut tracker = CheckpointTracker::new(0, None);
        for seq in 1..=10_000u64 {
            let ts = seq as i64 * 90 - 1;
            let deadline = (ts / 300_000 + 1) * 300_000 + 1;
            tracker.read(Read::one(seq, deadline, Some(ts)));
        }
        assert_eq!((tracker.held(), tracker.entries()), (10_000, 3));
        assert!(tracker.advance(600_001));
        assert_eq!(tracker.checkpoint(), (6_666, Some(599_939)));
        assert_eq!((tracker.held(), tracker.entries()), (3_334, 1));
    }

    #[test]
    fn deadline_covers_the_longest_window() {
        let spans = WindowSpans::new(
            vec![Interval::SECOND, Interval::MINUTE, Interval::FIVE_MINUTES],
            vec![(Interval::FIVE_MINUTES, Interval::MINUTE)],
        );
        // ts in [300_000, 360_000): the 5m tumbling window ends at 600_000,
        // the last sliding 5m window containing it starts at 300_000 and
        // ends at 600_000 too.
        assert_eq!(spans.deadline(301_000), 600_000);
        // Just before a 5m boundary, the sliding window starting at the
        // last minute boundary (240_000) ends at 540_000 < 300_000 + ...
        assert_eq!(spans.deadline(299_999), 540_000);
    }
}
