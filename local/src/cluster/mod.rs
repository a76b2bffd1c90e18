//! A local cluster of every component, as plain processes on loopback
//! ports, with data under one folder (`.insite/cluster/`):
//!
//! - NATS: 3 servers in one JetStream cluster (streams at 3 replicas);
//! - Redis Cluster: 3 masters, each with one replica;
//! - ZooKeeper (standalone), ClickHouse's coordination service;
//! - ClickHouse: 2 shards × 2 replicas of `Replicated*MergeTree`, with
//!   `Distributed` tables keyed by symbol;
//! - the pipeline: N `insite pipeline run` processes as one timely cluster;
//! - the query service: N `insite query serve` instances;
//! - haproxy in front of the query instances (health-checked on `/readyz`)
//!   and of the ClickHouse servers (on `/ping`).
//!
//! [`up`] is idempotent: it starts what is not running, forms the Redis
//! Cluster and creates the ClickHouse schema only once, and restarts the
//! whole pipeline when one of its processes is gone (timely's topology is
//! fixed, so a lost process stops the others). [`status`] asks every node
//! for its health and role; [`down`] stops what [`up`] started.
//!
//! ## Layout
//! - [`layout`]: the nodes, their ports and folders ([`ClusterConfig`]);
//! - `configs`: each node's command line and generated config files;
//! - `process`: pid files, spawn, stop, `kill -9`;
//! - `health`: health checks and roles;
//! - `bootstrap`: Redis Cluster creation, the ClickHouse schema, the load
//!   balancer's admin socket.

mod bootstrap;
mod configs;
mod health;
pub mod layout;
mod process;

use std::fmt;
use std::process::Command;
use std::time::Duration;

pub use bootstrap::{haproxy_command, CLUSTER_SCHEMA};
pub use configs::ClusterBinaries;
pub use health::{haproxy_sessions, haproxy_state, http_get};
pub use layout::{AppSpec, ClusterConfig, Node, NodeKind};
pub use process::{rss_bytes, running_pid};

use crate::server::Health;
use crate::LocalError;

/// Errors of the local cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Installing a server failed.
    #[error(transparent)]
    Install(#[from] LocalError),
    /// A node did not become healthy in time.
    #[error("{node} did not become healthy within {seconds} s: {detail} (log: {log})")]
    Unhealthy {
        /// Which node.
        node: Node,
        /// How long we waited.
        seconds: u64,
        /// The last health check's answer.
        detail: String,
        /// Its log file.
        log: String,
    },
    /// A port is taken by a process this cluster did not start.
    #[error("port {port} for {node} is already in use by another process")]
    PortInUse {
        /// Which node wanted it.
        node: Node,
        /// The port.
        port: u16,
    },
    /// Forming the Redis Cluster or creating the schema failed.
    #[error("cluster set-up: {0}")]
    Bootstrap(String),
    /// The cluster was asked for something its config does not allow.
    #[error("cluster config: {0}")]
    Config(String),
}

impl ClusterError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// One node's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// Which node.
    pub node: Node,
    /// Its main port.
    pub port: u16,
    /// The pid of the process `up` started, if it still runs.
    pub pid: Option<u32>,
    /// Its resident memory, if it runs.
    pub rss_bytes: Option<u64>,
    /// What it does (leader, master or replica, shard and replica, ...).
    pub role: String,
    /// Its health.
    pub health: Health,
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pid = self
            .pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into());
        let rss = self
            .rss_bytes
            .map(|b| format!("{} MiB", b >> 20))
            .unwrap_or_else(|| "-".into());
        write!(
            f,
            "{:<13} {:<6} {:<8} {:>8}  {:<36} {}",
            self.node, self.port, pid, rss, self.role, self.health
        )
    }
}

