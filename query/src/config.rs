//! The `[query]` section of insite's config.

use serde::{Deserialize, Serialize};

/// Settings of the query service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Address to listen on.
    pub listen: String,
    /// Intervals the API serves (those the pipeline computes).
    pub intervals: Vec<String>,
    /// The pipeline (its `[pipeline] name`) whose durable frontier, in
    /// `pipeline_checkpoints`, says when a range answer is final and
    /// durable (immutable).
    pub pipeline: String,
    /// API keys and their rate limits.
    pub auth: AuthConfig,
    /// Range and page-size limits.
    pub limits: LimitsConfig,
    /// Caching and warm-up.
    pub cache: CacheConfig,
    /// WebSocket push.
    pub stream: StreamConfig,
    /// The latest state held in memory (the hot read path). Written to a
    /// file only when not the default, so that a file written by this
    /// version still loads in one without the section (benchmarks run
    /// older binaries with it).
    #[serde(skip_serializing_if = "HotConfig::is_default")]
    pub hot: HotConfig,
    /// The vendor-compatible (Polygon.io/Massive) REST and WebSocket API.
    pub vendor: VendorConfig,
    /// Redis connections shared by all requests (multiplexed, round-robin).
    pub redis_connections: usize,
    /// Time allowed to answer one request, in milliseconds.
    pub request_timeout_ms: u64,
    /// A ClickHouse query taking at least this long, in milliseconds, is
    /// counted as slow by route and logged with its statement's shape.
    pub slow_query_ms: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            intervals: vec!["1s".into(), "1m".into(), "5m".into()],
            pipeline: "insite".into(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            cache: CacheConfig::default(),
            stream: StreamConfig::default(),
            hot: HotConfig::default(),
            vendor: VendorConfig::default(),
            redis_connections: 4,
            request_timeout_ms: 10_000,
            slow_query_ms: 250,
        }
    }
}

/// One API key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The key, as clients send it in the `X-API-Key` header.
    pub key: String,
    /// A name for logs and metrics (never the key itself).
    #[serde(default)]
    pub name: String,
    /// Requests per second allowed for this key (0: the default).
    #[serde(default)]
    pub per_second: u32,
    /// Burst allowed for this key (0: the default).
    #[serde(default)]
    pub burst: u32,
}

/// API keys and rate limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Refuse requests without a known key (401). When false, requests
    /// without a key share the anonymous limit; a wrong key is still 401.
    pub require_key: bool,
    /// The keys.
    pub keys: Vec<ApiKey>,
    /// Default requests per second of a key.
    pub per_second: u32,
    /// Default burst of a key.
    pub burst: u32,
    /// Requests per second shared by all requests without a key (0: no limit).
    pub anonymous_per_second: u32,
    /// Burst of the anonymous limit.
    pub anonymous_burst: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            require_key: false,
            keys: Vec::new(),
            per_second: 100,
            burst: 200,
            anonymous_per_second: 0,
            anonymous_burst: 0,
        }
    }
}

/// Limits on what one request may ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Results per page when the request names no `limit`.
    pub default_page: usize,
    /// Largest `limit` accepted.
    pub max_page: usize,
    /// Longest range accepted, in days.
    pub max_range_days: u32,
    /// Largest top-N of trending and alerts.
    pub max_list: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            default_page: 5_000,
            max_page: 50_000,
            max_range_days: 366,
            max_list: 500,
        }
    }
}

/// Caching and warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// `max-age` of immutable answers (every window final and durable), in
    /// seconds.
    pub immutable_max_age_s: u64,
    /// `max-age` of answers that may still change, in seconds.
    pub live_max_age_s: u64,
    /// TTL of ClickHouse answers written back to Redis, in seconds.
    pub writeback_ttl_s: u64,
    /// Symbols to warm at start; empty: the most active ones in ClickHouse.
    pub warm_symbols: Vec<String>,
    /// How many of the most active symbols to warm when none are listed.
    pub warm_top: usize,
    /// Final bars and sentiment windows loaded per symbol and interval when
    /// warming (the Redis sink keeps as many).
    pub warm_history: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            immutable_max_age_s: 31_536_000,
            live_max_age_s: 1,
            writeback_ttl_s: 3_600,
            warm_symbols: Vec::new(),
            warm_top: 100,
            warm_history: 500,
        }
    }
}

/// WebSocket push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Messages queued per client; a client whose queue is full is dropped.
    pub client_queue: usize,
    /// Subscriptions (topic count) allowed per client.
    pub max_subscriptions: usize,
    /// Also forward quotes (`md.quotes.>`) to clients that subscribe to them.
    pub quotes: bool,
    /// How long a dropped client gets to take what is already in its
    /// socket and then the close frame, in milliseconds.
    pub close_timeout_ms: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            client_queue: 1_024,
            max_subscriptions: 256,
            quotes: true,
            close_timeout_ms: 10_000,
        }
    }
}

/// The latest state held in memory: the current bars, latest quotes and
/// trades that requests read, confirmed against Redis every `sweep_ms` and
/// served only while confirmed less than `max_age_ms` ago (see
/// `insite_query::store::HotState`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotConfig {
    /// Serve the latest state from memory (false: every request reads
    /// Redis).
    pub enabled: bool,
    /// How often the held keys are read from Redis, in milliseconds.
    pub sweep_ms: u64,
    /// A held value is served only while its last Redis read was sent less
    /// than this long ago, in milliseconds: an answer is never older than
    /// what Redis held this long before it.
    pub max_age_ms: u64,
    /// Most keys held (further keys are read from Redis per request).
    pub max_keys: usize,
    /// A held key nobody read for this long, in seconds, is let go.
    pub idle_s: u64,
}

impl HotConfig {
    /// Whether these are the defaults.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Default for HotConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sweep_ms: 10,
            max_age_ms: 20,
            max_keys: 10_000,
            idle_s: 60,
        }
    }
}

/// The vendor-compatible (Polygon.io/Massive) API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VendorConfig {
    /// Longest range of day, week, month, quarter or year aggregates, in
    /// days (shorter timespans are bounded by `limits.max_range_days`).
    pub max_range_days: u32,
    /// The path under which the vendor's WebSocket clusters are served
    /// (`<prefix>/stocks`); empty: at the root, as the vendor's host does.
    pub ws_prefix: String,
    /// Forward raw trades (`md.trades.>`) to the vendor protocol's clients
    /// that subscribe to `T` events (the query service's NATS user must
    /// then be allowed to subscribe to `md.trades.>`).
    pub trades: bool,
    /// Aggregate reads from ClickHouse (long `FINAL` scans) in flight at
    /// once per instance; more wait their turn instead of all competing
    /// for the server's memory and file descriptors.
    pub max_concurrent_reads: usize,
}

impl Default for VendorConfig {
    fn default() -> Self {
        Self {
            max_range_days: 3_660,
            ws_prefix: String::new(),
            trades: true,
            max_concurrent_reads: 4,
        }
    }
}
