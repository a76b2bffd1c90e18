//! Timing a child process until it exits: wall time, peak resident memory
//! (the largest `VmHWM` read from `/proc` while it runs, sampled every
//! 10 ms, as `/usr/bin/time -v` reports it) and CPU time (user + system,
//! from `getrusage(RUSAGE_CHILDREN)` before and after it is reaped; the
//! benchmark's children run one after the other, so the difference is this
//! one's).

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::resource::{getrusage, UsageWho};

use crate::procstat::status_kib;

/// How a child ran.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// From start to exit.
    pub wall: Duration,
    /// Peak resident set size, KiB.
    pub peak_rss_kib: u64,
    /// User plus system CPU time.
    pub cpu: Duration,
}

impl Measured {
    /// Peak RSS in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

/// CPU time of the reaped children so far.
pub fn children_cpu() -> anyhow::Result<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage")?;
    let micros = |t: nix::sys::time::TimeVal| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec()).unwrap_or(0)
    };
    Ok(Duration::from_micros(
        micros(usage.user_time()) + micros(usage.system_time()),
    ))
}

/// Waits for the child `pid` to exit (`try_wait` reaps it), sampling its
/// peak RSS; `started` is when it was started and `cpu_before` the
/// [`children_cpu`] then. An error if it runs longer than `timeout` (the
/// caller's drop then kills it) or exits unsuccessfully.
pub fn wait_measured(
    what: &str,
    pid: u32,
    mut try_wait: impl FnMut() -> std::io::Result<Option<ExitStatus>>,
    started: Instant,
    cpu_before: Duration,
    timeout: Duration,
) -> anyhow::Result<Measured> {
    let mut peak_rss_kib = 0;
    let status = loop {
        if let Some(hwm) = status_kib(pid, "VmHWM") {
            peak_rss_kib = peak_rss_kib.max(hwm);
        }
        if let Some(status) = try_wait().with_context(|| format!("waiting for {what}"))? {
            break status;
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "{what} still running after {:.0} s",
            timeout.as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = started.elapsed();
    anyhow::ensure!(status.success(), "{what} failed: {status}");
    Ok(Measured {
        wall,
        peak_rss_kib,
        cpu: children_cpu()?.saturating_sub(cpu_before),
    })
}
