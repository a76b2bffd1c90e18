//! # insite-testkit
//!
//! The test kit of insite: everything tests share lives here, so that test
//! modules import only from this crate and nothing is written twice. The
//! integration tests themselves are one binary, `testkit/tests/it/`; the
//! process-level tests of the `insite` binary (`cli/tests/`) use the kit as
//! a dev-dependency.
//!
//! The first test in a process that asks for
//! [`servers`] starts a real NATS (with JetStream), Redis and ClickHouse on
//! random free loopback ports, with their data in a fresh folder under
//! `target/insite-test/`; every later test in that process shares them. The
//! servers die with the test process (Linux's parent-death signal), so a
//! crashed or interrupted run leaves nothing running; the next run removes
//! the data folders of dead runs.
//!
//! Each test takes a [`TestEnv`]: its own JetStream stream names and subject
//! prefix, its own ClickHouse database (and any more it asks for with
//! [`TestEnv::with_database`]) and its own Redis key prefix, all removed
//! again when the `TestEnv` is dropped.
//!
//! The servers are secured as `insite services up` secures them (users,
//! NATS subject permissions, Redis ACL, ClickHouse read-only users; see
//! `insite_local::security`), with every rule also under each test's own
//! prefixes. A `TestEnv`'s `connections` are the admin's, for arranging and
//! checking; [`TestEnv::connections_as`] gives a [`Role`]'s users, and the
//! query service and pipeline the kit starts ([`service`], [`child`]) run as
//! their roles.
//!
//! To run against servers that are already up (say `insite services up`),
//! set `INSITE_TEST_NATS_URL`, `INSITE_TEST_REDIS_URL` and
//! `INSITE_TEST_CLICKHOUSE_URL` (and `INSITE_TEST_SECRETS` to their
//! `secrets.toml` when they are secured); the isolation per test is the
//! same.
//!
//! ## Layout
//! - [`servers`]: start or reuse the servers; [`Servers::stop`] and
//!   [`Servers::restart`] for outage tests.
//! - [`TestEnv`]: one test's isolated names and clients.
//! - [`fixtures`]: value builders (one bar builder, [`fixtures::bar`]) and
//!   the recorded input files.
//! - [`wait`]: [`wait::eventually`], the one polling loop.
//! - [`service`]: the query service and the pipeline started in the test
//!   process.
//! - [`pipeline`]: the pipeline's input (recorded files, a synthetic
//!   backlog), settings for a quick run, a run until durable.
//! - [`child`]: `insite` as a child process: its config file, starting and
//!   terminating it.
//! - [`jetstream`]: a stream's messages and events read back.
//! - [`logs`]: the `warn` and `error` lines insite logged, for tests of
//!   refusals.
//! - [`results`]: the result tables read back and compared.
//! - [`clients`]: real API clients from PyPI (the vendor's Python client,
//!   schemathesis) in a virtualenv, and the scripts that drive them.
//! - [`faults`]: the node-loss fault suite on the local cluster
//!   (`insite_local::cluster`), with its [`faults::Report`].

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

pub mod child;
pub mod clients;
pub mod faults;
pub mod fixtures;
pub mod jetstream;
pub mod logs;
pub mod pipeline;
pub mod results;
pub mod service;
pub mod wait;

use insite_local::server::{self, ServerKind};
use insite_local::{LocalConfig, Role, Secrets, Security};
use insite_schemas::config::{
    ClickHouseConfig, Connections, NatsConfig, RedisConfig, StreamsConfig,
};

/// Where the shared servers are.
#[derive(Debug, Clone)]
pub struct Servers {
    /// NATS URL.
    pub nats_url: String,
    /// Redis URL.
    pub redis_url: String,
    /// ClickHouse HTTP URL.
    pub clickhouse_url: String,
    /// The local config they were started with (`None` for external servers).
    pub local: Option<LocalConfig>,
    /// The passwords of every user (`None`: servers without users, given by
    /// `INSITE_TEST_*_URL` without `INSITE_TEST_SECRETS`).
    pub secrets: Option<Secrets>,
}

