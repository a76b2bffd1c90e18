//! Starting, finding and stopping one node's process by its pid file.
//!
//! A pid file counts only while its process is alive, is not a zombie and
//! has the cluster's folder on its command line (every node is started with
//! a config file or `--config` under it; Redis, which rewrites its title,
//! by its address), so a recycled pid is never taken for a node and never
//! signalled.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::configs::{create_dir, write_file};
use super::layout::{ClusterConfig, Node, NodeKind};
use super::ClusterError;

/// The pid of `node`'s process, if it runs.
pub fn running_pid(config: &ClusterConfig, node: Node) -> Option<u32> {
    let root = std::path::absolute(&config.root).ok()?;
    crate::server::live_pid_from_file(&config.pid_file(node), |cmdline| match node.kind {
        // Redis rewrites its process title to `redis-server <addr> [cluster]`.
        NodeKind::Redis => {
            cmdline.contains("redis-server")
                && cmdline.contains(&format!("127.0.0.1:{}", config.redis_port(node.index)))
        }
        _ => cmdline.contains(&*root.to_string_lossy()),
    })
}

/// Spawns `cmd` as `node`, appending its output to the node's log and
/// writing its pid file.
pub fn spawn(config: &ClusterConfig, node: Node, mut cmd: Command) -> Result<u32, ClusterError> {
    create_dir(&config.root.join("run"))?;
    create_dir(&config.root.join("logs"))?;
    let log_path = config.log_file(node);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| ClusterError::io(format!("opening {}", log_path.display()), e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| ClusterError::io(format!("opening {}", log_path.display()), e))?;
    cmd.stdout(log).stderr(log_err);
    let child = cmd
        .spawn()
        .map_err(|e| ClusterError::io(format!("starting {node} ({cmd:?})"), e))?;
    let pid = child.id();
    write_file(&config.pid_file(node), &pid.to_string())?;
    tracing::info!(%node, pid, "started");
    // Whoever outlives the child reaps it; dropping the handle does not stop
    // the process.
    drop(child);
    Ok(pid)
}

/// Sends `signal` to `node`'s process, if it runs; its pid.
pub fn signal(config: &ClusterConfig, node: Node, signal: Signal) -> Option<u32> {
    let pid = running_pid(config, node)?;
    let _ = kill(
        Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)),
        signal,
    );
    Some(pid)
}

/// Stops `node`: SIGTERM, then SIGKILL after `grace`. `None` when it was
/// not running.
pub fn stop(
    config: &ClusterConfig,
    node: Node,
    grace: Duration,
) -> Result<Option<u32>, ClusterError> {
    let pid_path = config.pid_file(node);
    let Some(pid) = signal(config, node, Signal::SIGTERM) else {
        if pid_path.exists() {
            fs::remove_file(&pid_path)
                .map_err(|e| ClusterError::io(format!("removing {}", pid_path.display()), e))?;
        }
        return Ok(None);
    };
    let deadline = Instant::now() + grace;
    while running_pid(config, node).is_some() {
        if Instant::now() >= deadline {
            tracing::warn!(%node, pid, "did not stop on SIGTERM; sending SIGKILL");
            let _ = signal(config, node, Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(300));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = fs::remove_file(&pid_path);
    tracing::info!(%node, pid, "stopped");
    Ok(Some(pid))
}

/// Kills `node` with SIGKILL (a crash, for the fault suite) and waits until
/// it is gone. `None` when it was not running.
pub fn kill9(config: &ClusterConfig, node: Node) -> Option<u32> {
    let pid = signal(config, node, Signal::SIGKILL)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while running_pid(config, node).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!(%node, pid, "killed (SIGKILL)");
    Some(pid)
}

/// Resident memory of a process, in bytes (from `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
