//! The command line of every node, and the config files it reads, written
//! under the node's own folder.
//!
//! Memory is kept small on purpose (the whole cluster shares one 2-core
//! machine with its clients): ZooKeeper runs with a 128 MiB heap, each
//! ClickHouse with 64 MiB mark and uncompressed caches and 2 background
//! merge threads, each NATS server with a 64 MiB memory store, Redis with
//! no persistence (it holds nothing that cannot be rebuilt).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::layout::{
    AppSpec, ClusterConfig, Node, NodeKind, CLICKHOUSE_CLUSTER, CLICKHOUSE_REPLICAS,
    CLICKHOUSE_SHARDS, MAX_APP_NODES, NATS_NODES,
};
use super::ClusterError;
use crate::install::Binaries;
use crate::server::{clickhouse_server_xml, ClickHouseServerXml, ClickHouseSizing};

/// What else the cluster needs besides [`Binaries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBinaries {
    /// NATS, Redis and ClickHouse.
    pub servers: Binaries,
    /// `java`, which runs ZooKeeper.
    pub java: PathBuf,
    /// ZooKeeper's class path (Debian's `zookeeper` package).
    pub zookeeper_classpath: String,
    /// `haproxy`.
    pub haproxy: PathBuf,
    /// `redis-cli` (creates the Redis Cluster).
    pub redis_cli: PathBuf,
}

pub(super) fn create_dir(path: &Path) -> Result<(), ClusterError> {
    fs::create_dir_all(path)
        .map_err(|e| ClusterError::io(format!("creating {}", path.display()), e))
}

pub(super) fn write_file(path: &Path, contents: &str) -> Result<(), ClusterError> {
    fs::write(path, contents)
        .map_err(|e| ClusterError::io(format!("writing {}", path.display()), e))
}

fn absolute(path: &Path) -> Result<PathBuf, ClusterError> {
    std::path::absolute(path)
        .map_err(|e| ClusterError::io(format!("resolving {}", path.display()), e))
}

/// The command that runs `node`, writing the config files it reads.
pub fn command(
    config: &ClusterConfig,
    binaries: &ClusterBinaries,
    node: Node,
) -> Result<Command, ClusterError> {
    let dir = absolute(&config.node_dir(node))?;
    create_dir(&dir)?;
    let mut cmd = match node.kind {
        NodeKind::Nats => {
            let path = dir.join("nats.conf");
            write_file(&path, &nats_conf(config, node.index, &dir))?;
            let mut cmd = Command::new(&binaries.servers.nats);
            cmd.arg("-c").arg(path);
            cmd
        }
        NodeKind::Redis => {
            let path = dir.join("redis.conf");
            write_file(&path, &redis_conf(config, node.index, &dir))?;
            let mut cmd = Command::new(&binaries.servers.redis);
            cmd.arg(path);
            cmd
        }
        NodeKind::ZooKeeper => {
            let path = dir.join("zoo.cfg");
            create_dir(&dir.join("data"))?;
            write_file(&path, &zookeeper_conf(config, &dir))?;
            let mut cmd = Command::new(&binaries.java);
            cmd.args([
                "-Xms32m",
                "-Xmx128m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Dzookeeper.root.logger=WARN,CONSOLE",
                "-Dzookeeper.console.threshold=WARN",
                "-cp",
                &binaries.zookeeper_classpath,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ])
            .arg(path);
            cmd
        }
        NodeKind::ClickHouse => {
            let path = write_clickhouse_config(config, node.index, &dir)?;
            let mut cmd = Command::new(&binaries.servers.clickhouse);
            cmd.arg(format!("--config-file={}", path.display()));
            cmd.current_dir(&dir);
            cmd
        }
        NodeKind::Haproxy => {
            let path = dir.join("haproxy.cfg");
            write_file(&path, &haproxy_conf(config, &dir))?;
            let mut cmd = Command::new(&binaries.haproxy);
            cmd.arg("-f").arg(path).arg("-db");
            cmd
        }
        NodeKind::Pipeline => {
            let app = app(config)?;
            let mut cmd = Command::new(&app.insite);
            cmd.arg("--config")
                .arg(absolute(&app.config_file)?)
                .args(["pipeline", "run", "--process"])
                .arg(node.index.to_string())
                .arg("--hosts")
                .arg(config.pipeline_hosts())
                .arg("--metrics-addr")
                .arg(format!(
                    "127.0.0.1:{}",
                    config.pipeline_metrics_port(node.index)
                ));
            cmd.current_dir(&dir);
            cmd
        }
        NodeKind::Query => {
            let app = app(config)?;
            let mut cmd = Command::new(&app.insite);
            cmd.arg("--config")
                .arg(absolute(&app.config_file)?)
                .args(["query", "serve", "--listen"])
                .arg(format!("127.0.0.1:{}", config.query_port(node.index)));
            cmd.current_dir(&dir);
            cmd
        }
    };
    cmd.stdin(Stdio::null());
    Ok(cmd)
}

