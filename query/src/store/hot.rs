//! The latest state in memory: the hot read path of the current bar, the
//! latest quote and the latest trade.
//!
//! Redis stays the source of truth; this is a copy of the keys that
//! requests read, kept close to it and served without a round trip:
//!
//! - **cold start and misses**: a key that is not held (or no longer
//!   confirmed, below) is read from Redis as before
//!   ([`Store::read_through`]) and then held;
//! - **confirmed against Redis**: a sweep task reads every held key from
//!   Redis (one pipeline of `GET`s, per hash tag on a cluster) every
//!   `sweep_ms`, and keeps what is newer of its copy and Redis's. A held
//!   value is served only while its last confirmation was *sent* less than
//!   `max_age_ms` ago, so an answer is never older than what Redis held
//!   `max_age_ms` before it (20 ms by default, the pipeline's hot-flush
//!   cadence). When Redis cannot be read the confirmations stop, held
//!   values age out within `max_age_ms`, and requests take the old path;
//! - **fed by NATS**: bars that the WebSocket hub takes from `insite.>`
//!   (final and live) replace a held bar when they are newer, so a held
//!   bar is usually ahead of Redis (the pipeline publishes a result as it
//!   comes and flushes Redis every hot flush). A bar the pipeline did not
//!   publish (DERIVED drops provisional results when it is behind) is
//!   still caught by the next sweep. Raw quotes and trades are not taken
//!   from `md.>`: Redis holds only what the pipeline accepted, so those
//!   follow Redis through the sweep alone.
//!
//! "Newer" is the order the Redis sink keeps per key: a bar by window,
//! then final after provisional, then by its trade count (which only grows
//! while its window is open); a quote or trade by its time. Of two bars of
//! the same order the held one stays, so answers never step back; of two
//! ticks of the same time, Redis's (the one its sink kept last).
//! A key nobody has read for `idle_s` is let go; at most `max_keys` are
//! held (further keys are read from Redis per request).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use insite_schemas::{Bar, Finality};
use insite_sinks::redis::RedisKeys;
use insite_sinks::redis_conn::hash_tag;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::RedisPool;
use crate::config::HotConfig;

/// What a held key holds, which says how its values are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotKind {
    /// A current bar (`<p>{SYM}:bar:<iv>`).
    Bar,
    /// A latest quote or trade (ordered by `ts`).
    Tick,
}

/// The order of a value among the values of its key (larger: newer).
type Order = (i64, u64);

/// The order fields of a bar's JSON.
#[derive(Deserialize)]
struct BarOrder {
    window_start: i64,
    finality: Finality,
    trades: u64,
}

/// The order field of a quote's or trade's JSON.
#[derive(Deserialize)]
struct TickOrder {
    ts: i64,
}

fn bar_order(window_start: i64, finality: Finality, trades: u64) -> Order {
    (
        window_start.saturating_mul(2) + i64::from(finality == Finality::Final),
        trades,
    )
}

impl HotKind {
    /// The order of `json`, a value of this kind (`None`: not one).
    fn order(self, json: &str) -> Option<Order> {
        match self {
            Self::Bar => serde_json::from_str::<BarOrder>(json)
                .ok()
                .map(|b| bar_order(b.window_start, b.finality, b.trades)),
            Self::Tick => serde_json::from_str::<TickOrder>(json)
                .ok()
                .map(|t| (t.ts, 0)),
        }
    }
}

/// One held key.
#[derive(Debug)]
struct Entry {
    /// Its kind.
    kind: HotKind,
    /// The order of `value`.
    order: Order,
    /// The newest value seen (Redis's or NATS's): JSON.
    value: String,
    /// When the last Redis read of it that answered was sent.
    confirmed: Instant,
    /// When it was last read by a request, in ms since [`HotState::epoch`].
    last_read: AtomicU64,
}

/// The latest state in memory (see the module docs).
#[derive(Debug)]
pub struct HotState {
    /// Redis key → held value.
    entries: RwLock<HashMap<String, Entry>>,
    /// Key names (to find a NATS bar's key).
    keys: RedisKeys,
    /// Settings.
    config: HotConfig,
    /// The origin of `last_read`.
    epoch: Instant,
}

