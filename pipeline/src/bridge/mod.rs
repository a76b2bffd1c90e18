//! The one place where the async world (tokio: JetStream consumers, sinks,
//! acknowledgement) and the timely worker threads meet.
//!
//! **Workers** (`Job`, in `workers.rs`). A job starts the output task and
//! the timely workers (`timely::execute`) from one `JobSpec`; the reader
//! goes to the first worker of the process; every worker steps its dataflow
//! until the job's stop flag is set, then drops it where it is.
//!
//! **Input** ([`input`], in `input_operator.rs`). The first worker of each
//! process owns the process's input: it takes decoded messages from a
//! bounded tokio channel with `try_recv` (a worker never blocks on input),
//! stamps every event of a message with the process's current *watermark*
//! as its timely time (the watermark when the message was read, before its
//! own events are taken into account), sends raw trades and quotes to the
//! output task, and hands the message's acknowledgement handle, with its
//! *deadline*, to the ack task. Its capability follows the watermark
//! ([`insite_operators::WatermarkTracker`]); the other workers of the
//! process drop theirs at once, so only readers hold the dataflow's
//! frontier back.
//!
//! **Output** ([`output`], in `output_operator.rs`). Every worker sends the
//! dataflow's results into the output task's bounded channel with
//! `blocking_send` (a full channel blocks the worker: back-pressure reaches
//! the consumers through the input channel), followed by
//! [`WorkerOutput::Progress`] whenever its output frontier moves.
//!
//! **Deadlines.** Every final result of a window ending at `e` is emitted at
//! timely time `e`, and a late event at the time it was read, `t`. A message
//! read at `t` whose events fall in windows ending at most at `E` is
//! therefore finished with once the durable frontier passes `max(E, t)`: its
//! deadline is `max(E, t) + 1` ([`crate::progress::AckTracker`]).

mod input_operator;
mod output_operator;
mod workers;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_nats::jetstream::message::Acker;
use insite_schemas::TimestampMs;
use tokio::sync::mpsc;

pub use input_operator::{input, InputSettings};
pub use output_operator::output;
pub(crate) use workers::{Job, JobSpec};

use crate::output::WorkerOutput;
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

/// Sends to the output task, blocking the worker while its channel is full.
/// A closed channel means the output task is gone: the worker is told to
/// stop.
fn send_out(tx: &mpsc::Sender<WorkerOutput>, stop: &AtomicBool, output: WorkerOutput) {
    if tx.blocking_send(output).is_err() {
        stop.store(true, Ordering::SeqCst);
    }
}
