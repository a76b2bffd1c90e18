//! Reading what the pipeline wrote: Redis first, ClickHouse on a miss (the
//! answer written back to Redis), and warming Redis from ClickHouse at start.
//!
//! Redis keys are those of [`insite_sinks::redis::RedisKeys`]; answers to
//! durable ranges (response bodies) are cached under
//! `<prefix>{SYM}:qd:<kind>:<interval>:<from>:<to>:<limit>` (same hash tag as
//! the symbol's other keys). Every SQL value goes through `.bind()`.
//!
//! One job per file, all of them methods of [`Store`]:
//! - `pool.rs`: the Redis connections ([`RedisPool`]) and the reads every
//!   part shares: `GET`, write-back, read-through.
//! - `stored.rs`: stored data back into schema types (ClickHouse rows,
//!   Redis JSON).
//! - `frontier.rs`: the pipeline's durable frontier per source, read from
//!   `pipeline_checkpoints` and kept briefly ([`Frontiers`]), and the rule
//!   of when a range is durable ([`Durability`]).
//! - `range.rs`: whether a range is durable ([`Store::durability`]),
//!   results over a range ([`RangeKind`], [`Store::range`]) and the cached
//!   answers of durable ranges.
//! - `granules.rs`: bars combined per epoch-aligned span for the
//!   vendor-compatible roll-ups, and Redis's newest bars.
//! - `latest.rs`: the current bar, the latest quote and trade, from
//!   memory when held ([`HotState`]), else as above.
//! - `hot.rs`: the latest state held in memory, confirmed against Redis
//!   by a sweep and fed bars by the NATS feed ([`HotState`]).
//! - `lists.rs`: the trending list and recent alerts.
//! - `warm.rs`: warming Redis from ClickHouse at start ([`Store::warm`]).
//! - `statements.rs`: every SQL statement sent, in one place, and a
//!   catalog of them with sample values ([`statements::catalog`]).
//! - `timed.rs`: every ClickHouse query timed by route; slow ones counted
//!   and logged with their statement's shape ([`timed::timed`]).

pub mod frontier;
mod granules;
mod hot;
mod latest;
mod lists;
mod pool;
mod range;
pub mod statements;
mod stored;
pub mod timed;
mod warm;

use std::sync::Arc;
use std::time::Duration;

use insite_schemas::config::RedisConfig;
use insite_sinks::redis::RedisKeys;

use crate::config::{CacheConfig, HotConfig};
use crate::error::ApiError;

pub use frontier::{Durability, FrontierSource, Frontiers};
pub use granules::{GranuleQuery, Symbols};
pub use hot::{HotKind, HotState};
pub use pool::RedisPool;
pub use range::{Bars, RangeAnswer, RangeKind, RangeRequest, Sentiments};

/// Where an answer came from (for metrics and the `X-Insite-Source` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Redis hot state (written by the pipeline, or warmed).
    Redis,
    /// The latest state held in memory, confirmed against Redis.
    Memory,
    /// A ClickHouse answer cached in Redis.
    Cache,
    /// ClickHouse itself.
    ClickHouse,
}

impl Source {
    /// A lower-case word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Memory => "memory",
            Self::Cache => "cache",
            Self::ClickHouse => "clickhouse",
        }
    }
}

/// Aggregate reads in flight at once unless set ([`Store::with_aggregate_reads`]).
const DEFAULT_AGGREGATE_READS: usize = 4;

/// Reads hot state from Redis and history from ClickHouse.
#[derive(Clone)]
pub struct Store {
    /// Redis connections.
    pub redis: RedisPool,
    /// ClickHouse client (read-only use).
    pub clickhouse: clickhouse::Client,
    /// Redis key names.
    pub keys: RedisKeys,
    /// The Redis key prefix (for the query cache keys).
    prefix: String,
    /// Caching settings.
    cache: CacheConfig,
    /// The durable frontiers of the pipeline whose results are trusted.
    frontiers: Arc<Frontiers>,
    /// A ClickHouse query this long or longer is slow (counted, logged).
    slow_query: Duration,
    /// Turns for aggregate reads from ClickHouse ([`Store::granules`]).
    aggregate_reads: Arc<tokio::sync::Semaphore>,
    /// The latest state held in memory.
    pub hot: Arc<HotState>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("redis", &self.redis)
            .field("keys", &self.keys)
            .field("pipeline", &self.frontiers.pipeline())
            .finish()
    }
}

impl Store {
    /// A store over these connections, trusting the durable frontier
    /// that `pipeline` records; ClickHouse queries of `slow_query` or
    /// longer are counted and logged as slow; the latest state is held in
    /// memory as `hot` says.
    pub fn new(
        redis: RedisPool,
        clickhouse: clickhouse::Client,
        redis_config: &RedisConfig,
        cache: CacheConfig,
        pipeline: &str,
        slow_query: Duration,
        hot: HotConfig,
    ) -> Self {
        Self {
            hot: Arc::new(HotState::new(RedisKeys::new(&redis_config.key_prefix), hot)),
            redis,
            clickhouse,
            keys: RedisKeys::new(&redis_config.key_prefix),
            prefix: redis_config.key_prefix.clone(),
            cache,
            frontiers: Arc::new(
                Frontiers::new(pipeline, frontier::FRONTIER_REFRESH).with_slow_query(slow_query),
            ),
            slow_query,
            aggregate_reads: Arc::new(tokio::sync::Semaphore::new(DEFAULT_AGGREGATE_READS)),
        }
    }

    /// At most `reads` aggregate reads from ClickHouse in flight at once
    /// (at least one).
    pub fn with_aggregate_reads(mut self, reads: usize) -> Self {
        self.aggregate_reads = Arc::new(tokio::sync::Semaphore::new(reads.max(1)));
        self
    }

    /// Redis answers `PING`.
    pub async fn ping_redis(&self) -> Result<(), ApiError> {
        let mut conn = self.redis.get();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// ClickHouse answers `SELECT 1`.
    pub async fn ping_clickhouse(&self) -> Result<(), ApiError> {
        let sql = statements::PING;
        let _: u8 =
            timed::timed(self.slow_query, sql, self.clickhouse.query(sql).fetch_one()).await?;
        Ok(())
    }
}