/// The state of one node.
pub fn node_status(config: &ClusterConfig, node: Node) -> NodeStatus {
    let pid = running_pid(config, node);
    let health = health::check(config, node);
    NodeStatus {
        node,
        port: config.main_port(node),
        pid,
        rss_bytes: pid.and_then(rss_bytes),
        role: if health == Health::Down {
            "-".into()
        } else {
            health::role(config, node)
        },
        health,
    }
}

/// The state of every node.
pub fn status(config: &ClusterConfig) -> Vec<NodeStatus> {
    config
        .nodes()
        .into_iter()
        .map(|node| node_status(config, node))
        .collect()
}

/// How long a node may take to become healthy.
fn start_timeout(node: Node) -> Duration {
    match node.kind {
        // The pipeline waits for its peers, its streams and the schema.
        NodeKind::Pipeline | NodeKind::Query => Duration::from_secs(180),
        _ => Duration::from_secs(90),
    }
}

/// Starts `node` unless it runs already. `true` when it was started.
fn ensure_started(
    config: &ClusterConfig,
    binaries: &ClusterBinaries,
    node: Node,
    customize: &mut dyn FnMut(&mut Command),
) -> Result<bool, ClusterError> {
    if running_pid(config, node).is_some() {
        return Ok(false);
    }
    process::stop(config, node, Duration::from_secs(1))?;
    let port = config.main_port(node);
    if health::check(config, node) != Health::Down {
        return Err(ClusterError::PortInUse { node, port });
    }
    let mut cmd = configs::command(config, binaries, node)?;
    customize(&mut cmd);
    process::spawn(config, node, cmd)?;
    Ok(true)
}

