//! Each node's health check and role, asked of the node itself by its own
//! protocol: NATS `/healthz` and `/jsz` on its monitoring port, Redis
//! `PING` and `ROLE`, ZooKeeper `srvr`, ClickHouse `GET /ping`, the query
//! service `GET /readyz`, the pipeline's metrics endpoint, and the load
//! balancer's stats.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::layout::{ClusterConfig, Node, NodeKind};
use crate::server::Health;

/// How long one check may take.
const TIMEOUT: Duration = Duration::from_secs(2);

fn connect(port: u16) -> Result<TcpStream, Health> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|_| Health::Down)?;
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    Ok(stream)
}

/// Sends `request` and reads until the server closes.
fn exchange(port: u16, request: &[u8]) -> Result<String, Health> {
    let mut stream = connect(port)?;
    stream
        .write_all(request)
        .map_err(|e| Health::Unhealthy(e.to_string()))?;
    let mut buf = Vec::new();
    match stream.read_to_end(&mut buf) {
        Ok(_) => {}
        // A timeout after some bytes (a server that keeps the connection
        // open) still gives an answer.
        Err(_) if !buf.is_empty() => {}
        Err(e) => return Err(Health::Unhealthy(e.to_string())),
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `GET path` over HTTP/1.0: the status code and body.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), Health> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let answer = exchange(port, request.as_bytes())?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Health::Unhealthy(format!("not HTTP: {:?}", first_line(&answer))))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// `POST path` with `body` over HTTP/1.0: the status code and body.
pub fn http_post(port: u16, path: &str, body: &str) -> Result<(u16, String), Health> {
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = connect(port)?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(180)));
    stream
        .write_all(request.as_bytes())
        .map_err(|e| Health::Unhealthy(e.to_string()))?;
    let mut buf = Vec::new();
    stream
        .read_to_end(&mut buf)
        .map_err(|e| Health::Unhealthy(e.to_string()))?;
    let answer = String::from_utf8_lossy(&buf);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Health::Unhealthy(format!("not HTTP: {:?}", first_line(&answer))))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A Redis command (inline protocol) and its answer.
