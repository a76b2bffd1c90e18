//! The one place where the async world (tokio: JetStream consumers, sinks,
//! acknowledgement) and the timely worker threads meet.
//!
//! **Workers** (`Job`, in `workers.rs`). A job starts the output task and
//! the timely workers (`timely::execute`) from one `JobSpec`. Every worker
//! runs two dataflows, one per input stream, each in its own stream's
//! event time: the market dataflow (bars, bar alerts, late trades) and the
//! social dataflow (sentiment, trending, sentiment alerts, late posts). The
//! readers go to the first worker of process 0; every worker steps its
//! dataflows until the job's stop flag is set, then drops them where they
//! are.
//!
//! **Input** ([`input`], in `input_operator.rs`). The reading worker takes
//! each stream's messages from a bounded tokio channel with `try_recv` (a
//! worker never blocks on input), in stream order, and stamps every event of
//! a message with the stream's watermark *before* that message
//! ([`insite_operators::StreamClock`]): per message, never per activation,
//! so lateness is a function of the stream alone. It sends raw trades and
//! quotes to the output task and each message's place (sequence, deadline,
//! clock) to the checkpoint task. Its capability follows the watermark; the
//! other workers drop theirs at once, so only the reader holds the
//! dataflow's frontier back.
//!
//! **Output** ([`output`], in `output_operator.rs`). Every worker sends the
//! dataflows' results into the output task's bounded channel with
//! `blocking_send` (a full channel blocks the worker: back-pressure reaches
//! the consumers through the input channels), followed by
//! [`WorkerOutput::Progress`] whenever a dataflow's output frontier moves.
//!
//! **Deadlines.** Every final result of a window ending at `e` is emitted at
//! timely time `e`, and a late event at its stamp `t`. A message stamped `t`
//! whose events fall in windows ending at most at `E` is therefore finished
//! with once its stream's durable frontier passes `max(E, t)`: its deadline
//! is `max(E, t) + 1` ([`crate::progress::CheckpointTracker`]).

mod input_operator;
mod output_operator;
mod workers;

use std::sync::atomic::{AtomicBool, Ordering};

use insite_schemas::TimestampMs;
use tokio::sync::mpsc;

pub use input_operator::{input, InputSettings, StreamEvent};
pub use output_operator::{market_results, output, social_results, Out};
pub(crate) use workers::{Job, JobSpec};

use crate::output::WorkerOutput;
use crate::progress::Read;
use crate::source::InputMessage;

/// What the reading worker owns of one input stream.
pub struct SourceReader {
    /// The stream's messages, in stream order, from its consumer.
    pub input: mpsc::Receiver<InputMessage>,
    /// Where each message's place goes (`None` in a replay: nothing is
    /// checkpointed).
    pub reads: Option<mpsc::UnboundedSender<Read>>,
    /// The stream's clock at the checkpoint reading resumes from.
    pub resume_max_ts: Option<TimestampMs>,
}

impl std::fmt::Debug for SourceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceReader")
            .field("checkpoints", &self.reads.is_some())
            .field("resume_max_ts", &self.resume_max_ts)
            .finish_non_exhaustive()
    }
}

/// What the reading worker owns: one reader per input stream.
#[derive(Debug)]
pub struct Reader {
    /// MARKET.
    pub market: SourceReader,
    /// SOCIAL.
    pub social: SourceReader,
}

/// Sends to the output task, blocking the worker while its channel is full.
/// A closed channel means the output task is gone: the worker is told to
/// stop.
fn send_out(tx: &mpsc::Sender<WorkerOutput>, stop: &AtomicBool, output: WorkerOutput) {
    if tx.blocking_send(output).is_err() {
        stop.store(true, Ordering::SeqCst);
    }
}