impl Servers {
    /// The local config of servers this process started.
    ///
    /// # Panics
    /// For servers that were already up (`INSITE_TEST_*_URL`): only the
    /// harness's own servers may be stopped and started.
    fn own(&self) -> &LocalConfig {
        self.local
            .as_ref()
            .expect("only the harness's own servers can be stopped and started")
    }

    /// Stops the server `kind` (an outage).
    ///
    /// # Panics
    /// If it cannot be stopped, or the servers are not this process's own.
    pub fn stop(&self, kind: ServerKind) {
        server::stop(self.own(), kind).expect("stopping a test server");
    }

    /// Starts the server `kind` again after [`Servers::stop`] and waits
    /// until it is healthy; it dies with the test process like the others.
    ///
    /// # Panics
    /// If it does not start and become healthy within a minute.
    pub fn restart(&self, kind: ServerKind) {
        let local = self.own().clone();
        let binaries = insite_local::ensure_installed(&local.tools_dir).expect("server binaries");
        // As in `start_own_servers`: spawned from a thread that lives as
        // long as the process, for the parent-death signal.
        let (done_tx, done_rx) = mpsc::channel();
        let starter_config = local.clone();
        std::thread::Builder::new()
            .name("insite-test-restart".into())
            .spawn(move || {
                let result = server::start(&starter_config, &binaries, kind, &mut die_with_parent);
                let _ = done_tx.send(result);
                loop {
                    std::thread::park();
                }
            })
            .expect("spawning the server keeper thread");
        done_rx
            .recv()
            .expect("server keeper thread ended")
            .expect("restarting a test server");
        server::wait_healthy(&local, kind, Duration::from_secs(60))
            .expect("the restarted test server is healthy");
    }
}

/// The workspace root (this crate lives in `testkit/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The shared servers, started on first use.
///
/// # Panics
/// If a server cannot be installed or started: no test can run without them.
pub fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        init_tracing();
        if let (Ok(nats_url), Ok(redis_url), Ok(clickhouse_url)) = (
            std::env::var("INSITE_TEST_NATS_URL"),
            std::env::var("INSITE_TEST_REDIS_URL"),
            std::env::var("INSITE_TEST_CLICKHOUSE_URL"),
        ) {
            // Secured external servers: their secrets file (as written by
            // `insite services up`).
            let secrets = std::env::var("INSITE_TEST_SECRETS").ok().map(|path| {
                Secrets::load(std::path::Path::new(&path))
                    .unwrap_or_else(|e| panic!("INSITE_TEST_SECRETS: {e}"))
            });
            return Servers {
                nats_url,
                redis_url,
                clickhouse_url,
                local: None,
                secrets,
            };
        }
        start_own_servers()
    })
}

fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let printed = tracing_subscriber::fmt::layer()
        .with_test_writer()
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_env("INSITE_TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        );
    let _ = tracing_subscriber::registry()
        .with(printed)
        .with(logs::CaptureLayer)
        .try_init();
}

fn start_own_servers() -> Servers {
    let base = workspace_root().join("target").join("insite-test");
    remove_dead_runs(&base);
    let root = base.join(std::process::id().to_string());
    let tools = insite_local::default_root(&workspace_root()).join("tools");
    let mut config = LocalConfig::with_free_ports(&root, tools).expect("reserving free ports");
    // Secured as `insite services up` is, with every rule also under each
    // test's own subject and key prefixes.
    config.security = Security::SecuredForTests;
    // The servers get the parent-death signal when the thread that spawned
    // them ends, so they are spawned from a thread that lives as long as the
    // process: they die with the test process, however it ends.
    let (done_tx, done_rx) = mpsc::channel();
    let keeper_config = config.clone();
    std::thread::Builder::new()
        .name("insite-test-servers".into())
        .spawn(move || {
            let result = insite_local::up(&keeper_config, &mut die_with_parent);
            let _ = done_tx.send(result);
            loop {
                std::thread::park();
            }
        })
        .expect("spawning the server keeper thread");
    let statuses = done_rx
        .recv()
        .expect("server keeper thread ended")
        .unwrap_or_else(|e| panic!("starting test servers under {}: {e}", root.display()));
    tracing::info!(?statuses, "test servers up");
    let secrets = config.secrets().expect("the test servers' secrets");
    Servers {
        nats_url: config.nats_url(),
        redis_url: config.redis_url(),
        clickhouse_url: config.clickhouse_url(),
        local: Some(config),
        secrets,
    }
}

