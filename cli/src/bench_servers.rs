//! The servers a benchmark runs against: the ones named by URL, or, when
//! none is named, its own NATS, Redis and ClickHouse on free loopback ports
//! under the local root, stopped and removed when dropped.

use anyhow::Context;
use insite_local::LocalConfig;

use crate::config::InsiteConfig;

/// Where the servers are, and the ones this benchmark started.
#[derive(Debug)]
pub struct BenchServers {
    /// NATS URL.
    pub nats: String,
    /// Redis URL.
    pub redis: String,
    /// ClickHouse HTTP URL.
    pub clickhouse: String,
    /// Servers this benchmark started (`None`: it uses running ones).
    own: Option<LocalConfig>,
}

impl BenchServers {
    /// The servers at the given URLs (all three or none); with none, starts
    /// its own under `<local root>/bench-<name>-<pid>`.
    pub fn start_or_use(
        config: &InsiteConfig,
        name: &str,
        nats: Option<&String>,
        redis: Option<&String>,
        clickhouse: Option<&String>,
    ) -> anyhow::Result<Self> {
        match (nats, redis, clickhouse) {
            (Some(nats), Some(redis), Some(clickhouse)) => Ok(Self {
                nats: nats.clone(),
                redis: redis.clone(),
                clickhouse: clickhouse.clone(),
                own: None,
            }),
            (None, None, None) => {
                let local = config.local.local_config();
                let root = local
                    .root
                    .join(format!("bench-{name}-{}", std::process::id()));
                let own = LocalConfig::with_free_ports(&root, &local.tools_dir)?;
                // Built before starting, so that a failed start still
                // stops and removes whatever did start.
                let servers = Self {
                    nats: own.nats_url(),
                    redis: own.redis_url(),
                    clickhouse: own.clickhouse_url(),
                    own: Some(own),
                };
                if let Some(own) = &servers.own {
                    insite_local::up(own, &mut |_| {})
                        .context("starting NATS, Redis and ClickHouse for the benchmark")?;
                }
                Ok(servers)
            }
            _ => anyhow::bail!("give all of --nats-url, --redis-url, --clickhouse-url, or none"),
        }
    }
}

impl Drop for BenchServers {
    fn drop(&mut self) {
        if let Some(own) = &self.own {
            let _ = insite_local::down(own);
            let _ = std::fs::remove_dir_all(&own.root);
        }
    }
}
