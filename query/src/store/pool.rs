//! The Redis connections, and the reads and writes every part of the store
//! shares: `GET`, write-back (`SET NX EX`) and read-through (Redis, else
//! ClickHouse written back).
//!
//! The connections speak to a single Redis or to a Redis Cluster
//! (`redis.cluster`; see `insite_sinks::redis_conn`). Redis holds nothing
//! that ClickHouse cannot answer, so a read-through whose Redis read fails
//! (a master lost and its replica not promoted yet) is answered from
//! ClickHouse instead of failing the request.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use insite_schemas::config::RedisConfig;
use insite_sinks::redis_conn::{RedisConnection, RedisOptions};
use serde::Serialize;

use super::{Source, Store};
use crate::error::{encode_json, ApiError, QueryError};

/// A few multiplexed Redis connections used round-robin.
#[derive(Clone)]
pub struct RedisPool {
    /// The connections (each reconnects by itself).
    conns: Arc<Vec<RedisConnection>>,
    /// The next connection to hand out.
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("connections", &self.conns.len())
            .finish()
    }
}

impl RedisPool {
    /// `size` connections to the configured Redis, opened on first use (so
    /// the service starts, and `/readyz` says why, while Redis is down);
    /// each reconnects by itself. Must be called within a Tokio runtime.
    pub fn lazy(config: &RedisConfig, size: usize) -> Result<Self, QueryError> {
        let options = RedisOptions {
            connection_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            retries: 2,
        };
        let mut conns = Vec::new();
        for _ in 0..size.max(1) {
            conns.push(RedisConnection::lazy(config, options)?);
        }
        Ok(Self {
            conns: Arc::new(conns),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// A connection (cheap clone of a multiplexed one).
    pub fn get(&self) -> RedisConnection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }
}

impl Store {
    /// The value of `key`, if any.
    pub(super) async fn get(&self, key: &str) -> Result<Option<String>, ApiError> {
        let mut conn = self.redis.get();
        let value: Option<String> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
        Ok(value)
    }

    /// Writes `json` under `key` for the write-back TTL, unless something
    /// newer is there already.
    pub(super) async fn write_back(&self, key: &str, json: &str) -> Result<(), ApiError> {
        let mut conn = self.redis.get();
        let _: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(json)
            .arg("NX")
            .arg("EX")
            .arg(self.cache.writeback_ttl_s.max(1))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The JSON under `key` in Redis; on a miss, what `from_clickhouse`
    /// reads (it runs only then), encoded and written back. `None` when
    /// neither has anything.
    pub(super) async fn read_through<T: Serialize>(
        &self,
        key: &str,
        from_clickhouse: impl Future<Output = Result<Option<T>, ApiError>>,
    ) -> Result<Option<(String, Source)>, ApiError> {
        let redis_up = match self.get(key).await {
            Ok(Some(json)) => return Ok(Some((json, Source::Redis))),
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(key, error = %e, "Redis read failed: answering from ClickHouse");
                metrics::counter!("insite_query_redis_fallbacks_total").increment(1);
                false
            }
        };
        let Some(value) = from_clickhouse.await? else {
            return Ok(None);
        };
        let json = encode_json(&value)?;
        if redis_up {
            self.write_back(key, &json).await?;
        }
        Ok(Some((json, Source::ClickHouse)))
    }
}
