//! One local server: its command line, generated config, pid file, health
//! check and stop.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::install::Binaries;
use crate::secrets::{write_private, Secrets};
use crate::security;
use crate::{LocalConfig, LocalError, StopOutcome};

/// The servers of the local stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// NATS with JetStream.
    Nats,
    /// Redis.
    Redis,
    /// ClickHouse.
    ClickHouse,
}

impl ServerKind {
    /// All servers, in start order.
    pub const ALL: [ServerKind; 3] = [Self::Nats, Self::Redis, Self::ClickHouse];

    /// A lower-case name for files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nats => "nats",
            Self::Redis => "redis",
            Self::ClickHouse => "clickhouse",
        }
    }

    /// What the process's command line contains (guards against a recycled
    /// pid).
    fn process_marker(self) -> &'static str {
        match self {
            Self::Nats => "nats-server",
            Self::Redis => "redis-server",
            Self::ClickHouse => "clickhouse",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A health check's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// It answers as it should.
    Healthy,
    /// It is listening but answers wrongly, or not at all.
    Unhealthy(String),
    /// Nothing listens.
    Down,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Healthy => f.write_str("healthy"),
            Self::Unhealthy(why) => write!(f, "unhealthy: {why}"),
            Self::Down => f.write_str("down"),
        }
    }
}

/// One server's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// Which server.
    pub kind: ServerKind,
    /// Where clients reach it.
    pub url: String,
    /// The pid of the process we started, if it is still running.
    pub pid: Option<u32>,
    /// Its health.
    pub health: Health,
}

impl fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pid = self
            .pid
            .map(|p| format!("pid {p}"))
            .unwrap_or_else(|| "no pid".into());
        write!(
            f,
            "{:<10} {:<28} {:<10} {}",
            self.kind, self.url, pid, self.health
        )
    }
}

fn pid_file(config: &LocalConfig, kind: ServerKind) -> PathBuf {
    config.dir("run").join(format!("{kind}.pid"))
}

/// The log file of a server.
pub fn log_file(config: &LocalConfig, kind: ServerKind) -> PathBuf {
    config.dir("logs").join(format!("{kind}.log"))
}

fn url(config: &LocalConfig, kind: ServerKind) -> String {
    match kind {
        ServerKind::Nats => config.nats_url(),
        ServerKind::Redis => config.redis_url(),
        ServerKind::ClickHouse => config.clickhouse_url(),
    }
}

fn port(config: &LocalConfig, kind: ServerKind) -> u16 {
    match kind {
        ServerKind::Nats => config.nats_port,
        ServerKind::Redis => config.redis_port,
        ServerKind::ClickHouse => config.clickhouse_http_port,
    }
}

fn create_dir(path: &Path) -> Result<(), LocalError> {
    fs::create_dir_all(path).map_err(|e| LocalError::io(format!("creating {}", path.display()), e))
}

fn write_file(path: &Path, contents: &str) -> Result<(), LocalError> {
    fs::write(path, contents).map_err(|e| LocalError::io(format!("writing {}", path.display()), e))
}

/// The command line that runs `kind`, writing any config file it needs.
pub fn command(
    config: &LocalConfig,
    binaries: &Binaries,
    kind: ServerKind,
) -> Result<Command, LocalError> {
    let data = config.dir(kind.name());
    create_dir(&data)?;
    let secrets = config.secrets()?;
    let mut cmd = match kind {
        ServerKind::Nats => {
            let mut cmd = Command::new(&binaries.nats);
            if let Some(secrets) = &secrets {
                let path = config.dir("conf").join("nats.conf");
                write_private(&path, &security::nats_config(secrets, &config.security))?;
                cmd.arg("-c").arg(path);
            }
            cmd.args(["-js", "-a", "127.0.0.1", "-p"])
                .arg(config.nats_port.to_string())
                .arg("-sd")
                .arg(&data);
            cmd
        }
        ServerKind::Redis => {
            let mut cmd = Command::new(&binaries.redis);
            cmd.args([
                "--port",
                &config.redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
            ])
            .arg(&data)
            .args([
                "--daemonize",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--maxmemory-policy",
                "volatile-lru",
                "--loglevel",
                "warning",
            ]);
            if let Some(secrets) = &secrets {
                // Absolute: Redis resolves it against its --dir.
                let path = config.dir("conf").join("redis.acl");
                let path = std::path::absolute(&path)
                    .map_err(|e| LocalError::io(format!("resolving {}", path.display()), e))?;
                write_private(&path, &security::redis_acl(secrets, &config.security))?;
                cmd.arg("--aclfile").arg(path);
            }
            cmd
        }
        ServerKind::ClickHouse => {
            let config_path = write_clickhouse_config(config, &data, secrets.as_ref())?;
            let mut cmd = Command::new(&binaries.clickhouse);
            cmd.arg(format!("--config-file={}", config_path.display()));
            cmd.current_dir(&data);
            cmd
        }
    };
    cmd.stdin(Stdio::null());
    Ok(cmd)
}

