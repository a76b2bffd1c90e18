//! The shape of the local cluster: which nodes it has, and the loopback
//! ports and folders of each.
//!
//! Ports are `base_port` plus a fixed offset per role (base 20000 by
//! default), so one cluster's ports never move between runs and `status` or
//! `down` find the same nodes `up` started:
//!
//! | node | ports (offset from `base_port`) |
//! |---|---|
//! | `nats-i` (3) | client `1+i`, routes `11+i`, monitoring `21+i` |
//! | `redis-i` (6) | `101+i` (cluster bus: that plus 10000) |
//! | `zookeeper` | `201` |
//! | `clickhouse-i` (4) | HTTP `301+i`, native `311+i`, interserver `321+i` |
//! | `haproxy` | query `401`, ClickHouse `402`, stats `403` |
//! | `query-i` (up to 8) | `411+i` |
//! | `pipeline-i` (up to 8) | timely `501+i`, metrics `511+i` |

use std::fmt;
use std::path::PathBuf;

/// NATS servers in the JetStream cluster.
pub const NATS_NODES: usize = 3;
/// Redis Cluster nodes: 3 masters, each with one replica.
pub const REDIS_NODES: usize = 6;
/// ClickHouse shards.
pub const CLICKHOUSE_SHARDS: usize = 2;
/// ClickHouse replicas per shard.
pub const CLICKHOUSE_REPLICAS: usize = 2;
/// The most query instances or pipeline processes the port plan has room
/// for (and the number of server slots in the load balancer).
pub const MAX_APP_NODES: usize = 8;
/// The ClickHouse cluster's name in `remote_servers` (what `Distributed`
/// tables and `ON CLUSTER` name).
pub const CLICKHOUSE_CLUSTER: &str = "insite";

/// The kinds of node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    /// A NATS server of the JetStream cluster.
    Nats,
    /// A Redis Cluster node.
    Redis,
    /// ZooKeeper, ClickHouse's coordination service.
    ZooKeeper,
    /// A ClickHouse server (one replica of one shard).
    ClickHouse,
    /// A timely process of the pipeline.
    Pipeline,
    /// A query service instance.
    Query,
    /// The load balancer in front of the query instances and ClickHouse.
    Haproxy,
}

impl NodeKind {
    /// A lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nats => "nats",
            Self::Redis => "redis",
            Self::ZooKeeper => "zookeeper",
            Self::ClickHouse => "clickhouse",
            Self::Pipeline => "pipeline",
            Self::Query => "query",
            Self::Haproxy => "haproxy",
        }
    }

    /// Parses [`NodeKind::name`].
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Nats,
            Self::Redis,
            Self::ZooKeeper,
            Self::ClickHouse,
            Self::Pipeline,
            Self::Query,
            Self::Haproxy,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One node: a kind and its index among the nodes of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// Its index (0 for the single ZooKeeper and load balancer).
    pub index: usize,
}

impl Node {
    /// `kind` number `index`.
    pub fn new(kind: NodeKind, index: usize) -> Self {
        Self { kind, index }
    }

    /// Parses `nats-1`, `zookeeper`, `haproxy`, ...
    pub fn parse(name: &str) -> Option<Self> {
        match name.rsplit_once('-') {
            Some((kind, index)) => Some(Self::new(NodeKind::parse(kind)?, index.parse().ok()?)),
            None => Some(Self::new(NodeKind::parse(name)?, 0)),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            NodeKind::ZooKeeper | NodeKind::Haproxy => self.kind.name().to_owned(),
            kind => format!("{kind}-{}", self.index),
        };
        f.pad(&name)
    }
}

/// The insite binary and the config file its processes run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// The `insite` executable.
    pub insite: PathBuf,
    /// The `--config` file of every pipeline process and query instance
    /// (pointing at the cluster's servers).
    pub config_file: PathBuf,
}

/// Where the cluster keeps its data, which ports it uses, and how many
/// pipeline processes and query instances it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Data, logs, pid files and generated configs (`.insite/cluster/`).
    pub root: PathBuf,
    /// Tools installed from PyPI (shared with `insite services`).
    pub tools_dir: PathBuf,
    /// The port every other port is an offset from.
    pub base_port: u16,
    /// Timely processes of the pipeline.
    pub pipeline_processes: usize,
    /// Query instances behind the load balancer.
    pub query_instances: usize,
    /// The insite processes' binary and config; `None` runs the servers
    /// only (no pipeline, no query instances).
    pub app: Option<AppSpec>,
}

