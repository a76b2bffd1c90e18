//! Connection and stream settings shared by every stage.
//!
//! Plain serde structs with defaults that match the local servers; the CLI
//! layers them (defaults, then a TOML file, then `INSITE_*` env vars) into
//! one typed config. No secret has a default: passwords come from the file
//! or the environment.

use serde::{Deserialize, Serialize};

/// Where NATS is and how its JetStream streams are named and kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// Optional user name.
    pub user: Option<String>,
    /// Optional password.
    pub password: Option<String>,
    /// The streams.
    pub streams: StreamsConfig,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:14222".into(),
            user: None,
            password: None,
            streams: StreamsConfig::default(),
        }
    }
}

/// One gibibyte, for byte limits.
const GIB: i64 = 1 << 30;
/// One mebibyte, for byte limits.
const MIB: i64 = 1 << 20;

/// Names, replicas and retention of the JetStream streams.
///
/// Every stream has an age and a byte limit, and drops its oldest messages
/// when either is reached (JetStream's `discard: old`): NATS's disk use is
/// bounded by the sum of the byte limits. JetStream *reserves* each
/// stream's `max_bytes` against the server's `max_file_store` when the
/// stream is created or updated, and refuses a stream that does not fit
/// ("insufficient storage resources"), so the sum of the limits (times the
/// streams per server) must stay below it. The defaults (about 2.6 GiB in
/// all) fit the local servers and the test harness, whose NATS reserves
/// 75 % of the free disk; the deployments in `deploy/` set larger limits
/// next to a matching `max_file_store`. See `docs/schema.md`, "Retention".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamsConfig {
    /// Raw trades and quotes (`md.>`).
    pub market: String,
    /// Raw posts (`social.>`).
    pub social: String,
    /// Final results (`insite.bars.>`, `insite.sentiment.>`,
    /// `insite.trending.>`, `insite.alerts.>`); provisional results go on
    /// `insite.live.>`, which no stream captures.
    pub derived: String,
    /// Dead letters (`insite.dlq.>`).
    pub dlq: String,
    /// Replicas of every stream: 1 on one server, 3 in a cluster (the
    /// local cluster of `insite cluster up` and `deploy/k8s`).
    pub replicas: usize,
    /// Max age of MARKET and SOCIAL, in seconds (0: no age limit).
    pub raw_max_age_s: u64,
    /// Max bytes of MARKET and SOCIAL each (-1: unlimited). Bounds how long
    /// the pipeline may be down or held back by ClickHouse before unread
    /// input is dropped: 1 GiB is about 50 minutes of the demo's 2,000
    /// events/s (20 MB a minute).
    pub raw_max_bytes: i64,
    /// Max age of DERIVED, in seconds (0: no age limit).
    pub derived_max_age_s: u64,
    /// Max bytes of DERIVED (-1: unlimited). Final results only: about
    /// 1 MB a minute at the demo's 50 symbols, so 512 MiB is some 10 hours.
    pub derived_max_bytes: i64,
    /// Max age of DLQ, in seconds (0: no age limit).
    pub dlq_max_age_s: u64,
    /// Max bytes of DLQ (-1: unlimited): a flood of bad input cannot fill
    /// the disk.
    pub dlq_max_bytes: i64,
    /// JetStream's duplicate window, in seconds.
    pub duplicate_window_s: u64,
    /// A prefix put before every subject (empty in production; tests use it
    /// to give each test its own subjects on a shared server).
    pub subject_prefix: String,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            market: "MARKET".into(),
            social: "SOCIAL".into(),
            derived: "DERIVED".into(),
            dlq: "DLQ".into(),
            replicas: 1,
            raw_max_age_s: 7 * 86_400,
            raw_max_bytes: GIB,
            derived_max_age_s: 86_400,
            derived_max_bytes: 512 * MIB,
            dlq_max_age_s: 30 * 86_400,
            dlq_max_bytes: 128 * MIB,
            duplicate_window_s: 120,
            subject_prefix: String::new(),
        }
    }
}

impl StreamsConfig {
    /// `subject` with the configured prefix (if any) in front.
    pub fn subject(&self, subject: &str) -> String {
        if self.subject_prefix.is_empty() {
            subject.to_owned()
        } else {
            format!("{}.{subject}", self.subject_prefix)
        }
    }