/// Seconds a part replaced by a merge stays on disk before it is removed
/// (ClickHouse's `old_parts_lifetime`, 480 by default).
///
/// Every `INSERT` makes a part and merges keep replacing parts with bigger
/// ones; the replaced parts stay on disk for this long, in case the server
/// restarts before the merged part's pages reach the disk. At one insert per
/// table per second, 480 s kept thousands of small parts (18.16 writes two
/// files per column for each) and several times the live data on disk. A
/// minute is still twice the kernel's writeback delay (`vm.dirty_expire_centisecs`,
/// 30 s by default), after which a merged part is on disk.
pub const OLD_PARTS_LIFETIME_S: u32 = 60;

/// The `<merge_tree>` section of a generated ClickHouse config: MergeTree
/// settings for every table of the server (see [`OLD_PARTS_LIFETIME_S`]).
pub fn merge_tree_settings() -> String {
    format!(
        "  <merge_tree>\n    <old_parts_lifetime>{OLD_PARTS_LIFETIME_S}</old_parts_lifetime>\n  </merge_tree>\n"
    )
}

/// The limits and cache sizes of a generated ClickHouse server config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClickHouseSizing {
    /// Size of each server log file before rotation, MiB.
    pub log_size_mib: u32,
    /// `max_connections`.
    pub max_connections: u32,
    /// `max_concurrent_queries`.
    pub max_concurrent_queries: u32,
    /// `uncompressed_cache_size`, bytes.
    pub uncompressed_cache_bytes: u64,
    /// `mark_cache_size`, bytes.
    pub mark_cache_bytes: u64,
}

impl ClickHouseSizing {
    /// The one server of `insite services up`.
    pub const SINGLE: Self = Self {
        log_size_mib: 100,
        max_connections: 4096,
        max_concurrent_queries: 200,
        uncompressed_cache_bytes: 1 << 30,
        mark_cache_bytes: 512 << 20,
    };
}

/// What differs between the generated `config.xml` of the local server
/// and of each replica of the local cluster.
#[derive(Debug)]
pub(crate) struct ClickHouseServerXml<'a> {
    /// The config's comment line: what this server is.
    pub comment: &'a str,
    /// Its folder (data, tmp, user files, logs, users.xml).
    pub dir: &'a Path,
    /// HTTP port.
    pub http_port: u16,
    /// Native TCP port.
    pub tcp_port: u16,
    /// Interserver (replication) port.
    pub interserver_port: u16,
    /// Limits and caches.
    pub sizing: ClickHouseSizing,
    /// Further top-level sections (merge tree settings, and for a replica
    /// ZooKeeper, macros, the cluster's servers), each ending in a newline.
    pub sections: &'a str,
}

/// A ClickHouse 18.16 `config.xml`: loopback only, UTC, warnings logged
/// under the server's folder, then `sections`.
pub(crate) fn clickhouse_server_xml(x: &ClickHouseServerXml<'_>) -> String {
    let d = x.dir.display();
    let s = x.sizing;
    format!(
        r#"<?xml version="1.0"?>
<!-- Generated by insite: {comment}. -->
<yandex>
  <logger>
    <level>warning</level>
    <log>{d}/log/server.log</log>
    <errorlog>{d}/log/error.log</errorlog>
    <size>{log_size}M</size>
    <count>2</count>
  </logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <interserver_http_port>{inter}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>{max_connections}</max_connections>
  <keep_alive_timeout>10</keep_alive_timeout>
  <max_concurrent_queries>{max_queries}</max_concurrent_queries>
  <uncompressed_cache_size>{uncompressed}</uncompressed_cache_size>
  <mark_cache_size>{marks}</mark_cache_size>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
  <max_session_timeout>3600</max_session_timeout>
  <default_session_timeout>60</default_session_timeout>
{sections}</yandex>
"#,
        comment = x.comment,
        log_size = s.log_size_mib,
        http = x.http_port,
        tcp = x.tcp_port,
        inter = x.interserver_port,
        max_connections = s.max_connections,
        max_queries = s.max_concurrent_queries,
        uncompressed = s.uncompressed_cache_bytes,
        marks = s.mark_cache_bytes,
        sections = x.sections,
    )
}