fn app(config: &ClusterConfig) -> Result<&AppSpec, ClusterError> {
    config.app.as_ref().ok_or_else(|| {
        ClusterError::Config("no insite binary given for the pipeline and query".into())
    })
}

fn nats_conf(config: &ClusterConfig, i: usize, dir: &Path) -> String {
    let routes = (0..NATS_NODES)
        .map(|j| format!("    nats://127.0.0.1:{}", config.nats_route_port(j)))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        r#"# Generated by insite: NATS server {i} of the local JetStream cluster.
server_name: nats-{i}
listen: 127.0.0.1:{client}
http: 127.0.0.1:{monitor}
max_payload: 8MB
jetstream {{
  store_dir: "{store}"
  max_memory_store: 64MB
  max_file_store: 4GB
}}
cluster {{
  name: insite
  listen: 127.0.0.1:{route}
  routes: [
{routes}
  ]
}}
"#,
        client = config.nats_client_port(i),
        monitor = config.nats_monitor_port(i),
        route = config.nats_route_port(i),
        store = dir.join("jetstream").display(),
    )
}

fn redis_conf(config: &ClusterConfig, i: usize, dir: &Path) -> String {
    format!(
        r#"# Generated by insite: Redis Cluster node {i} (no persistence: Redis
# holds nothing that cannot be rebuilt from ClickHouse and the streams).
port {port}
bind 127.0.0.1
protected-mode yes
daemonize no
dir {dir}
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 2000
cluster-replica-validity-factor 0
cluster-require-full-coverage no
cluster-allow-reads-when-down yes
save ""
appendonly no
maxmemory 256mb
maxmemory-policy volatile-lru
loglevel warning
"#,
        port = config.redis_port(i),
        dir = dir.display(),
    )
}

fn zookeeper_conf(config: &ClusterConfig, dir: &Path) -> String {
    format!(
        r#"# Generated by insite: ZooKeeper, standalone, for ClickHouse replication.
tickTime=1000
initLimit=10
syncLimit=5
dataDir={data}
clientPort={port}
clientPortAddress=127.0.0.1
maxClientCnxns=200
minSessionTimeout=2000
maxSessionTimeout=30000
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
"#,
        data = dir.join("data").display(),
        port = config.zookeeper_port(),
    )
}

/// The `remote_servers` entry of the cluster: 2 shards of 2 replicas, with
/// `internal_replication` (a `Distributed` insert writes one replica of a
/// shard; replication copies it to the other).
fn remote_servers(config: &ClusterConfig) -> String {
    let mut shards = String::new();
    for shard in 0..CLICKHOUSE_SHARDS {
        shards
            .push_str("      <shard>\n        <internal_replication>true</internal_replication>\n");
        for replica in 0..CLICKHOUSE_REPLICAS {
            let i = shard * CLICKHOUSE_REPLICAS + replica;
            shards.push_str(&format!(
                "        <replica><host>127.0.0.1</host><port>{}</port></replica>\n",
                config.clickhouse_tcp_port(i)
            ));
        }
        shards.push_str("      </shard>\n");
    }
    format!("  <remote_servers>\n    <{CLICKHOUSE_CLUSTER}>\n{shards}    </{CLICKHOUSE_CLUSTER}>\n  </remote_servers>\n")
}

