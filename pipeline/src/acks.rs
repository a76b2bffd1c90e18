//! The ack task: holds every input message's acknowledgement handle until
//! the durable frontier reaches its deadline, then acknowledges it.
//!
//! A message acknowledged here has had every result that depends on it
//! confirmed by ClickHouse, and the frontier that says so recorded in
//! `pipeline_progress`; a message not yet acknowledged when the pipeline dies
//! is delivered again on restart.

use insite_schemas::TimestampMs;
use tokio::sync::{mpsc, watch};

use crate::bridge::Hold;
use crate::progress::AckTracker;

/// What the ack task did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckReport {
    /// Messages acknowledged.
    pub acked: u64,
    /// Acknowledgements that failed (the message will be delivered again).
    pub failed: u64,
    /// Messages still held when the task ended (delivered again on restart).
    pub held: u64,
}

/// Runs until both the readers (`holds`) and the output task (`durable`)
/// are gone. `floor` is the durable frontier an earlier run recorded.
pub async fn run_acks(
    mut holds: mpsc::UnboundedReceiver<Hold>,
    mut durable: watch::Receiver<TimestampMs>,
    floor: TimestampMs,
) -> AckReport {
    let mut tracker = AckTracker::default();
    let mut report = AckReport::default();
    let _ = tracker.release_through(floor);
    let (mut holds_open, mut durable_open) = (true, true);
    while holds_open || durable_open {
        tokio::select! {
            hold = holds.recv(), if holds_open => match hold {
                Some(hold) => tracker.hold(hold.deadline, hold.acker),
                None => holds_open = false,
            },
            changed = durable.changed(), if durable_open => {
                if changed.is_err() {
                    durable_open = false;
                }
            },
        }
        let through = *durable.borrow_and_update();
        let released = tracker.release_through(through);
        if !released.is_empty() {
            for acker in released {
                match acker.ack().await {
                    Ok(()) => report.acked += 1,
                    Err(e) => {
                        report.failed += 1;
                        tracing::warn!(error = %e, "acknowledgement failed; the message will be delivered again");
                    }
                }
            }
            metrics::counter!("insite_pipeline_acked_total").absolute(report.acked);
        }
        metrics::gauge!("insite_pipeline_held_messages").set(tracker.len() as f64);
    }
    report.held = tracker.len() as u64;
    report
}
