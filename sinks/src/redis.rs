//! Redis: the hot state the query service reads.
//!
//! ## Keys
//! Every key starts with the configured prefix (`insite:` by default) and
//! carries a hash tag, so one symbol's keys share a Redis Cluster slot:
//!
//! | key | type | content |
//! |---|---|---|
//! | `<p>{SYM}:trade` | string | latest trade (JSON) |
//! | `<p>{SYM}:quote` | string | latest quote (JSON) |
//! | `<p>{SYM}:bar:<iv>` | string | current bar of interval `<iv>` (provisional, or the last final one) |
//! | `<p>{SYM}:bars:<iv>` | sorted set | the last N final bars, scored by `window_start` |
//! | `<p>{SYM}:sentiment:<iv>` | string | current sentiment window |
//! | `<p>{SYM}:sentiments:<iv>` | sorted set | the last N final sentiment windows |
//! | `<p>{SYM}:alerts` | list | the symbol's recent alerts, newest first |
//! | `<p>{trending}:<iv>` | string | the current trending list |
//! | `<p>{trending}:rank:<iv>` | sorted set | symbol → mentions of the current trending list |
//! | `<p>{alerts}:recent` | list | recent alerts of every symbol, newest first |
//!
//! Values are JSON of the `schemas` types, so the query service can serve
//! them without re-encoding and `redis-cli` shows them as they are. Every
//! key gets the configured TTL on each write. Nothing here is the only copy:
//! all of it can be rebuilt from ClickHouse and the streams.
//!
//! ## Writing
//! [`RedisSink::push`] coalesces: of several updates to the same string key
//! within one flush only the newest is written, so provisional results cost
//! Redis one write per key per flush, whatever their rate. [`RedisSink::flush`]
//! sends everything as one pipeline; against a Redis Cluster
//! (`redis.cluster = true`), as one pipeline per hash tag, sent at once
//! (a cluster pipeline must stay within one slot; see
//! [`crate::redis_conn`]).

use std::collections::BTreeMap;

use insite_schemas::config::RedisConfig;
use insite_schemas::{
    Alert, Bar, Finality, Interval, Quote, SentimentWindow, Symbol, Trade, Trending,
};
use serde::{Deserialize, Serialize};

use crate::redis_conn::{hash_tag, RedisConnection, RedisOptions};

/// Redis sink errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisSinkError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL {url:?}: {source}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// The parser's error.
        #[source]
        source: redis::RedisError,
    },
    /// Redis could not be reached or refused the pipeline (retryable).
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A value could not be encoded as JSON (a bug).
    #[error("encoding a value as JSON: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Key names (shared with the query service, which reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisKeys {
    /// Prefix of every key.
    prefix: String,
}

impl RedisKeys {
    /// Keys under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// Latest trade.
    pub fn trade(&self, symbol: &Symbol) -> String {
        format!("{}{{{symbol}}}:trade", self.prefix)
    }

    /// Latest quote.
    pub fn quote(&self, symbol: &Symbol) -> String {
        format!("{}{{{symbol}}}:quote", self.prefix)
    }

    /// Current bar of an interval.
    pub fn bar(&self, symbol: &Symbol, interval: Interval) -> String {
        format!("{}{{{symbol}}}:bar:{interval}", self.prefix)
    }

    /// Recent final bars of an interval.
    pub fn bars(&self, symbol: &Symbol, interval: Interval) -> String {
        format!("{}{{{symbol}}}:bars:{interval}", self.prefix)
    }

    /// Current sentiment window of an interval.
    pub fn sentiment(&self, symbol: &Symbol, interval: Interval) -> String {
        format!("{}{{{symbol}}}:sentiment:{interval}", self.prefix)
    }

    /// Recent final sentiment windows of an interval.
    pub fn sentiments(&self, symbol: &Symbol, interval: Interval) -> String {
        format!("{}{{{symbol}}}:sentiments:{interval}", self.prefix)
    }

