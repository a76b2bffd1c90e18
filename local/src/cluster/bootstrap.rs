//! One-time set-up of a cluster once its servers run, each step skipped
//! when already done: forming the Redis Cluster (`redis-cli --cluster
//! create`), creating insite's replicated and distributed ClickHouse tables
//! (`deploy/k8s/clickhouse/cluster-schema.sql`, the schema the Kubernetes
//! deployment applies), and switching the load balancer's query slots on and
//! off through its admin socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use super::configs::{haproxy_socket, ClusterBinaries};
use super::health::{http_post, redis_command};
use super::layout::{ClusterConfig, MAX_APP_NODES, REDIS_NODES};
use super::ClusterError;

/// The cluster schema: every table `T` as `T_local`
/// (`Replicated*MergeTree`, per shard) and `T` (`Distributed`, by symbol),
/// with the migrations recorded as applied.
pub const CLUSTER_SCHEMA: &str = include_str!("../../../deploy/k8s/clickhouse/cluster-schema.sql");

/// Forms the Redis Cluster (3 masters, one replica each) unless node 0
/// already knows the others, then waits until every node reports
/// `cluster_state:ok`.
pub fn form_redis_cluster(
    config: &ClusterConfig,
    binaries: &ClusterBinaries,
) -> Result<(), ClusterError> {
    let known = redis_command(config.redis_port(0), "CLUSTER INFO")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.trim().strip_prefix("cluster_known_nodes:"))
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or(0);
    if known < REDIS_NODES {
        let mut cmd = Command::new(&binaries.redis_cli);
        cmd.arg("--cluster").arg("create");
        for i in 0..REDIS_NODES {
            cmd.arg(format!("127.0.0.1:{}", config.redis_port(i)));
        }
        cmd.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let output = cmd
            .output()
            .map_err(|e| ClusterError::io("running redis-cli --cluster create", e))?;
        if !output.status.success() {
            return Err(ClusterError::Bootstrap(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )));
        }
        tracing::info!("Redis Cluster formed");
    }
    wait_for(
        "Redis Cluster state ok on every node",
        Duration::from_secs(60),
        || {
            (0..REDIS_NODES).all(|i| {
                redis_command(config.redis_port(i), "CLUSTER INFO")
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            })
        },
    )
}

/// Runs one statement on ClickHouse server 0.
fn clickhouse(config: &ClusterConfig, statement: &str) -> Result<String, ClusterError> {
    match http_post(config.clickhouse_http_port(0), "/", statement) {
        Ok((200, body)) => Ok(body),
        Ok((status, body)) => Err(ClusterError::Bootstrap(format!(
            "ClickHouse answered {status} to `{}`: {}",
            statement.chars().take(80).collect::<String>(),
            body.trim()
        ))),
        Err(health) => Err(ClusterError::Bootstrap(format!("ClickHouse: {health}"))),
    }
}

/// Creates the cluster schema unless its migrations are recorded already.
pub fn create_clickhouse_schema(config: &ClusterConfig) -> Result<(), ClusterError> {
    let recorded = clickhouse(
        config,
        "SELECT count() FROM system.tables WHERE database = 'insite' AND name = 'schema_migrations'",
    )?;
    if recorded.trim() == "1" {
        let rows = clickhouse(config, "SELECT count() FROM insite.schema_migrations")?;
        if rows.trim() != "0" {
            return Ok(());
        }
    }
    for statement in CLUSTER_SCHEMA.split(";\n") {
        let statement: String = statement
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        if statement.trim().is_empty() {
            continue;
        }
        clickhouse(config, &statement)?;
    }
    tracing::info!("ClickHouse cluster schema created");
    Ok(())
}

/// Sends one command to the load balancer's admin socket.
pub fn haproxy_command(config: &ClusterConfig, command: &str) -> Result<String, ClusterError> {
    let path = haproxy_socket(config);
    let mut stream = UnixStream::connect(&path)
        .map_err(|e| ClusterError::io(format!("connecting to {}", path.display()), e))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(|e| ClusterError::io("writing to the haproxy socket", e))?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    Ok(answer)
}

/// Puts query slots `0..count` in service and the others in maintenance.
pub fn set_query_slots(config: &ClusterConfig, count: usize) -> Result<(), ClusterError> {
    for i in 0..MAX_APP_NODES {
        let state = if i < count { "ready" } else { "maint" };
        haproxy_command(config, &format!("set server query/query-{i} state {state}"))?;
    }
    Ok(())
}

/// Polls `done` every 200 ms until it holds or `timeout` passes.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return Err(ClusterError::Bootstrap(format!(
                "timed out after {} s waiting for {what}",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
