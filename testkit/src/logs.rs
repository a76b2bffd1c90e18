//! What insite logged at `warn` and above in this test process, kept so
//! that a test can check that a refusal (a permission violation, a read-only
//! user) was logged clearly: [`captured`], [`wait_for`].
//!
//! The kit's tracing subscriber ([`crate::servers`] installs it) sends every
//! event to the test writer (filtered by `INSITE_TEST_LOG`) and, whatever
//! that filter, every `warn` and `error` event to this buffer, as one line
//! of `LEVEL target: message field=value ...`. The buffer is bounded (the
//! latest 10,000 lines).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

const KEEP: usize = 10_000;

static LINES: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// The layer that records `warn` and `error` events into the buffer.
#[derive(Debug, Default)]
pub struct CaptureLayer;

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut line = Line(format!("{level} {}:", event.metadata().target()));
        event.record(&mut line);
        let mut lines = LINES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if lines.len() >= KEEP {
            lines.pop_front();
        }
        lines.push_back(line.0);
    }
}

/// Every captured line that contains all of `needles`.
pub fn captured(needles: &[&str]) -> Vec<String> {
    LINES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|line| needles.iter().all(|n| line.contains(n)))
        .cloned()
        .collect()
}

/// Waits (up to 20 s) until a captured line contains all of `needles`, and
/// returns it.
///
/// # Panics
/// If none does in time.
pub async fn wait_for(needles: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(line) = captured(needles).into_iter().next() {
            return line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no warn/error log line contains all of {needles:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
