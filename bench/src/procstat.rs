//! A process's CPU time, resident memory and peak resident memory, read
//! from `/proc/<pid>/stat` and `/proc/<pid>/status` (Linux).

use std::time::Instant;

/// A field of `/proc/<pid>/status` given in KiB (`VmRSS`, `VmHWM`, ...);
/// `None` if the process or the field is not there.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// CPU ticks and RSS of a process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size, in KiB (0 if unknown).
    pub rss_kib: u64,
}

impl Sample {
    /// The process's CPU ticks and RSS now (zeros for what cannot be read).
    pub fn take(pid: u32) -> Self {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at ")".
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of stat(5); index 11 and 12 here.
        let cpu_ticks = tick(11) + tick(12);
        Self {
            at: Instant::now(),
            cpu_ticks,
            rss_kib: status_kib(pid, "VmRSS").unwrap_or(0),
        }
    }

    /// RSS in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// CPU used between two samples, in % of one core (100 ticks per second).
pub fn cpu_percent(a: Sample, b: Sample) -> f64 {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    (b.cpu_ticks.saturating_sub(a.cpu_ticks)) as f64 / 100.0 / secs * 100.0
}

/// CPU seconds used between two samples (100 ticks per second).
pub fn cpu_seconds(a: Sample, b: Sample) -> f64 {
    b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 / 100.0
}

/// The load averages of `/proc/loadavg` (1, 5 and 15 minutes), as text.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}