/// Waits until `node` has started (answers its health check; a Redis node
/// answers `PING`); fails early if its process exits.
pub fn wait_healthy(
    config: &ClusterConfig,
    node: Node,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let deadline = std::time::Instant::now() + timeout;
    let mut gone_checks = 0;
    loop {
        let health = health::started(config, node);
        if health == Health::Healthy {
            return Ok(());
        }
        gone_checks = if running_pid(config, node).is_none() {
            gone_checks + 1
        } else {
            0
        };
        if std::time::Instant::now() >= deadline || gone_checks >= 10 {
            return Err(ClusterError::Unhealthy {
                node,
                seconds: timeout.as_secs(),
                detail: if gone_checks > 0 {
                    format!("the process exited ({health})")
                } else {
                    health.to_string()
                },
                log: config.log_file(node).display().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_and_wait(
    config: &ClusterConfig,
    binaries: &ClusterBinaries,
    nodes: &[Node],
    customize: &mut dyn FnMut(&mut Command),
) -> Result<bool, ClusterError> {
    let mut started = false;
    for node in nodes {
        started |= ensure_started(config, binaries, *node, customize)?;
    }
    for node in nodes {
        wait_healthy(config, *node, start_timeout(*node))?;
    }
    Ok(started)
}

fn of_kind(config: &ClusterConfig, kinds: &[NodeKind]) -> Vec<Node> {
    config
        .nodes()
        .into_iter()
        .filter(|n| kinds.contains(&n.kind))
        .collect()
}

/// Stops nodes of `kind` with an index at or past `keep` (left from a
/// larger cluster).
fn stop_extra(config: &ClusterConfig, kind: NodeKind, keep: usize) -> Result<(), ClusterError> {
    for index in keep..layout::MAX_APP_NODES {
        process::stop(config, Node::new(kind, index), Duration::from_secs(20))?;
    }
    Ok(())
}

/// Starts every node that is not running and waits until all are healthy;
/// forms the Redis Cluster and creates the ClickHouse schema if not done
/// yet. Idempotent. `customize` may adjust each command before it is
/// spawned (the CLI puts nodes in their own process group).
///
/// The pipeline is all or nothing: if any of its processes is gone, or the
/// process count changed, every process is stopped and all are started
/// again (each resumes from the durable frontier).
pub fn up(
    config: &ClusterConfig,
    customize: &mut dyn FnMut(&mut Command),
) -> Result<Vec<NodeStatus>, ClusterError> {
    let binaries = crate::install::ensure_cluster_installed(&config.tools_dir)?;
    start_and_wait(
        config,
        &binaries,
        &of_kind(
            config,
            &[NodeKind::Nats, NodeKind::Redis, NodeKind::ZooKeeper],
        ),
        customize,
    )?;
    bootstrap::form_redis_cluster(config, &binaries)?;
    // Streams can be created only once the JetStream cluster has a leader.
    bootstrap::wait_for("a JetStream meta leader", Duration::from_secs(60), || {
        (0..layout::NATS_NODES)
            .all(|i| health::role(config, Node::new(NodeKind::Nats, i)).contains("leader"))
    })?;
    start_and_wait(
        config,
        &binaries,
        &of_kind(config, &[NodeKind::ClickHouse, NodeKind::Haproxy]),
        customize,
    )?;
    bootstrap::create_clickhouse_schema(config)?;
    if config.app.is_some() {
        let pipeline = of_kind(config, &[NodeKind::Pipeline]);
        let stale = (pipeline.len()..layout::MAX_APP_NODES)
            .any(|i| running_pid(config, Node::new(NodeKind::Pipeline, i)).is_some());
        let missing = pipeline.iter().any(|n| running_pid(config, *n).is_none());
        if stale || missing {
            // A process that lost a peer is stuck (timely's topology is
            // fixed): it is killed, which is safe at any moment (it resumes
            // from its durable frontier). A rescale of a whole, healthy
            // pipeline stops it cleanly instead.
            stop_pipeline(config, missing)?;
        }
        start_pipeline(config, &binaries, &pipeline, customize)?;
        let query = of_kind(config, &[NodeKind::Query]);
        start_and_wait(config, &binaries, &query, customize)?;
        bootstrap::set_query_slots(config, query.len())?;
        // Serving means the load balancer sends to every instance.
        bootstrap::wait_for(
            "the load balancer to see every query instance up",
            Duration::from_secs(60),
            || {
                query.iter().all(|n| {
                    health::haproxy_state(config, &n.to_string())
                        .is_some_and(|s| s.starts_with("UP"))
                })
            },
        )?;
        // Instances past the count leave the load balancer first (in
        // maintenance it sends them no new request), answer what they
        // already took, then stop.
        drain_extra_query(config, query.len());
        stop_extra(config, NodeKind::Query, query.len())?;
    }
    Ok(status(config))
}

/// How long a query instance leaving the load balancer may take to finish
/// the requests it took before it is stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until the load balancer has no request in flight on the running
/// query instances at or past `keep` (already in maintenance), for up to
/// [`DRAIN_TIMEOUT`]; past that they are stopped anyway (SIGTERM: a query
/// instance finishes its open requests before it exits).
fn drain_extra_query(config: &ClusterConfig, keep: usize) {
    let leaving: Vec<String> = (keep..layout::MAX_APP_NODES)
        .map(|i| Node::new(NodeKind::Query, i))
        .filter(|n| running_pid(config, *n).is_some())
        .map(|n| n.to_string())
        .collect();
    if leaving.is_empty() {
        return;
    }
    let drained = bootstrap::wait_for(
        "leaving query instances to finish their requests",
        DRAIN_TIMEOUT,
        || {
            leaving
                .iter()
                .all(|n| health::haproxy_current_sessions(config, n).unwrap_or(0) == 0)
        },
    );
    if let Err(e) = drained {
        tracing::warn!(error = %e, "stopping the leaving query instances anyway");
    }
}

/// Starts the pipeline's processes and waits until they are healthy and
/// stay up: a process can fail at start (say, its stream set-up timing out
/// while JetStream settles), and then the others are stuck, so the whole
/// pipeline is started again (up to three times).
fn start_pipeline(
    config: &ClusterConfig,
    binaries: &ClusterBinaries,
    pipeline: &[Node],
    customize: &mut dyn FnMut(&mut Command),
) -> Result<(), ClusterError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = start_and_wait(config, binaries, pipeline, customize);
        let stable = match &started {
            Ok(false) => true,
            Ok(true) => {
                std::thread::sleep(Duration::from_secs(3));
                pipeline.iter().all(|n| running_pid(config, *n).is_some())
            }
            Err(_) => false,
        };
        if stable {
            return Ok(());
        }
        if attempt >= 3 {
            let node = pipeline
                .first()
                .copied()
                .unwrap_or(Node::new(NodeKind::Pipeline, 0));
            return started.and(Err(ClusterError::Unhealthy {
                node,
                seconds: 3,
                detail: "a pipeline process keeps exiting after its start".into(),
                log: config.log_file(node).display().to_string(),
            }));
        }
        tracing::warn!(
            attempt,
            "a pipeline process exited at start: starting the pipeline again"
        );
        stop_pipeline(config, true)?;
    }
}

/// Stops every pipeline process (all of them, whatever the current count):
/// SIGTERM to all at once (they stop together), or with `kill` SIGKILL.
pub fn stop_pipeline(config: &ClusterConfig, kill: bool) -> Result<(), ClusterError> {
    let signal = if kill {
        nix::sys::signal::Signal::SIGKILL
    } else {
        nix::sys::signal::Signal::SIGTERM
    };
    for index in 0..layout::MAX_APP_NODES {
        process::signal(config, Node::new(NodeKind::Pipeline, index), signal);
    }
    stop_extra(config, NodeKind::Pipeline, 0)
}

/// Kills `node` with SIGKILL, as a crash would; its pid, if it ran.
pub fn kill(config: &ClusterConfig, node: Node) -> Option<u32> {
    process::kill9(config, node)
}

/// Stops every node `up` started, the insite processes first.
pub fn down(config: &ClusterConfig) -> Result<Vec<(Node, Option<u32>)>, ClusterError> {
    let mut stopped = Vec::new();
    let mut record = |node: Node, pid: Option<u32>| stopped.push((node, pid));
    for kind in [NodeKind::Query, NodeKind::Pipeline] {
        for index in 0..layout::MAX_APP_NODES {
            let node = Node::new(kind, index);
            if let Some(pid) = process::stop(config, node, Duration::from_secs(20))? {
                record(node, Some(pid));
            }
        }
    }
    let servers = ClusterConfig {
        app: None,
        ..config.clone()
    };
    for node in servers.nodes().into_iter().rev() {
        let pid = process::stop(config, node, Duration::from_secs(20))?;
        record(node, pid);
    }
    Ok(stopped)
}

/// The NATS server leading `stream`'s replicas, if one is known.
pub fn nats_stream_leader(config: &ClusterConfig, stream: &str) -> Option<Node> {
    (0..layout::NATS_NODES).find_map(|i| {
        let (status, body) = http_get(
            config.nats_monitor_port(i),
            "/jsz?accounts=true&streams=true",
        )
        .ok()?;
        if status != 200 {
            return None;
        }
        let value: serde_json::Value = serde_json::from_str(&body).ok()?;
        let accounts = value["account_details"].as_array()?;
        accounts.iter().find_map(|account| {
            account["stream_detail"].as_array()?.iter().find_map(|s| {
                (s["name"].as_str()? == stream)
                    .then(|| s["cluster"]["leader"].as_str().map(str::to_owned))
                    .flatten()
                    .and_then(|leader| Node::parse(&leader))
            })
        })
    })
}

/// The Redis nodes that are masters now (by `ROLE`).
pub fn redis_masters(config: &ClusterConfig) -> Vec<Node> {
    (0..layout::REDIS_NODES)
        .filter(|i| {
            health::redis_command(config.redis_port(*i), "ROLE").is_ok_and(|r| r.contains("master"))
        })
        .map(|i| Node::new(NodeKind::Redis, i))
        .collect()
}