fn write_clickhouse_config(
    config: &ClusterConfig,
    i: usize,
    dir: &Path,
) -> Result<PathBuf, ClusterError> {
    for sub in ["data", "tmp", "user_files", "log"] {
        create_dir(&dir.join(sub))?;
    }
    let (shard, replica) = config.clickhouse_place(i);
    let sections = format!(
        r#"  <zookeeper>
    <node><host>127.0.0.1</host><port>{zk}</port></node>
    <session_timeout_ms>6000</session_timeout_ms>
    <operation_timeout_ms>5000</operation_timeout_ms>
  </zookeeper>
  <macros>
    <shard>{shard:02}</shard>
    <replica>r{i}</replica>
  </macros>
{remote}  <distributed_ddl>
    <path>/clickhouse/task_queue/ddl</path>
  </distributed_ddl>
  <merge_tree>
    <replicated_deduplication_window>1000</replicated_deduplication_window>
    <old_parts_lifetime>{old_parts}</old_parts_lifetime>
  </merge_tree>
"#,
        old_parts = crate::server::OLD_PARTS_LIFETIME_S,
        zk = config.zookeeper_port(),
        remote = remote_servers(config),
    );
    let comment =
        format!("ClickHouse server {i} (shard {shard}, replica {replica}) of the local cluster");
    let server = clickhouse_server_xml(&ClickHouseServerXml {
        comment: &comment,
        dir,
        http_port: config.clickhouse_http_port(i),
        tcp_port: config.clickhouse_tcp_port(i),
        interserver_port: config.clickhouse_interserver_port(i),
        sizing: REPLICA_SIZING,
        sections: &sections,
    });
    let config_path = dir.join("config.xml");
    write_file(&config_path, &server)?;
    write_file(
        &dir.join("users.xml"),
        &crate::security::clickhouse_users(None, REPLICA_PROFILE),
    )?;
    Ok(config_path)
}

/// The default user's settings profile: what makes an acknowledged insert durable
/// and a read survive a replica's loss.
///
/// - `insert_distributed_sync`: an `INSERT` into a `Distributed` table
///   returns only once every shard has written its part (not when the rows
///   are queued on the receiving server);
/// - `insert_quorum_timeout`: a quorum insert (the pipeline's table writers
///   send `insert_quorum = 2` with each insert, from
///   `clickhouse.insert_quorum`: acknowledged only once both replicas of
///   the shard hold it) that cannot be met fails in 10 s instead of 10
///   minutes, with a retryable error; while a replica is down, inserts to
///   its shard fail so and the pipeline waits, its input kept in JetStream;
/// - `load_balancing = in_order`, `connect_timeout_with_failover_ms`:
///   reads go to the first healthy replica of each shard and fail over fast.
const REPLICA_PROFILE: &str = "      <max_memory_usage>1000000000</max_memory_usage>
      <background_pool_size>2</background_pool_size>
      <background_schedule_pool_size>4</background_schedule_pool_size>
      <max_threads>2</max_threads>
      <load_balancing>in_order</load_balancing>
      <connect_timeout_with_failover_ms>200</connect_timeout_with_failover_ms>
      <insert_distributed_sync>1</insert_distributed_sync>
      <insert_quorum_timeout>10000</insert_quorum_timeout>
      <distributed_ddl_task_timeout>120</distributed_ddl_task_timeout>
";

/// The limits of each of the local cluster's four replicas (smaller than
/// the single server's, four share the machine).
const REPLICA_SIZING: ClickHouseSizing = ClickHouseSizing {
    log_size_mib: 50,
    max_connections: 1024,
    max_concurrent_queries: 100,
    uncompressed_cache_bytes: 64 << 20,
    mark_cache_bytes: 64 << 20,
};