    /// A symbol's recent alerts.
    pub fn alerts(&self, symbol: &Symbol) -> String {
        format!("{}{{{symbol}}}:alerts", self.prefix)
    }

    /// Recent alerts of all symbols.
    pub fn recent_alerts(&self) -> String {
        format!("{}{{alerts}}:recent", self.prefix)
    }

    /// The current trending list of an interval.
    pub fn trending(&self, interval: Interval) -> String {
        format!("{}{{trending}}:{interval}", self.prefix)
    }

    /// Symbol → mentions of the current trending list.
    pub fn trending_rank(&self, interval: Interval) -> String {
        format!("{}{{trending}}:rank:{interval}", self.prefix)
    }
}

/// How much history the sink keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSinkConfig {
    /// Final bars and sentiment windows kept per symbol and interval.
    pub history_len: usize,
    /// Alerts kept per symbol and in the global list.
    pub alerts_len: usize,
    /// Most history entries and alerts buffered while Redis cannot be
    /// written; past it the oldest are dropped (Redis holds nothing that
    /// cannot be rebuilt from ClickHouse), so an outage never grows memory
    /// without bound.
    pub max_buffered: usize,
}

impl Default for RedisSinkConfig {
    fn default() -> Self {
        Self {
            history_len: 500,
            alerts_len: 100,
            max_buffered: 200_000,
        }
    }
}

/// One change of hot state.
#[derive(Debug, Clone, PartialEq)]
pub enum HotUpdate {
    /// A trade (the latest by event time wins).
    Trade(Trade),
    /// A quote (the latest by event time wins).
    Quote(Quote),
    /// A bar, provisional or final.
    Bar(Bar),
    /// A sentiment window, provisional or final.
    Sentiment(SentimentWindow),
    /// A trending list.
    Trending(Trending),
    /// An alert.
    Alert(Alert),
}

/// The order of a window's result among the values of its string key: by
/// window, and a final result after the provisional ones of its window.
fn window_order(window_start: i64, finality: Finality) -> i64 {
    window_start.saturating_mul(2) + i64::from(finality == Finality::Final)
}

/// A history entry: sorted-set key, score, JSON member.
type HistoryEntry = (String, i64, String);

/// Writes hot state to Redis in coalesced pipelines.
pub struct RedisSink {
    /// The connection (reconnects, and in a cluster follows fail-overs, by
    /// itself).
    conn: RedisConnection,
    /// Key names.
    keys: RedisKeys,
    /// TTL of every key, in seconds.
    ttl_s: u64,
    /// History lengths.
    config: RedisSinkConfig,
    /// Latest value per string key, with the event time that orders it.
    latest: BTreeMap<String, (i64, String)>,
    /// Final results to add to sorted-set histories.
    history: Vec<HistoryEntry>,
    /// Trending lists (key of the rank set, members).
    ranks: BTreeMap<String, Vec<(u64, String)>>,
    /// Alerts to push: (symbol list key, JSON).
    alerts: Vec<(String, String)>,
    /// History entries and alerts dropped because Redis stayed unwritable
    /// past `max_buffered`.
    dropped: u64,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("keys", &self.keys)
            .field("pending", &self.pending())
            .finish()
    }
}

impl RedisSink {
    /// Connects to the configured Redis.
    pub async fn connect(
        redis: &RedisConfig,
        config: RedisSinkConfig,
    ) -> Result<Self, RedisSinkError> {
        let conn = RedisConnection::connect(redis, RedisOptions::default())
            .await
            .map_err(|source| {
                if source.kind() == redis::ErrorKind::InvalidClientConfig {
                    RedisSinkError::InvalidUrl {
                        url: redis.url.clone(),
                        source,
                    }
                } else {
                    RedisSinkError::Redis(source)
                }
            })?;
        Ok(Self {
            conn,
            keys: RedisKeys::new(&redis.key_prefix),
            ttl_s: redis.ttl_s.max(1),
            config,
            latest: BTreeMap::new(),
            history: Vec::new(),
            ranks: BTreeMap::new(),
            alerts: Vec::new(),
            dropped: 0,
        })
    }