/// Makes the spawned server receive SIGKILL when its parent thread ends.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl(2), which is async-signal-safe, and reads no shared state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Removes the data folders of earlier test runs whose process is gone.
fn remove_dead_runs(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            // The test process is gone; should any of its servers have
            // outlived it (a parent-death signal lost to a server that
            // re-parents itself), stop them before removing their data.
            match insite_local::down(&LocalConfig::new(entry.path())) {
                Ok(stopped) => {
                    for (kind, outcome) in stopped {
                        if let insite_local::StopOutcome::Stopped { pid: server } = outcome {
                            tracing::warn!(%kind, server, run = pid, "stopped a server left by a dead test run");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, run = pid, "sweeping a dead test run"),
            }
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `connections` with `role`'s users and passwords on the shared servers
/// (servers `role` has no user on get none, as a component of that role
/// would). Unchanged when the servers have no users.
pub fn as_role(connections: &Connections, role: Role) -> Connections {
    let Some(secrets) = &servers().secrets else {
        return connections.clone();
    };
    let mut c = connections.clone();
    let nats = secrets.nats(role);
    c.nats.user = Some(nats.user);
    c.nats.password = Some(nats.password);
    match secrets.clickhouse(role) {
        Some(ch) => {
            c.clickhouse.user = ch.user;
            c.clickhouse.password = ch.password;
        }
        None => {
            c.clickhouse.user = "default".into();
            c.clickhouse.password = String::new();
        }
    }
    let redis = secrets.redis(role);
    c.redis.user = redis.as_ref().map(|r| r.user.clone());
    c.redis.password = redis.map(|r| r.password);
    c
}

/// Stream settings of a test: the defaults with small byte limits.
/// JetStream reserves every stream's `max_bytes` on the shared server up
/// front, and the harness's NATS can reserve only 75 % of the disk that was
/// free when it started; no test stores more than some MB.
fn test_streams() -> StreamsConfig {
    StreamsConfig {
        raw_max_bytes: 128 << 20,
        derived_max_bytes: 32 << 20,
        dlq_max_bytes: 8 << 20,
        ..StreamsConfig::default()
    }
}

/// One test's isolated slice of the shared servers.
#[derive(Debug)]
pub struct TestEnv {
    /// A short unique id (`[a-z0-9_]`), used in every name below.
    pub id: String,
    /// The shared servers under this test's own names: stream names and
    /// subject prefix, database and key prefix unique to this test.
    pub connections: Connections,
    /// More databases of this test ([`TestEnv::with_database`]), removed
    /// with the rest.
    databases: Mutex<Vec<String>>,
}

impl TestEnv {
    /// A fresh environment for the test `name`.
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let servers = servers();
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(24)
            .collect();
        let id = format!(
            "{clean}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let base = Connections {
            nats: NatsConfig {
                url: servers.nats_url.clone(),
                streams: test_streams(),
                ..NatsConfig::default()
            },
            clickhouse: ClickHouseConfig {
                url: servers.clickhouse_url.clone(),
                ..ClickHouseConfig::default()
            },
            redis: RedisConfig {
                url: servers.redis_url.clone(),
                ..RedisConfig::default()
            },
        };
        Self {
            connections: as_role(&base.isolated(&format!("t_{id}")), Role::Admin),
            id,
            databases: Mutex::new(Vec::new()),
        }
    }

    /// This test's connections as `role`'s users (see [`as_role`]): what a
    /// component of that role is given.
    pub fn connections_as(&self, role: Role) -> Connections {
        as_role(&self.connections, role)
    }

    /// This test's connections with the results in a ClickHouse database of
    /// their own, `<database>_<suffix>` (say a reference run's), removed with
    /// the rest.
    pub fn with_database(&self, suffix: &str) -> Connections {
        let mut connections = self.connections.clone();
        connections.clickhouse.database =
            format!("{}_{suffix}", self.connections.clickhouse.database);
        self.databases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(connections.clickhouse.database.clone());
        connections
    }

    /// A NATS client (as this environment's user, the admin by default).
    pub async fn nats(&self) -> async_nats::Client {
        insite_sinks::nats::connect(&self.connections.nats, "insite-test")
            .await
            .expect("connecting to NATS")
    }

    /// A core NATS subscription to `subject` (give it with this test's
    /// prefix) that the server has registered. `Client::flush` only empties
    /// the client's buffer; a request answered on the same connection makes
    /// sure that what other connections publish from now on reaches it.
    pub async fn subscribe(&self, subject: String) -> async_nats::Subscriber {
        let client = self.nats().await;
        let subscriber = client.subscribe(subject).await.expect("subscribing");
        async_nats::jetstream::new(client)
            .query_account()
            .await
            .expect("a round trip to NATS");
        subscriber
    }

    /// A JetStream context.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.nats().await)
    }

    /// This test's streams created and its database migrated, as every
    /// stage does at start-up; a JetStream context on them.
    pub async fn prepared(&self) -> async_nats::jetstream::Context {
        let js = self.jetstream().await;
        insite_sinks::streams::ensure_streams(&js, &self.connections.nats.streams)
            .await
            .expect("creating the test's streams");
        insite_sinks::clickhouse::migrate(&self.connections.clickhouse)
            .await
            .expect("migrating the test's database");
        js
    }

    /// The state of the durable consumer `durable` of `stream`, or `None`
    /// while either does not exist.
    pub async fn consumer_info(
        &self,
        stream: &str,
        durable: &str,
    ) -> Option<async_nats::jetstream::consumer::Info> {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = self
            .jetstream()
            .await
            .get_stream(stream)
            .await
            .ok()?
            .get_consumer(durable)
            .await
            .ok()?;
        consumer.info().await.ok().cloned()
    }

    /// A ClickHouse client on this test's database (which may not exist
    /// until migrations run).
    pub fn clickhouse(&self) -> clickhouse::Client {
        insite_sinks::clickhouse::connect(&self.connections.clickhouse)
    }

    /// A Redis connection (as this environment's user, the admin by
    /// default).
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        insite_sinks::redis_conn::client(&self.connections.redis)
            .expect("parsing the Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connecting to Redis")
    }

    /// Removes this test's streams, databases and keys.
    pub async fn cleanup(&self) {
        let c = &self.connections;
        cleanup(&c.nats, &c.clickhouse, &self.databases(), &c.redis).await;
    }

    /// The names of every database of this test.
    fn databases(&self) -> Vec<String> {
        let mut all = vec![self.connections.clickhouse.database.clone()];
        all.extend(
            self.databases
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .cloned(),
        );
        all
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime: clean up on a
        // thread of its own with a runtime of its own.
        let Connections {
            nats,
            clickhouse,
            redis,
        } = self.connections.clone();
        let databases = self.databases();
        let cleaner = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(20),
                        cleanup(&nats, &clickhouse, &databases, &redis),
                    )
                    .await;
                });
            }
        });
        let _ = cleaner.join();
    }
}

async fn cleanup(
    nats: &NatsConfig,
    clickhouse: &ClickHouseConfig,
    databases: &[String],
    redis_config: &RedisConfig,
) {
    if let Ok(client) = insite_sinks::nats::connect(nats, "insite-test-cleanup").await {
        let js = async_nats::jetstream::new(client);
        let s = &nats.streams;
        for name in [&s.market, &s.social, &s.derived, &s.dlq] {
            let _ = js.delete_stream(name).await;
        }
    }
    let admin = insite_sinks::clickhouse::client_without_database(clickhouse);
    for database in databases {
        let _ = admin
            .query(&format!("DROP DATABASE IF EXISTS {database}"))
            .execute()
            .await;
    }
    if let Ok(client) = insite_sinks::redis_conn::client(redis_config) {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            let pattern = format!("{}*", redis_config.key_prefix);
            let mut cursor: u64 = 0;
            loop {
                let scanned: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await;
                let Ok((next, keys)) = scanned else { break };
                if !keys.is_empty() {
                    let _: redis::RedisResult<u64> =
                        redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
    }
}