fn write_clickhouse_config(
    config: &LocalConfig,
    data: &Path,
    secrets: Option<&Secrets>,
) -> Result<PathBuf, LocalError> {
    let data = &std::path::absolute(data)
        .map_err(|e| LocalError::io(format!("resolving {}", data.display()), e))?;
    for sub in ["data", "tmp", "user_files", "log"] {
        create_dir(&data.join(sub))?;
    }
    let comment = format!(
        "a ClickHouse on loopback with its data under {}",
        data.display()
    );
    let server = clickhouse_server_xml(&ClickHouseServerXml {
        comment: &comment,
        dir: data,
        http_port: config.clickhouse_http_port,
        tcp_port: config.clickhouse_tcp_port,
        interserver_port: config.clickhouse_interserver_port,
        sizing: ClickHouseSizing::SINGLE,
        sections: &merge_tree_settings(),
    });
    let users = security::clickhouse_users(secrets, security::SINGLE_SERVER_PROFILE);
    let config_path = data.join("config.xml");
    write_file(&config_path, &server)?;
    write_private(&data.join("users.xml"), &users)?;
    Ok(config_path)
}

/// Spawns `kind`, writing its pid file. `customize` may adjust the command.
pub fn start(
    config: &LocalConfig,
    binaries: &Binaries,
    kind: ServerKind,
    customize: &mut dyn FnMut(&mut Command),
) -> Result<u32, LocalError> {
    // A stale pid file (process gone) is cleared; a port held by someone
    // else is an error rather than a silent clash.
    let _ = stop(config, kind)?;
    if check_health(kind, port(config, kind)) != Health::Down {
        return Err(LocalError::PortInUse {
            kind,
            port: port(config, kind),
        });
    }
    create_dir(&config.dir("run"))?;
    create_dir(&config.dir("logs"))?;
    let log_path = log_file(config, kind);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| LocalError::io(format!("opening {}", log_path.display()), e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| LocalError::io(format!("opening {}", log_path.display()), e))?;
    let mut cmd = command(config, binaries, kind)?;
    cmd.stdout(log).stderr(log_err);
    customize(&mut cmd);
    let child = cmd
        .spawn()
        .map_err(|e| LocalError::io(format!("starting {kind} ({cmd:?})"), e))?;
    let pid = child.id();
    write_file(&pid_file(config, kind), &pid.to_string())?;
    tracing::info!(server = %kind, pid, url = %url(config, kind), "started");
    // The child is reaped by whoever outlives it; dropping the handle does
    // not stop the process.
    drop(child);
    Ok(pid)
}