    /// The key names in use.
    pub fn keys(&self) -> &RedisKeys {
        &self.keys
    }

    /// History entries and alerts dropped so far because Redis stayed
    /// unwritable past `max_buffered`.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Keeps the newest `max_buffered` of `entries`.
    fn bound<T>(entries: &mut Vec<T>, max_buffered: usize, dropped: &mut u64) {
        let cap = max_buffered.max(1);
        if entries.len() > cap {
            // Drop the oldest quarter at once, so this stays amortised O(1).
            let excess = entries.len() - cap + cap / 4;
            let excess = excess.min(entries.len());
            entries.drain(..excess);
            *dropped += excess as u64;
            tracing::warn!(
                dropped = excess,
                total = *dropped,
                "Redis unwritable for long: oldest buffered history dropped"
            );
        }
    }

    /// Updates waiting for the next flush (after coalescing).
    pub fn pending(&self) -> usize {
        self.latest.len() + self.history.len() + self.ranks.len() + self.alerts.len()
    }

    fn set_latest(&mut self, key: String, order: i64, json: String) {
        match self.latest.get(&key) {
            Some((existing, _)) if *existing > order => {}
            _ => {
                self.latest.insert(key, (order, json));
            }
        }
    }

    /// Buffers an update, keeping only the newest per string key.
    pub fn push(&mut self, update: HotUpdate) -> Result<(), RedisSinkError> {
        match update {
            HotUpdate::Trade(t) => {
                let json = serde_json::to_string(&t)?;
                self.set_latest(self.keys.trade(&t.symbol), t.ts, json);
            }
            HotUpdate::Quote(q) => {
                let json = serde_json::to_string(&q)?;
                self.set_latest(self.keys.quote(&q.symbol), q.ts, json);
            }
            HotUpdate::Bar(b) => {
                let json = serde_json::to_string(&b)?;
                if b.finality == Finality::Final {
                    self.history.push((
                        self.keys.bars(&b.symbol, b.interval),
                        b.window_start,
                        json.clone(),
                    ));
                }
                let order = window_order(b.window_start, b.finality);
                self.set_latest(self.keys.bar(&b.symbol, b.interval), order, json);
            }
            HotUpdate::Sentiment(s) => {
                let json = serde_json::to_string(&s)?;
                if s.finality == Finality::Final {
                    self.history.push((
                        self.keys.sentiments(&s.symbol, s.interval),
                        s.window_start,
                        json.clone(),
                    ));
                }
                let order = window_order(s.window_start, s.finality);
                self.set_latest(self.keys.sentiment(&s.symbol, s.interval), order, json);
            }
            HotUpdate::Trending(t) => {
                let json = serde_json::to_string(&t)?;
                let order = window_order(t.window_start, t.finality);
                let key = self.keys.trending(t.interval);
                let newer = self.latest.get(&key).is_none_or(|(o, _)| *o <= order);
                if newer {
                    self.ranks.insert(
                        self.keys.trending_rank(t.interval),
                        t.entries
                            .iter()
                            .map(|e| (e.mentions, e.symbol.to_string()))
                            .collect(),
                    );
                }
                self.set_latest(key, order, json);
            }
            HotUpdate::Alert(a) => {
                let json = serde_json::to_string(&a)?;
                self.alerts.push((self.keys.alerts(&a.symbol), json));
            }
        }
        let max = self.config.max_buffered;
        Self::bound(&mut self.history, max, &mut self.dropped);
        Self::bound(&mut self.alerts, max, &mut self.dropped);
        Ok(())
    }