    /// The byte limits of all four streams added up (an unlimited stream
    /// counts as 0): what JetStream reserves for one set of streams on each
    /// server that holds a replica of all of them.
    pub fn reserved_bytes(&self) -> i64 {
        [
            self.raw_max_bytes,
            self.raw_max_bytes,
            self.derived_max_bytes,
            self.dlq_max_bytes,
        ]
        .iter()
        .map(|b| (*b).max(0))
        .sum()
    }

    /// `subject` with the configured prefix removed, if it has it.
    pub fn strip_prefix<'a>(&self, subject: &'a str) -> Option<&'a str> {
        if self.subject_prefix.is_empty() {
            Some(subject)
        } else {
            subject
                .strip_prefix(self.subject_prefix.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
        }
    }
}

/// Where ClickHouse is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP URL.
    pub url: String,
    /// Database holding insite's tables.
    pub database: String,
    /// User name.
    pub user: String,
    /// Password (empty: none).
    pub password: String,
    /// The longest wait for a TCP connection to the server (DNS lookup
    /// included), in milliseconds.
    pub connect_timeout_ms: u64,
    /// The longest a request waits on the server without receiving a byte
    /// (or without it taking one), in milliseconds: the bound on one
    /// statement, since ClickHouse answers an `INSERT` only once it has
    /// written it. Long enough for the largest batch on a slow machine.
    pub request_timeout_ms: u64,
    /// Replicas that must hold the rows of a result or event insert before
    /// ClickHouse acknowledges it (its `insert_quorum`, sent with every
    /// write of the pipeline's table writers); 0 leaves it to the server.
    /// On a replicated cluster (2 replicas per shard) set 2, so that an
    /// acknowledged insert survives the loss of any one server; see
    /// `docs/deploy.md`.
    pub insert_quorum: u32,
    /// Days the raw tables (trades, quotes, posts, late events) keep a row
    /// past its event time, by ClickHouse `TTL`, on servers that have it
    /// (19.6 and later; older ones keep everything and log so); 0 keeps
    /// rows for ever. Applied at every start-up of a migrating stage; see
    /// [`crate::retention`].
    pub raw_ttl_days: u32,
    /// The HTTP URL of one server on which a staged backfill keeps its
    /// staging database (empty: `url`). Behind a load balancer that spreads
    /// statements over several servers (a cluster), give one server's own
    /// URL: the staging database then lives on that server alone, and the
    /// overlap check and the copy into the target run there.
    pub staging_url: String,
}

impl ClickHouseConfig {
    /// The URL a staged backfill's staging database is on.
    pub fn staging_url(&self) -> &str {
        if self.staging_url.is_empty() {
            &self.url
        } else {
            &self.staging_url
        }
    }
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:18123".into(),
            database: "insite".into(),
            user: "default".into(),
            password: String::new(),
            connect_timeout_ms: 2_000,
            request_timeout_ms: 30_000,
            insert_quorum: 0,
            raw_ttl_days: 0,
            staging_url: String::new(),
        }
    }
}

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// URL, e.g. `redis://127.0.0.1:16379/0` (`rediss://` for TLS; an ACL
    /// user and password may be in the URL, or in `user` and `password`). With `cluster`, the URLs of some
    /// or all Redis Cluster nodes, comma-separated (the seeds the client
    /// learns the slot map from).
    pub url: String,
    /// Speak the Redis Cluster protocol: route each key to its slot's
    /// master, follow `MOVED`/`ASK` redirects and fail-overs.
    pub cluster: bool,
    /// ACL user name (overrides a user in the URL).
    pub user: Option<String>,
    /// ACL password (overrides a password in the URL).
    pub password: Option<String>,
    /// A prefix put before every key (tests give each test its own).
    pub key_prefix: String,
    /// Default time to live of hot keys, in seconds.
    pub ttl_s: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:16379/0".into(),
            cluster: false,
            user: None,
            password: None,
            key_prefix: "insite:".into(),
            ttl_s: 86_400,
        }
    }
}

/// Where every server is: the one bundle of connection settings that each
/// stage's `run(config, shutdown)` takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Connections {
    /// NATS and its streams.
    pub nats: NatsConfig,
    /// ClickHouse (the database results go to).
    pub clickhouse: ClickHouseConfig,
    /// Redis.
    pub redis: RedisConfig,
}