/// The load balancer: the query instances (health-checked on `/readyz`,
/// failed requests retried on another instance) and the ClickHouse servers
/// (health-checked on `/ping`). Every possible query slot is declared; the
/// ones beyond `query_instances` start disabled and are switched on and off
/// at run time through the stats socket (scale out and in without a
/// reload).
fn haproxy_conf(config: &ClusterConfig, dir: &Path) -> String {
    let mut query = String::new();
    for i in 0..MAX_APP_NODES {
        let disabled = if i < config.query_instances {
            ""
        } else {
            "disabled"
        };
        query.push_str(&format!(
            "    server query-{i} 127.0.0.1:{} check inter 500ms fall 2 rise 2 {disabled}\n",
            config.query_port(i)
        ));
    }
    let mut clickhouse = String::new();
    for i in 0..CLICKHOUSE_SHARDS * CLICKHOUSE_REPLICAS {
        clickhouse.push_str(&format!(
            "    server clickhouse-{i} 127.0.0.1:{} check inter 1s fall 2 rise 2\n",
            config.clickhouse_http_port(i)
        ));
    }
    format!(
        r#"# Generated by insite: the load balancer of the local cluster.
global
    maxconn 4096
    stats socket {sock} mode 600 level admin
    log stderr format raw local0 warning

defaults
    mode http
    log global
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 10s
    retries 3
    option redispatch 1

frontend query
    bind 127.0.0.1:{query_port}
    default_backend query

backend query
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    retry-on all-retryable-errors
    http-request disable-l7-retry if METH_POST
{query}
frontend clickhouse
    bind 127.0.0.1:{ch_port}
    timeout client 120s
    default_backend clickhouse

backend clickhouse
    balance leastconn
    timeout server 120s
    option httpchk GET /ping
    http-check expect status 200
    retry-on conn-failure empty-response response-timeout
{clickhouse}
frontend stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
    stats refresh 5s
"#,
        sock = dir.join("admin.sock").display(),
        query_port = config.haproxy_query_port(),
        ch_port = config.haproxy_clickhouse_port(),
        stats_port = config.haproxy_stats_port(),
    )
}

/// The load balancer's admin socket.
pub fn haproxy_socket(config: &ClusterConfig) -> PathBuf {
    config
        .node_dir(Node::new(NodeKind::Haproxy, 0))
        .join("admin.sock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clickhouse_server_knows_both_shards_and_its_own_place() {
        let config = ClusterConfig::new("/tmp/x", "/tmp/t");
        let remote = remote_servers(&config);
        assert_eq!(remote.matches("<shard>").count(), 2);
        assert_eq!(remote.matches("<replica>").count(), 4);
        let dir = tempfile::tempdir().unwrap();
        let path = write_clickhouse_config(&config, 3, dir.path()).unwrap();
        let text = fs::read_to_string(path).unwrap();
        assert!(text.contains("<shard>02</shard>"), "{text}");
        assert!(text.contains("<replica>r3</replica>"));
        assert!(text.contains("<zookeeper>") && text.contains("<max_connections>1024<"));
        let users = fs::read_to_string(dir.path().join("users.xml")).unwrap();
        assert!(users.contains("<insert_distributed_sync>1</insert_distributed_sync>"));
        assert!(users.contains("<password></password>"), "{users}");
    }

    #[test]
    fn the_load_balancer_declares_every_query_slot() {
        let config = ClusterConfig::new("/tmp/x", "/tmp/t");
        let text = haproxy_conf(&config, Path::new("/tmp/x/haproxy"));
        assert_eq!(text.matches("server query-").count(), MAX_APP_NODES);
        assert_eq!(text.matches(" disabled\n").count(), MAX_APP_NODES - 2);
        assert!(text.contains("GET /readyz"));
    }
}