    /// Writes everything buffered as one pipeline. On error the buffer is
    /// kept, so the caller can retry.
    pub async fn flush(&mut self) -> Result<usize, RedisSinkError> {
        let written = self.pending();
        if written == 0 {
            return Ok(0);
        }
        let ttl = self.ttl_s;
        let keep = self.config.history_len.max(1) as isize;
        let alerts_keep = self.config.alerts_len.max(1) as isize;
        let mut pipes = Pipes::new(self.conn.is_cluster());
        for (key, (_, json)) in &self.latest {
            pipes
                .for_key(key)
                .cmd("SET")
                .arg(key)
                .arg(json)
                .arg("EX")
                .arg(ttl)
                .ignore();
        }
        for (key, score, json) in &self.history {
            // Replace whatever this window held before (a re-delivered or
            // recomputed result), then trim to the newest `keep`.
            let pipe = pipes.for_key(key);
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(key)
                .arg(score)
                .arg(score)
                .ignore();
            pipe.cmd("ZADD").arg(key).arg(score).arg(json).ignore();
            pipe.cmd("ZREMRANGEBYRANK")
                .arg(key)
                .arg(0)
                .arg(-keep - 1)
                .ignore();
            pipe.cmd("EXPIRE").arg(key).arg(ttl).ignore();
        }
        for (key, members) in &self.ranks {
            let pipe = pipes.for_key(key);
            pipe.cmd("DEL").arg(key).ignore();
            if !members.is_empty() {
                let mut zadd = redis::cmd("ZADD");
                zadd.arg(key);
                for (mentions, symbol) in members {
                    zadd.arg(*mentions).arg(symbol);
                }
                pipe.add_command(zadd).ignore();
                pipe.cmd("EXPIRE").arg(key).arg(ttl).ignore();
            }
        }
        let recent = self.keys.recent_alerts();
        for (key, json) in &self.alerts {
            for list in [key, &recent] {
                let pipe = pipes.for_key(list);
                pipe.cmd("LPUSH").arg(list).arg(json).ignore();
                pipe.cmd("LTRIM")
                    .arg(list)
                    .arg(0)
                    .arg(alerts_keep - 1)
                    .ignore();
                pipe.cmd("EXPIRE").arg(list).arg(ttl).ignore();
            }
        }
        pipes.exec(&self.conn).await?;
        self.latest.clear();
        self.history.clear();
        self.ranks.clear();
        self.alerts.clear();
        Ok(written)
    }
}

/// The pipelines of one flush: one in all against a single server, one per
/// hash tag (so per slot) against a cluster.
struct Pipes {
    /// Group by hash tag.
    cluster: bool,
    /// The pipelines, by hash tag (`""` for the single one).
    by_tag: BTreeMap<String, redis::Pipeline>,
}

impl Pipes {
    fn new(cluster: bool) -> Self {
        Self {
            cluster,
            by_tag: BTreeMap::new(),
        }
    }

    /// The pipeline that `key`'s commands go to.
    fn for_key(&mut self, key: &str) -> &mut redis::Pipeline {
        let tag = if self.cluster { hash_tag(key) } else { "" };
        self.by_tag.entry(tag.to_owned()).or_default()
    }

    /// Sends every pipeline at once; the first error, if any, after all
    /// have been answered.
    async fn exec(self, conn: &RedisConnection) -> Result<(), redis::RedisError> {
        let sends = self.by_tag.into_values().map(|pipe| {
            let mut conn = conn.clone();
            async move { pipe.exec_async(&mut conn).await }
        });
        for result in futures::future::join_all(sends).await {
            result?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_history_is_bounded_keeping_the_newest() {
        let mut entries: Vec<u32> = (0..10).collect();
        let mut dropped = 0;
        RedisSink::bound(&mut entries, 10, &mut dropped);
        assert_eq!(entries.len(), 10, "at the cap nothing is dropped");
        entries.push(10);
        RedisSink::bound(&mut entries, 10, &mut dropped);
        // One over the cap drops one plus a quarter of the cap, oldest first.
        assert_eq!(entries, (3..=10).collect::<Vec<_>>());
        assert_eq!(dropped, 3);
    }
}