impl ClusterConfig {
    /// The default shape (2 pipeline processes, 2 query instances, base
    /// port 20000) with data under `root`.
    pub fn new(root: impl Into<PathBuf>, tools_dir: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            tools_dir: tools_dir.into(),
            base_port: 20_000,
            pipeline_processes: 2,
            query_instances: 2,
            app: None,
        }
    }

    fn port(&self, offset: usize) -> u16 {
        self.base_port
            .saturating_add(u16::try_from(offset).unwrap_or(u16::MAX))
    }

    /// Every node, in start order: coordination and storage first, then the
    /// pipeline, the query instances and the load balancer.
    pub fn nodes(&self) -> Vec<Node> {
        let mut nodes = Vec::new();
        nodes.extend((0..NATS_NODES).map(|i| Node::new(NodeKind::Nats, i)));
        nodes.extend((0..REDIS_NODES).map(|i| Node::new(NodeKind::Redis, i)));
        nodes.push(Node::new(NodeKind::ZooKeeper, 0));
        nodes.extend(
            (0..CLICKHOUSE_SHARDS * CLICKHOUSE_REPLICAS)
                .map(|i| Node::new(NodeKind::ClickHouse, i)),
        );
        if self.app.is_some() {
            nodes.extend(
                (0..self.pipeline_processes.clamp(1, MAX_APP_NODES))
                    .map(|i| Node::new(NodeKind::Pipeline, i)),
            );
            nodes.extend(
                (0..self.query_instances.clamp(1, MAX_APP_NODES))
                    .map(|i| Node::new(NodeKind::Query, i)),
            );
        }
        nodes.push(Node::new(NodeKind::Haproxy, 0));
        nodes
    }

    /// The node's main port: what its health check talks to.
    pub fn main_port(&self, node: Node) -> u16 {
        match node.kind {
            NodeKind::Nats => self.nats_client_port(node.index),
            NodeKind::Redis => self.redis_port(node.index),
            NodeKind::ZooKeeper => self.zookeeper_port(),
            NodeKind::ClickHouse => self.clickhouse_http_port(node.index),
            NodeKind::Pipeline => self.pipeline_metrics_port(node.index),
            NodeKind::Query => self.query_port(node.index),
            NodeKind::Haproxy => self.haproxy_query_port(),
        }
    }

    /// NATS client port of server `i`.
    pub fn nats_client_port(&self, i: usize) -> u16 {
        self.port(1 + i)
    }

    /// NATS route (cluster) port of server `i`.
    pub fn nats_route_port(&self, i: usize) -> u16 {
        self.port(11 + i)
    }

    /// NATS monitoring port of server `i`.
    pub fn nats_monitor_port(&self, i: usize) -> u16 {
        self.port(21 + i)
    }

    /// Redis port of node `i`.
    pub fn redis_port(&self, i: usize) -> u16 {
        self.port(101 + i)
    }

    /// ZooKeeper client port.
    pub fn zookeeper_port(&self) -> u16 {
        self.port(201)
    }

    /// ClickHouse HTTP port of server `i`.
    pub fn clickhouse_http_port(&self, i: usize) -> u16 {
        self.port(301 + i)
    }

    /// ClickHouse native port of server `i`.
    pub fn clickhouse_tcp_port(&self, i: usize) -> u16 {
        self.port(311 + i)
    }

    /// ClickHouse interserver (replication) port of server `i`.
    pub fn clickhouse_interserver_port(&self, i: usize) -> u16 {
        self.port(321 + i)
    }

    /// The shard (from 1) and replica (from 1) of ClickHouse server `i`.
    pub fn clickhouse_place(&self, i: usize) -> (usize, usize) {
        (i / CLICKHOUSE_REPLICAS + 1, i % CLICKHOUSE_REPLICAS + 1)
    }

    /// The load balancer's query frontend.
    pub fn haproxy_query_port(&self) -> u16 {
        self.port(401)
    }

    /// The load balancer's ClickHouse (HTTP) frontend.
    pub fn haproxy_clickhouse_port(&self) -> u16 {
        self.port(402)
    }

    /// The load balancer's stats page (`/stats`, `;csv` for machines).
    pub fn haproxy_stats_port(&self) -> u16 {
        self.port(403)
    }

    /// Query instance `i`'s port.
    pub fn query_port(&self, i: usize) -> u16 {
        self.port(411 + i)
    }

    /// Pipeline process `i`'s timely port.
    pub fn pipeline_port(&self, i: usize) -> u16 {
        self.port(501 + i)
    }

    /// Pipeline process `i`'s metrics port.
    pub fn pipeline_metrics_port(&self, i: usize) -> u16 {
        self.port(511 + i)
    }

    /// Every NATS client URL, comma-separated (the `nats.url` of clients).
    pub fn nats_urls(&self) -> String {
        (0..NATS_NODES)
            .map(|i| format!("nats://127.0.0.1:{}", self.nats_client_port(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every Redis node URL, comma-separated (the seeds of cluster clients).
    pub fn redis_urls(&self) -> String {
        (0..REDIS_NODES)
            .map(|i| format!("redis://127.0.0.1:{}", self.redis_port(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// ClickHouse through the load balancer (any healthy server).
    pub fn clickhouse_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.haproxy_clickhouse_port())
    }

    /// ClickHouse server `i` directly.
    pub fn clickhouse_node_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.clickhouse_http_port(i))
    }

    /// The query service through the load balancer.
    pub fn query_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.haproxy_query_port())
    }

    /// `host:port` of every pipeline process (`insite pipeline run --hosts`).
    pub fn pipeline_hosts(&self) -> String {
        (0..self.pipeline_processes.clamp(1, MAX_APP_NODES))
            .map(|i| format!("127.0.0.1:{}", self.pipeline_port(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The file recording the shape of the last `up` (process and instance
    /// counts), so `status` and `down` see the same nodes.
    pub fn shape_file(&self) -> PathBuf {
        self.root.join("shape")
    }

    /// Records this shape for [`ClusterConfig::with_recorded_shape`].
    pub fn record_shape(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        std::fs::write(
            self.shape_file(),
            format!(
                "pipeline_processes={}\nquery_instances={}\n",
                self.pipeline_processes, self.query_instances
            ),
        )
    }

    /// This config with the process and instance counts of the last `up`,
    /// if one was recorded.
    pub fn with_recorded_shape(mut self) -> Self {
        if let Ok(text) = std::fs::read_to_string(self.shape_file()) {
            for line in text.lines() {
                let Some((key, value)) = line.split_once('=') else {
                    continue;
                };
                let Ok(value) = value.trim().parse::<usize>() else {
                    continue;
                };
                match key.trim() {
                    "pipeline_processes" => self.pipeline_processes = value,
                    "query_instances" => self.query_instances = value,
                    _ => {}
                }
            }
        }
        self
    }

    /// A node's own folder.
    pub fn node_dir(&self, node: Node) -> PathBuf {
        self.root.join(node.to_string())
    }

    /// A node's log file.
    pub fn log_file(&self, node: Node) -> PathBuf {
        self.root.join("logs").join(format!("{node}.log"))
    }

    /// A node's pid file.
    pub fn pid_file(&self, node: Node) -> PathBuf {
        self.root.join("run").join(format!("{node}.pid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_never_collide_and_stay_below_the_ephemeral_range() {
        let mut config = ClusterConfig::new("/tmp/x", "/tmp/t");
        config.pipeline_processes = MAX_APP_NODES;
        config.query_instances = MAX_APP_NODES;
        let mut ports = Vec::new();
        for i in 0..NATS_NODES {
            ports.extend([
                config.nats_client_port(i),
                config.nats_route_port(i),
                config.nats_monitor_port(i),
            ]);
        }
        for i in 0..REDIS_NODES {
            ports.extend([config.redis_port(i), config.redis_port(i) + 10_000]);
        }
        ports.push(config.zookeeper_port());
        for i in 0..CLICKHOUSE_SHARDS * CLICKHOUSE_REPLICAS {
            ports.extend([
                config.clickhouse_http_port(i),
                config.clickhouse_tcp_port(i),
                config.clickhouse_interserver_port(i),
            ]);
        }
        ports.extend([
            config.haproxy_query_port(),
            config.haproxy_clickhouse_port(),
            config.haproxy_stats_port(),
        ]);
        for i in 0..MAX_APP_NODES {
            ports.extend([
                config.query_port(i),
                config.pipeline_port(i),
                config.pipeline_metrics_port(i),
            ]);
        }
        let count = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), count, "two roles share a port");
        assert!(ports.iter().all(|p| *p < 32_768), "{ports:?}");
    }

    #[test]
    fn node_names_round_trip() {
        let config = ClusterConfig {
            app: Some(AppSpec {
                insite: "insite".into(),
                config_file: "c.toml".into(),
            }),
            ..ClusterConfig::new("/tmp/x", "/tmp/t")
        };
        let nodes = config.nodes();
        assert_eq!(nodes.len(), 3 + 6 + 1 + 4 + 2 + 2 + 1);
        for node in nodes {
            assert_eq!(Node::parse(&node.to_string()), Some(node), "{node}");
        }
        assert_eq!(Node::parse("redis-x"), None);
        assert_eq!(config.clickhouse_place(0), (1, 1));
        assert_eq!(config.clickhouse_place(3), (2, 2));
    }
}