impl HotState {
    /// An empty state with these settings.
    pub fn new(keys: RedisKeys, config: HotConfig) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            keys,
            config,
            epoch: Instant::now(),
        }
    }

    /// Whether the hot path is on.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    fn max_age(&self) -> Duration {
        Duration::from_millis(self.config.max_age_ms)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.entries.read().map_or(0, |e| e.len())
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The held value of `key`, if it was confirmed against Redis less
    /// than `max_age_ms` ago.
    pub fn get(&self, key: &str) -> Option<String> {
        if !self.config.enabled {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key)?;
        if entry.confirmed.elapsed() > self.max_age() {
            return None;
        }
        entry.last_read.store(self.now_ms(), Ordering::Relaxed);
        Some(entry.value.clone())
    }

    /// Takes what Redis answered for `key` to a read sent at `sent`
    /// (`None`: no such key): holds it, or confirms the held value.
    pub fn confirm(&self, key: &str, kind: HotKind, json: Option<&str>, sent: Instant) {
        if !self.config.enabled {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        let Some(json) = json else {
            // Gone from Redis (expired): so gone from here.
            entries.remove(key);
            return;
        };
        // Most confirmations find the held value unchanged: nothing to
        // parse or copy.
        if let Some(entry) = entries.get_mut(key) {
            if entry.value == json {
                if sent > entry.confirmed {
                    entry.confirmed = sent;
                }
                return;
            }
        }
        let Some(order) = kind.order(json) else {
            return;
        };
        let room = entries.len() < self.config.max_keys;
        match entries.get_mut(key) {
            Some(entry) => {
                // A quote or trade of the same time as the held one: Redis's
                // is the one the sink kept last (ticks come from Redis only).
                let same_tick = kind == HotKind::Tick && order == entry.order;
                if order > entry.order || (same_tick && json != entry.value) {
                    entry.order = order;
                    entry.value = json.to_owned();
                }
                if sent > entry.confirmed {
                    entry.confirmed = sent;
                }
            }
            None if room => {
                entries.insert(
                    key.to_owned(),
                    Entry {
                        kind,
                        order,
                        value: json.to_owned(),
                        confirmed: sent,
                        last_read: AtomicU64::new(self.now_ms()),
                    },
                );
            }
            None => {}
        }
    }

    /// Takes a bar from NATS: replaces the held bar of its key if newer
    /// (a key not held is left alone: it is not confirmed).
    pub fn offer_bar(&self, bar: &Bar) {
        if !self.config.enabled {
            return;
        }
        let key = self.keys.bar(&bar.symbol, bar.interval);
        let order = bar_order(bar.window_start, bar.finality, bar.trades);
        let newer = self
            .entries
            .read()
            .ok()
            .and_then(|e| e.get(&key).map(|entry| order > entry.order))
            .unwrap_or(false);
        if !newer {
            return;
        }
        // The JSON the Redis sink writes for it, so bodies and ETags match.
        let Ok(json) = serde_json::to_string(bar) else {
            return;
        };
        if let Ok(mut entries) = self.entries.write() {
            if let Some(entry) = entries.get_mut(&key) {
                if order > entry.order {
                    entry.order = order;
                    entry.value = json;
                }
            }
        }
    }

    /// The held keys to confirm, letting go of those nobody read for
    /// `idle_s`.
    fn keys_to_sweep(&self) -> Vec<(String, HotKind)> {
        let idle_ms = self.config.idle_s.saturating_mul(1_000);
        let now = self.now_ms();
        let Ok(mut entries) = self.entries.write() else {
            return Vec::new();
        };
        entries.retain(|_, e| now.saturating_sub(e.last_read.load(Ordering::Relaxed)) < idle_ms);
        entries.iter().map(|(k, e)| (k.clone(), e.kind)).collect()
    }

    /// Reads every held key from Redis once and confirms what answered.
    /// The number of keys read.
    pub async fn sweep(&self, redis: &RedisPool) -> Result<usize, redis::RedisError> {
        let keys = self.keys_to_sweep();
        if keys.is_empty() {
            return Ok(0);
        }
        let conn = redis.get();
        // One pipeline per hash tag on a cluster (a pipeline stays within
        // one slot), else one in all.
        let mut groups: HashMap<&str, Vec<&(String, HotKind)>> = HashMap::new();
        for k in &keys {
            let tag = if conn.is_cluster() {
                hash_tag(&k.0)
            } else {
                ""
            };
            groups.entry(tag).or_default().push(k);
        }
        let sent = Instant::now();
        let reads = groups.into_values().map(|group| {
            let mut conn = conn.clone();
            async move {
                let mut pipe = redis::pipe();
                for (key, _) in &group {
                    pipe.cmd("GET").arg(key);
                }
                let values: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
                Ok::<_, redis::RedisError>((group, values))
            }
        });
        let mut first_error = None;
        for result in futures::future::join_all(reads).await {
            match result {
                Ok((group, values)) => {
                    for ((key, kind), value) in group.into_iter().zip(values) {
                        self.confirm(key, *kind, value.as_deref(), sent);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(keys.len()),
        }
    }

    /// Sweeps every `sweep_ms` until `shutdown` (see the module docs).
    pub async fn run_sweeps(self: Arc<Self>, redis: RedisPool, shutdown: CancellationToken) {
        if !self.config.enabled {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.sweep_ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.sweep(&redis).await {
                Ok(n) => {
                    if failing {
                        tracing::info!(keys = n, "hot state confirmed against Redis again");
                    }
                    failing = false;
                    metrics::gauge!("insite_query_hot_keys").set(n as f64);
                }
                Err(e) => {
                    metrics::counter!("insite_query_hot_sweep_errors_total").increment(1);
                    if !failing {
                        tracing::warn!(error = %e, "reading the hot keys from Redis failed; answering from Redis per request until it answers");
                    }
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use insite_schemas::{Interval, Symbol};

    use super::*;

    fn state() -> HotState {
        HotState::new(RedisKeys::new("t:"), HotConfig::default())
    }

    fn bar(window_start: i64, finality: Finality, trades: u64) -> Bar {
        Bar {
            symbol: Symbol::new("AAPL").unwrap(),
            interval: Interval::MINUTE,
            window_start,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: trades,
            vwap: 1.0,
            trades,
            finality,
        }
    }

    fn json(b: &Bar) -> String {
        serde_json::to_string(b).unwrap()
    }

    fn trades_of(v: &str) -> u64 {
        serde_json::from_str::<Bar>(v).unwrap().trades
    }

    #[test]
    fn held_values_only_move_forward() {
        let hot = state();
        let key = hot
            .keys
            .bar(&Symbol::new("AAPL").unwrap(), Interval::MINUTE);
        let now = Instant::now();
        // Not held: NATS alone does not make a key held.
        hot.offer_bar(&bar(60_000, Finality::Provisional, 3));
        assert!(hot.get(&key).is_none());
        hot.confirm(
            &key,
            HotKind::Bar,
            Some(&json(&bar(60_000, Finality::Provisional, 2))),
            now,
        );
        assert_eq!(trades_of(&hot.get(&key).unwrap()), 2);
        hot.offer_bar(&bar(60_000, Finality::Provisional, 5));
        assert_eq!(trades_of(&hot.get(&key).unwrap()), 5);
        // Redis behind NATS: the held value stays.
        hot.confirm(
            &key,
            HotKind::Bar,
            Some(&json(&bar(60_000, Finality::Provisional, 4))),
            now,
        );
        assert_eq!(trades_of(&hot.get(&key).unwrap()), 5);
        // A final after its provisional ones, the next window after both.
        hot.confirm(
            &key,
            HotKind::Bar,
            Some(&json(&bar(60_000, Finality::Final, 5))),
            now,
        );
        let v = hot.get(&key).unwrap();
        assert_eq!(
            serde_json::from_str::<Bar>(&v).unwrap().finality,
            Finality::Final
        );
        hot.offer_bar(&bar(60_000, Finality::Provisional, 9));
        assert_eq!(
            serde_json::from_str::<Bar>(&hot.get(&key).unwrap())
                .unwrap()
                .finality,
            Finality::Final
        );
        hot.offer_bar(&bar(120_000, Finality::Provisional, 1));
        assert_eq!(trades_of(&hot.get(&key).unwrap()), 1);
        // Gone from Redis: gone from here.
        hot.confirm(&key, HotKind::Bar, None, now);
        assert!(hot.get(&key).is_none());
    }

    #[test]
    fn an_unconfirmed_value_is_not_served() {
        let hot = HotState::new(
            RedisKeys::new("t:"),
            HotConfig {
                max_age_ms: 20,
                ..HotConfig::default()
            },
        );
        let old = Instant::now() - Duration::from_millis(21);
        hot.confirm("k", HotKind::Tick, Some(r#"{"ts":5}"#), old);
        assert!(hot.get("k").is_none());
        hot.confirm("k", HotKind::Tick, Some(r#"{"ts":5}"#), Instant::now());
        assert_eq!(hot.get("k").unwrap(), r#"{"ts":5}"#);
    }

    #[test]
    fn at_most_max_keys_are_held_and_off_holds_none() {
        let hot = HotState::new(
            RedisKeys::new("t:"),
            HotConfig {
                max_keys: 1,
                ..HotConfig::default()
            },
        );
        let now = Instant::now();
        hot.confirm("a", HotKind::Tick, Some(r#"{"ts":1}"#), now);
        hot.confirm("b", HotKind::Tick, Some(r#"{"ts":1}"#), now);
        assert!(hot.get("a").is_some());
        assert!(hot.get("b").is_none());
        let off = HotState::new(
            RedisKeys::new("t:"),
            HotConfig {
                enabled: false,
                ..HotConfig::default()
            },
        );
        off.confirm("a", HotKind::Tick, Some(r#"{"ts":1}"#), now);
        assert!(off.get("a").is_none());
    }
}