pub fn redis_command(port: u16, command: &str) -> Result<String, Health> {
    let mut stream = connect(port)?;
    stream
        .write_all(format!("{command}\r\nQUIT\r\n").as_bytes())
        .map_err(|e| Health::Unhealthy(e.to_string()))?;
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    if buf.is_empty() {
        return Err(Health::Unhealthy("no answer".into()));
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect()
}

fn http_ok(port: u16, path: &str) -> Health {
    match http_get(port, path) {
        Ok((200, _)) => Health::Healthy,
        Ok((status, body)) => Health::Unhealthy(format!("HTTP {status}: {}", first_line(&body))),
        Err(health) => health,
    }
}

/// Whether `node` answers as it should.
pub fn check(config: &ClusterConfig, node: Node) -> Health {
    match node.kind {
        NodeKind::Nats => http_ok(
            config.nats_monitor_port(node.index),
            "/healthz?js-server-only=true",
        ),
        NodeKind::Redis => match redis_command(config.redis_port(node.index), "CLUSTER INFO") {
            Ok(answer) if answer.contains("cluster_state:ok") => Health::Healthy,
            Ok(answer) => Health::Unhealthy(format!(
                "cluster {}",
                answer
                    .lines()
                    .find(|l| l.starts_with("cluster_state"))
                    .unwrap_or("state unknown")
                    .trim()
            )),
            Err(health) => health,
        },
        NodeKind::ZooKeeper => match exchange(config.zookeeper_port(), b"srvr") {
            Ok(answer) if answer.contains("Mode:") => Health::Healthy,
            Ok(answer) => Health::Unhealthy(first_line(&answer)),
            Err(health) => health,
        },
        NodeKind::ClickHouse => http_ok(config.clickhouse_http_port(node.index), "/ping"),
        NodeKind::Pipeline => http_ok(config.pipeline_metrics_port(node.index), "/metrics"),
        NodeKind::Query => http_ok(config.query_port(node.index), "/readyz"),
        NodeKind::Haproxy => http_ok(config.haproxy_stats_port(), "/stats;csv"),
    }
}

/// Whether `node` is up and serving, before the cluster-wide set-up: like
/// [`check`], except that a Redis node only has to answer `PING` (its
/// cluster is formed after every node is up).
pub fn started(config: &ClusterConfig, node: Node) -> Health {
    match node.kind {
        NodeKind::Redis => match redis_command(config.redis_port(node.index), "PING") {
            Ok(answer) if answer.starts_with("+PONG") => Health::Healthy,
            Ok(answer) => Health::Unhealthy(first_line(&answer)),
            Err(health) => health,
        },
        _ => check(config, node),
    }
}

/// What `node` does in the cluster, as far as it can tell.
pub fn role(config: &ClusterConfig, node: Node) -> String {
    match node.kind {
        NodeKind::Nats => nats_role(config, node.index),
        NodeKind::Redis => match redis_command(config.redis_port(node.index), "ROLE") {
            Ok(answer) if answer.contains("master") => "master".into(),
            Ok(answer) if answer.contains("slave") => {
                let of = answer
                    .lines()
                    .map(str::trim)
                    .skip_while(|l| *l != "slave")
                    .nth(3)
                    .map(|port| format!(" of :{}", port.trim_start_matches(':')))
                    .unwrap_or_default();
                format!("replica{of}")
            }
            _ => "-".into(),
        },
        NodeKind::ZooKeeper => match exchange(config.zookeeper_port(), b"srvr") {
            Ok(answer) => answer
                .lines()
                .find_map(|l| l.strip_prefix("Mode: "))
                .unwrap_or("-")
                .to_owned(),
            Err(_) => "-".into(),
        },
        NodeKind::ClickHouse => {
            let (shard, replica) = config.clickhouse_place(node.index);
            format!("shard {shard} replica {replica}")
        }
        NodeKind::Pipeline => format!(
            "timely process {} of {}",
            node.index, config.pipeline_processes
        ),
        NodeKind::Query => match haproxy_state(config, &node.to_string()) {
            Some(state) => format!("instance, lb: {state}"),
            None => "instance".into(),
        },
        NodeKind::Haproxy => "load balancer (query, clickhouse)".into(),
    }
}

/// The JetStream meta leader as seen by NATS server `i`, and whether it is
/// that leader.
fn nats_role(config: &ClusterConfig, i: usize) -> String {
    let Ok((200, body)) = http_get(config.nats_monitor_port(i), "/jsz") else {
        return "-".into();
    };
    let leader = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["meta_cluster"]["leader"].as_str().map(str::to_owned));
    match leader {
        Some(leader) if leader == format!("nats-{i}") => "JetStream meta leader".into(),
        Some(leader) => format!("follower (leader {leader})"),
        None => "no meta leader".into(),
    }
}

/// Sessions (requests, with keep-alive off) the load balancer has sent to
/// one of its servers since it started (`stot` in its stats).
pub fn haproxy_sessions(config: &ClusterConfig, server: &str) -> Option<u64> {
    let Ok((200, csv)) = http_get(config.haproxy_stats_port(), "/stats;csv") else {
        return None;
    };
    csv.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(',').collect();
        (fields.get(1) == Some(&server))
            .then(|| fields.get(7).and_then(|n| n.parse().ok()))
            .flatten()
    })
}

/// Requests one of the load balancer's servers is answering now (`scur`
/// in its stats).
pub fn haproxy_current_sessions(config: &ClusterConfig, server: &str) -> Option<u64> {
    let Ok((200, csv)) = http_get(config.haproxy_stats_port(), "/stats;csv") else {
        return None;
    };
    csv.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(',').collect();
        (fields.get(1) == Some(&server))
            .then(|| fields.get(4).and_then(|n| n.parse().ok()))
            .flatten()
    })
}

/// The load balancer's view of one of its servers (`UP`, `DOWN`, `MAINT`).
pub fn haproxy_state(config: &ClusterConfig, server: &str) -> Option<String> {
    let Ok((200, csv)) = http_get(config.haproxy_stats_port(), "/stats;csv") else {
        return None;
    };
    csv.lines().find_map(|line| {
        let mut fields = line.split(',');
        let (_backend, name) = (fields.next()?, fields.next()?);
        (name == server).then(|| line.split(',').nth(17).unwrap_or("?").to_owned())
    })
}
