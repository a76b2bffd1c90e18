//! The servers a benchmark runs against: the ones named by URL, or, when
//! none is named, its own on free loopback ports under
//! `<local root>/bench-<name>-<pid>`, stopped and removed when dropped; and
//! the clean-up of the streams and database a phase created on them.

use std::time::Duration;

use anyhow::Context;
use insite_config::InsiteConfig;
use insite_local::server::{self, ServerKind};
use insite_local::LocalConfig;
use insite_schemas::config::{
    ClickHouseConfig, Connections, NatsConfig, RedisConfig, StreamsConfig,
};

/// The `--nats-url`, `--redis-url` and `--clickhouse-url` of a benchmark
/// that needs all three servers.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// NATS URL (with the two others: use running servers).
    #[arg(long)]
    nats_url: Option<String>,
    /// Redis URL.
    #[arg(long)]
    redis_url: Option<String>,
    /// ClickHouse HTTP URL.
    #[arg(long)]
    clickhouse_url: Option<String>,
}

/// Servers a benchmark started under a folder of its own; stopped, and the
/// folder removed, on drop.
#[derive(Debug)]
pub struct OwnServers {
    local: LocalConfig,
    /// The servers started so far (those to stop).
    started: Vec<ServerKind>,
}

impl OwnServers {
    /// Starts `kinds` on free loopback ports under
    /// `<local root>/bench-<name>-<pid>` (installing what is missing) and
    /// waits until they are healthy.
    pub fn start(config: &InsiteConfig, name: &str, kinds: &[ServerKind]) -> anyhow::Result<Self> {
        let local = config.local.local_config();
        let root = local
            .root
            .join(format!("bench-{name}-{}", std::process::id()));
        // Built before starting, so that a failed start still stops and
        // removes whatever did start.
        let mut own = Self {
            local: LocalConfig::with_free_ports(&root, &local.tools_dir)?,
            started: Vec::new(),
        };
        // A benchmark's own servers run without users (its clients connect
        // without credentials; see docs/deploy.md, "Security model").
        own.local.security = insite_local::Security::Open;
        let binaries = insite_local::ensure_installed(&own.local.tools_dir)?;
        for &kind in kinds {
            server::start(&own.local, &binaries, kind, &mut |_| {})?;
            own.started.push(kind);
        }
        for &kind in kinds {
            server::wait_healthy(&own.local, kind, Duration::from_secs(60))?;
        }
        Ok(own)
    }

    /// Where they are.
    pub fn local(&self) -> &LocalConfig {
        &self.local
    }
}

impl Drop for OwnServers {
    fn drop(&mut self) {
        for &kind in &self.started {
            let _ = server::stop(&self.local, kind);
        }
        let _ = std::fs::remove_dir_all(&self.local.root);
    }
}

/// Where the three servers are, and the ones this benchmark started.
#[derive(Debug)]
pub struct BenchServers {
    /// NATS URL.
    pub nats: String,
    /// Redis URL.
    pub redis: String,
    /// ClickHouse HTTP URL.
    pub clickhouse: String,
    /// Servers this benchmark started (`None`: it uses running ones),
    /// stopped when this is dropped.
    _own: Option<OwnServers>,
}

impl BenchServers {
    /// The servers at the given URLs (all three or none); with none, starts
    /// its own under `<local root>/bench-<name>-<pid>`.
    pub fn start_or_use(
        config: &InsiteConfig,
        name: &str,
        args: &ServerArgs,
    ) -> anyhow::Result<Self> {
        match (&args.nats_url, &args.redis_url, &args.clickhouse_url) {
            (Some(nats), Some(redis), Some(clickhouse)) => Ok(Self {
                nats: nats.clone(),
                redis: redis.clone(),
                clickhouse: clickhouse.clone(),
                _own: None,
            }),
            (None, None, None) => {
                let own = OwnServers::start(config, name, &ServerKind::ALL)
                    .context("starting NATS, Redis and ClickHouse for the benchmark")?;
                Ok(Self {
                    nats: own.local().nats_url(),
                    redis: own.local().redis_url(),
                    clickhouse: own.local().clickhouse_url(),
                    _own: Some(own),
                })
            }
            _ => anyhow::bail!("give all of --nats-url, --redis-url, --clickhouse-url, or none"),
        }
    }

    /// The name and pid of each server this benchmark started (none for
    /// servers given by URL), for their CPU.
    pub fn server_pids(&self) -> Vec<(String, u32)> {
        self._own
            .iter()
            .flat_map(|own| {
                own.started.iter().filter_map(|&kind| {
                    server::running_pid(&own.local, kind).map(|pid| (kind.name().to_owned(), pid))
                })
            })
            .collect()
    }

    /// These servers with `tag`'s own names
    /// ([`Connections::isolated`]); ClickHouse keeps the configured
    /// credentials.
    pub fn isolated(&self, config: &InsiteConfig, tag: &str) -> Connections {
        let servers = Connections {
            nats: NatsConfig {
                url: self.nats.clone(),
                ..NatsConfig::default()
            },
            clickhouse: ClickHouseConfig {
                url: self.clickhouse.clone(),
                ..config.clickhouse.clone()
            },
            redis: RedisConfig {
                url: self.redis.clone(),
                ..RedisConfig::default()
            },
        };
        servers.isolated(tag)
    }
}

/// Deletes the four streams of `streams` (those that exist).
pub async fn delete_streams(js: &async_nats::jetstream::Context, streams: &StreamsConfig) {
    for name in [
        &streams.market,
        &streams.social,
        &streams.derived,
        &streams.dlq,
    ] {
        let _ = js.delete_stream(name).await;
    }
}

/// Deletes a phase's streams and ClickHouse database, so that nothing is
/// left behind on servers that were given.
pub async fn clean_up(services: &Connections) {
    if let Ok(js) = insite_ingest::connect(&services.nats).await {
        delete_streams(&js, &services.nats.streams).await;
    }
    let admin = insite_sinks::clickhouse::client_without_database(&services.clickhouse);
    let _ = admin
        .query(&format!(
            "DROP DATABASE IF EXISTS {}",
            services.clickhouse.database
        ))
        .execute()
        .await;
}
