//! Pinning processes to CPUs, so that a load generator and the service it
//! drives do not take each other's cores: `taskset -a -p -c LIST PID`
//! (every thread of the process; threads started later inherit it).

use std::process::{Command, Stdio};

/// Which CPUs the generator and the measured processes get.
#[derive(Debug, Clone)]
pub struct Pinning {
    /// CPU list of the load generator (this process), e.g. `0`.
    pub generator: String,
    /// CPU list of the process measured (the service, the floors), e.g. `1`.
    pub service: String,
}

impl Pinning {
    /// On a machine of `n` CPUs: the generator on CPU 0, the measured
    /// process on the others; `None` with fewer than 2 CPUs.
    pub fn split(n: usize) -> Option<Self> {
        (n >= 2).then(|| Self {
            generator: "0".into(),
            service: if n == 2 {
                "1".into()
            } else {
                format!("1-{}", n - 1)
            },
        })
    }
}

/// Pins every thread of `pid` to `cpus`; an error naming what failed.
pub fn pin(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdin(Stdio::null())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "taskset -a -p -c {cpus} {pid}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The number of CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