impl Connections {
    /// The same servers, with names of a run's own: streams `<TAG>_MARKET`
    /// (and so on), subject prefix `<tag>`, database `<tag>` and key prefix
    /// `<tag>:`. `tag` should be `[a-z0-9_]`; tests and benchmarks use this
    /// so that runs sharing servers never see each other's data.
    pub fn isolated(&self, tag: &str) -> Self {
        let upper = tag.to_ascii_uppercase();
        Self {
            nats: NatsConfig {
                streams: StreamsConfig {
                    market: format!("{upper}_MARKET"),
                    social: format!("{upper}_SOCIAL"),
                    derived: format!("{upper}_DERIVED"),
                    dlq: format!("{upper}_DLQ"),
                    subject_prefix: tag.to_owned(),
                    ..self.nats.streams.clone()
                },
                ..self.nats.clone()
            },
            clickhouse: ClickHouseConfig {
                database: tag.to_owned(),
                ..self.clickhouse.clone()
            },
            redis: RedisConfig {
                key_prefix: format!("{tag}:"),
                ..self.redis.clone()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolated_names_everything_after_the_tag() {
        let base = Connections::default();
        let run = base.isolated("t_7");
        assert_eq!(run.nats.url, base.nats.url);
        assert_eq!(run.nats.streams.market, "T_7_MARKET");
        assert_eq!(run.nats.streams.dlq, "T_7_DLQ");
        assert_eq!(run.nats.streams.subject("md.trades.A"), "t_7.md.trades.A");
        assert_eq!(run.clickhouse.database, "t_7");
        assert_eq!(run.clickhouse.url, base.clickhouse.url);
        assert_eq!(run.redis.key_prefix, "t_7:");
    }

    #[test]
    fn every_stream_is_bounded_by_default() {
        let s = StreamsConfig::default();
        for (name, bytes) in [
            ("raw", s.raw_max_bytes),
            ("derived", s.derived_max_bytes),
            ("dlq", s.dlq_max_bytes),
        ] {
            assert!(bytes > 0, "{name}_max_bytes is unlimited by default");
        }
        for age in [s.raw_max_age_s, s.derived_max_age_s, s.dlq_max_age_s] {
            assert!(age > 0);
        }
        // Small enough for the local servers and the test harness: JetStream
        // reserves every stream's max_bytes up front.
        assert!(s.reserved_bytes() <= 3 * GIB, "{}", s.reserved_bytes());
    }

    #[test]
    fn limits_come_from_config() {
        let s: StreamsConfig = serde_json::from_str(
            r#"{"raw_max_bytes": 10, "derived_max_bytes": -1, "dlq_max_bytes": 30, "derived_max_age_s": 60}"#,
        )
        .unwrap();
        assert_eq!(
            (s.raw_max_bytes, s.derived_max_bytes, s.dlq_max_bytes),
            (10, -1, 30)
        );
        assert_eq!(s.derived_max_age_s, 60);
        assert_eq!(s.raw_max_age_s, StreamsConfig::default().raw_max_age_s);
        assert_eq!(s.reserved_bytes(), 50);
    }

    #[test]
    fn prefixes_round_trip() {
        let mut s = StreamsConfig::default();
        assert_eq!(s.subject("md.trades.A"), "md.trades.A");
        s.subject_prefix = "t42".into();
        assert_eq!(s.subject("md.trades.A"), "t42.md.trades.A");
        assert_eq!(s.strip_prefix("t42.md.trades.A"), Some("md.trades.A"));
        assert_eq!(s.strip_prefix("md.trades.A"), None);
    }

    #[test]
    fn clickhouse_timeouts_default_when_absent() {
        let config: ClickHouseConfig =
            serde_json::from_str(r#"{"url": "http://ch:8123"}"#).unwrap();
        assert_eq!(config.url, "http://ch:8123");
        assert_eq!(config.connect_timeout_ms, 2_000);
        assert_eq!(config.request_timeout_ms, 30_000);
        let config: ClickHouseConfig =
            serde_json::from_str(r#"{"connect_timeout_ms": 50, "request_timeout_ms": 900}"#)
                .unwrap();
        assert_eq!(
            (config.connect_timeout_ms, config.request_timeout_ms),
            (50, 900)
        );
        assert!(serde_json::from_str::<ClickHouseConfig>(r#"{"timeout_ms": 1}"#).is_err());
    }
}
