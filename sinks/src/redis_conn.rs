//! One Redis connection type for both deployments: a single server, or a
//! Redis Cluster.
//!
//! - Single server (`redis.cluster = false`): a [`ConnectionManager`], one
//!   multiplexed connection that reconnects by itself.
//! - Redis Cluster (`redis.cluster = true`, `redis.url` a comma-separated
//!   list of seed nodes): the `redis` crate's cluster client. It learns the
//!   slot map from the seeds, sends each command to its slot's master,
//!   follows `MOVED` and `ASK` redirects, and refreshes the map and retries
//!   when a master fails and its replica is promoted.
//!
//! A cluster pipeline must stay within one slot; insite's keys carry a hash
//! tag (`{AAPL}`, `{trending}`, `{alerts}`), so one symbol's keys share a
//! slot and [`hash_tag`] tells callers how to group commands.
//!
//! [`RedisConnection`] implements [`redis::aio::ConnectionLike`], so callers
//! use `query_async(&mut conn)` whichever it is.

use std::sync::Arc;
use std::time::Duration;

use insite_schemas::config::RedisConfig;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};
use tokio::sync::OnceCell;

/// Timeouts and retries of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisOptions {
    /// Longest wait to connect.
    pub connection_timeout: Duration,
    /// Longest wait for an answer.
    pub response_timeout: Duration,
    /// Retries of a failed command (reconnecting in between).
    pub retries: u32,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connection_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            retries: 2,
        }
    }
}

/// A Redis Cluster connection opened on first use.
#[derive(Clone)]
pub struct LazyCluster {
    /// The client (seeds, timeouts, retries), shared by every clone.
    client: Arc<ClusterClient>,
    /// The connection, once opened; shared by every clone.
    conn: Arc<OnceCell<ClusterConnection>>,
}

impl LazyCluster {
    /// The connection, opening it if this is the first use (a failed open is
    /// tried again on the next use).
    async fn get(&self) -> RedisResult<ClusterConnection> {
        let conn = self
            .conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await?;
        Ok(conn.clone())
    }
}

/// A connection to a single Redis or to a Redis Cluster. Cheap to clone:
/// clones share the underlying connections.
#[derive(Clone)]
pub enum RedisConnection {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(LazyCluster),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConnection::Single",
            Self::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

/// The seed URLs of `config.url` (comma-separated).
pub fn seeds(config: &RedisConfig) -> Vec<String> {
    config
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

fn cluster_client(config: &RedisConfig, options: RedisOptions) -> RedisResult<ClusterClient> {
    let mut builder = ClusterClient::builder(seeds(config));
    if let Some(user) = &config.user {
        builder = builder.username(user.clone());
    }
    if let Some(password) = &config.password {
        builder = builder.password(password.clone());
    }
    builder
        .connection_timeout(options.connection_timeout)
        .response_timeout(options.response_timeout)
        .retries(options.retries.max(1))
        .min_retry_wait(50)
        .max_retry_wait(1_000)
        .build()
}

impl RedisConnection {
    /// A connection opened on first use (so a service starts, and says why
    /// it is not ready, while Redis is down). Must be called within a Tokio
    /// runtime.
    pub fn lazy(config: &RedisConfig, options: RedisOptions) -> RedisResult<Self> {
        if config.cluster {
            return Ok(Self::Cluster(LazyCluster {
                client: Arc::new(cluster_client(config, options)?),
                conn: Arc::new(OnceCell::new()),
            }));
        }
        let client = client(config)?;
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config(options))?;
        Ok(Self::Single(manager))
    }

    /// A connection opened now: an error if Redis cannot be reached.
    pub async fn connect(config: &RedisConfig, options: RedisOptions) -> RedisResult<Self> {
        if config.cluster {
            let cluster = LazyCluster {
                client: Arc::new(cluster_client(config, options)?),
                conn: Arc::new(OnceCell::new()),
            };
            cluster.get().await?;
            return Ok(Self::Cluster(cluster));
        }
        let client = client(config)?;
        let manager = ConnectionManager::new_with_config(client, manager_config(options)).await?;
        Ok(Self::Single(manager))
    }

    /// Whether this speaks to a Redis Cluster (pipelines must then stay
    /// within one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

/// A client of the single server at `config.url`, as `config.user` with
/// `config.password` when they are set (else as the URL says).
pub fn client(config: &RedisConfig) -> RedisResult<redis::Client> {
    let mut info = config.url.as_str().into_connection_info()?;
    let mut redis = info.redis_settings().clone();
    if let Some(user) = &config.user {
        redis = redis.set_username(user.clone());
    }
    if let Some(password) = &config.password {
        redis = redis.set_password(password.clone());
    }
    info = info.set_redis_settings(redis);
    redis::Client::open(info)
}

fn manager_config(options: RedisOptions) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connection_timeout))
        .set_response_timeout(Some(options.response_timeout))
        .set_number_of_retries(options.retries as usize)
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(cluster) => Box::pin(async move {
                let mut conn = cluster.get().await?;
                conn.req_packed_command(cmd).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(cluster) => Box::pin(async move {
                let mut conn = cluster.get().await?;
                conn.req_packed_commands(pipeline, offset, count).await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(_) => 0,
        }
    }
}

/// The part of `key` Redis Cluster hashes to pick its slot: the text
/// between the first `{` and the next `}` when that is not empty, else the
/// whole key. Keys with one hash tag always share a slot.
pub fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags_follow_the_redis_cluster_rule() {
        assert_eq!(hash_tag("insite:{AAPL}:bar:1m"), "AAPL");
        assert_eq!(hash_tag("t_1:{trending}:rank:1m"), "trending");
        assert_eq!(hash_tag("plain"), "plain");
        assert_eq!(
            hash_tag("a{}b{c}"),
            "a{}b{c}",
            "an empty tag hashes the key"
        );
        assert_eq!(hash_tag("a{b"), "a{b");
    }

    #[test]
    fn seeds_are_split_on_commas() {
        let config = RedisConfig {
            url: "redis://127.0.0.1:1, redis://127.0.0.1:2,".into(),
            cluster: true,
            ..RedisConfig::default()
        };
        assert_eq!(
            seeds(&config),
            ["redis://127.0.0.1:1", "redis://127.0.0.1:2"]
        );
    }
}