/// Waits until `kind` answers its health check.
pub fn wait_healthy(
    config: &LocalConfig,
    kind: ServerKind,
    timeout: Duration,
) -> Result<(), LocalError> {
    let deadline = Instant::now() + timeout;
    // A child just spawned may not have exec'd yet (its command line is
    // still its parent's): it counts as gone only if it stays gone a while.
    let mut gone_since: Option<Instant> = None;
    loop {
        let health = check_health(kind, port(config, kind));
        if health == Health::Healthy {
            return Ok(());
        }
        let gone = running_pid(config, kind).is_none();
        let since = if gone {
            *gone_since.get_or_insert_with(Instant::now)
        } else {
            gone_since = None;
            Instant::now()
        };
        if Instant::now() >= deadline || (gone && since.elapsed() >= Duration::from_secs(1)) {
            return Err(LocalError::Unhealthy {
                kind,
                seconds: timeout.as_secs(),
                detail: if running_pid(config, kind).is_none() {
                    format!("the process exited ({health})")
                } else {
                    health.to_string()
                },
                log: log_file(config, kind).display().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pid from `kind`'s pid file, if that process still runs and is still
/// the server.
pub fn running_pid(config: &LocalConfig, kind: ServerKind) -> Option<u32> {
    live_pid_from_file(&pid_file(config, kind), |cmdline| {
        cmdline.contains(kind.process_marker())
    })
}

/// The pid in `pid_file`, if that process runs (is not a zombie: state Z
/// has exited and only waits to be reaped) and `is_ours` says its command
/// line is the one that wrote the file (a pid may have been reused).
pub(crate) fn live_pid_from_file(
    pid_file: &Path,
    is_ours: impl FnOnce(&str) -> bool,
) -> Option<u32> {
    let pid: u32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    (is_ours(&String::from_utf8_lossy(&cmdline)) && state != Some('Z')).then_some(pid)
}

/// The state of `kind`.
pub fn status(config: &LocalConfig, kind: ServerKind) -> ServerStatus {
    ServerStatus {
        kind,
        url: url(config, kind),
        pid: running_pid(config, kind),
        health: check_health(kind, port(config, kind)),
    }
}

/// Stops `kind` if this crate started it: SIGTERM, then SIGKILL after 15 s.
pub fn stop(config: &LocalConfig, kind: ServerKind) -> Result<StopOutcome, LocalError> {
    let pid_path = pid_file(config, kind);
    let Some(pid) = running_pid(config, kind) else {
        if pid_path.exists() {
            fs::remove_file(&pid_path)
                .map_err(|e| LocalError::io(format!("removing {}", pid_path.display()), e))?;
        }
        return Ok(StopOutcome::NotRunning);
    };
    let target = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    while running_pid(config, kind).is_some() {
        if Instant::now() >= deadline {
            tracing::warn!(server = %kind, pid, "did not stop on SIGTERM; sending SIGKILL");
            let _ = kill(target, Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(200));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    fs::remove_file(&pid_path)
        .map_err(|e| LocalError::io(format!("removing {}", pid_path.display()), e))?;
    tracing::info!(server = %kind, pid, "stopped");
    Ok(StopOutcome::Stopped { pid })
}

/// Asks the server on `port` whether it is healthy, by its own protocol:
/// NATS sends an `INFO` line with JetStream on, Redis answers `PING` (or,
/// secured, refuses it for want of a user), ClickHouse answers `GET /ping`
/// with `Ok.`.
pub fn check_health(kind: ServerKind, port: u16) -> Health {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = Duration::from_secs(2);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return Health::Down;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let answer = match kind {
        ServerKind::Nats => read_some(&mut stream),
        ServerKind::Redis => stream
            .write_all(b"PING\r\n")
            .map_err(|e| e.to_string())
            .and_then(|()| read_some(&mut stream)),
        ServerKind::ClickHouse => stream
            .write_all(b"GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .map_err(|e| e.to_string())
            .and_then(|()| read_to_end(&mut stream)),
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return Health::Unhealthy(e),
    };
    let healthy = match kind {
        ServerKind::Nats => answer.starts_with("INFO ") && answer.contains("\"jetstream\":true"),
        // A secured Redis answers an unauthenticated PING with NOAUTH: it
        // is up and speaking its protocol.
        ServerKind::Redis => answer.starts_with("+PONG") || answer.starts_with("-NOAUTH"),
        ServerKind::ClickHouse => {
            answer.starts_with("HTTP/1.") && answer.contains(" 200 ") && answer.ends_with("Ok.\n")
        }
    };
    if healthy {
        Health::Healthy
    } else {
        let first_line = answer
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(120)
            .collect::<String>();
        Health::Unhealthy(format!("unexpected answer {first_line:?}"))
    }
}

fn read_some(stream: &mut TcpStream) -> Result<String, String> {
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn read_to_end(stream: &mut TcpStream) -> Result<String, String> {
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_config_keeps_replaced_parts_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let config = LocalConfig::new(dir.path());
        let path = write_clickhouse_config(&config, &dir.path().join("clickhouse"), None).unwrap();
        let xml = fs::read_to_string(path).unwrap();
        let section = xml
            .split_once("<merge_tree>")
            .and_then(|(_, rest)| rest.split_once("</merge_tree>"))
            .map(|(inside, _)| inside.to_owned())
            .unwrap();
        assert!(
            section.contains(&format!(
                "<old_parts_lifetime>{OLD_PARTS_LIFETIME_S}</old_parts_lifetime>"
            )),
            "{section}"
        );
        assert!(xml.trim_end().ends_with("</yandex>"));
    }

    #[test]
    fn nothing_listening_is_down() {
        let port = crate::free_ports(1).unwrap()[0];
        assert_eq!(check_health(ServerKind::Redis, port), Health::Down);
    }

    #[test]
    fn wrong_protocol_is_unhealthy() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"HELLO\r\n").unwrap();
        });
        let health = check_health(ServerKind::Nats, port);
        server.join().unwrap();
        assert!(matches!(health, Health::Unhealthy(_)), "{health:?}");
    }

    #[test]
    fn stale_pid_files_are_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let config = LocalConfig::new(dir.path());
        fs::create_dir_all(config.dir("run")).unwrap();
        // Our own pid is alive but is not a server.
        fs::write(
            pid_file(&config, ServerKind::Redis),
            std::process::id().to_string(),
        )
        .unwrap();
        assert_eq!(running_pid(&config, ServerKind::Redis), None);
        assert_eq!(
            stop(&config, ServerKind::Redis).unwrap(),
            StopOutcome::NotRunning
        );
        assert!(!pid_file(&config, ServerKind::Redis).exists());
    }
}
