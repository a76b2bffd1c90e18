//! # insite-config
//!
//! The one typed config of insite: defaults, then a TOML file, then
//! `INSITE_*` environment variables (`__` separates levels). Every error in
//! any layer is reported at start-up, with the key that is wrong.
//!
//! Two binaries load it: `insite` (every subcommand) and `insite-bench`.
//! The benchmarks also write it back ([`InsiteConfig::write_file`]) as the
//! `--config` file of the `insite` processes they start, so a child runs
//! with exactly the parent's typed settings.
//!
//! ## Layout
//! - [`InsiteConfig`]: every section; [`LocalSection`]: `[local]`.
//! - [`load`]: the layered load; [`load_as`]: the same for one insite
//!   component ([`Role`]), with the local stack's generated passwords
//!   filled in where the config sets none; [`ConfigError`]: what can go
//!   wrong.
//! - `cluster`: [`InsiteConfig::for_cluster`], the config of the insite
//!   processes of the local cluster.

mod cluster;
mod secrets;

pub use secrets::load_as;

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
pub use insite_local::Role;
use insite_schemas::config::{ClickHouseConfig, Connections, NatsConfig, RedisConfig};
use serde::{Deserialize, Serialize};

/// Every setting of every stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InsiteConfig {
    /// NATS and its streams.
    pub nats: NatsConfig,
    /// ClickHouse.
    pub clickhouse: ClickHouseConfig,
    /// Redis.
    pub redis: RedisConfig,
    /// The local servers of `insite services`.
    pub local: LocalSection,
    /// The dataflow job.
    pub pipeline: insite_pipeline::PipelineConfig,
    /// The query service (`insite query serve`).
    pub query: insite_query::QueryConfig,
}

impl InsiteConfig {
    /// The `[nats]`, `[clickhouse]` and `[redis]` sections as one bundle.
    pub fn connections(&self) -> Connections {
        Connections {
            nats: self.nats.clone(),
            clickhouse: self.clickhouse.clone(),
            redis: self.redis.clone(),
        }
    }

    /// Replaces the `[nats]`, `[clickhouse]` and `[redis]` sections.
    pub fn set_connections(&mut self, connections: Connections) {
        let Connections {
            nats,
            clickhouse,
            redis,
        } = connections;
        self.nats = nats;
        self.clickhouse = clickhouse;
        self.redis = redis;
    }

    /// Writes this config as a TOML file that [`load`] reads back to the
    /// same value (the `--config` of a child `insite` process).
    pub fn write_file(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string(self).map_err(ConfigError::Encode)?;
        std::fs::write(path, text).map_err(|source| ConfigError::Write {
            path: path.to_owned(),
            source,
        })
    }
}

/// Why the config could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config` names a file that is not there.
    #[error("config file {} does not exist", .0.display())]
    MissingFile(PathBuf),
    /// A layer holds an unknown key or a value of the wrong type.
    #[error("invalid configuration (defaults, then the config file, then INSITE_* variables)")]
    Invalid(#[source] Box<figment::Error>),
    /// The config could not be put into TOML (a bug).
    #[error("encoding the config as TOML")]
    Encode(#[source] toml::ser::Error),
    /// The local stack's secrets file is there but cannot be used.
    #[error("the local stack's secrets")]
    Secrets(#[source] insite_local::LocalError),
    /// The file could not be written.
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where `insite services` keeps local servers and which ports they use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalSection {
    /// Data folder (relative paths are from the current directory).
    pub root: PathBuf,
    /// NATS port.
    pub nats_port: u16,
    /// Redis port.
    pub redis_port: u16,
    /// ClickHouse HTTP port.
    pub clickhouse_http_port: u16,
    /// ClickHouse native TCP port (the interserver port is this plus 9).
    pub clickhouse_tcp_port: u16,
}

impl Default for LocalSection {
    fn default() -> Self {
        let ports = insite_local::LocalConfig::new(".insite");
        Self {
            root: PathBuf::from(".insite"),
            nats_port: ports.nats_port,
            redis_port: ports.redis_port,
            clickhouse_http_port: ports.clickhouse_http_port,
            clickhouse_tcp_port: ports.clickhouse_tcp_port,
        }
    }
}

impl LocalSection {
    /// The local servers' config.
    pub fn local_config(&self) -> insite_local::LocalConfig {
        let mut local = insite_local::LocalConfig::new(&self.root);
        local.nats_port = self.nats_port;
        local.redis_port = self.redis_port;
        local.clickhouse_http_port = self.clickhouse_http_port;
        local.clickhouse_tcp_port = self.clickhouse_tcp_port;
        local.clickhouse_interserver_port = self.clickhouse_tcp_port.saturating_add(9);
        local
    }
}

/// Loads the config: defaults, then `file` (if given), then the environment.
///
/// A server URL that neither the file nor the environment sets follows
/// `[local]`'s port for that server, so that a local stack moved to other
/// ports (`INSITE_LOCAL__CLICKHOUSE_HTTP_PORT=...`) is the one every
/// command reaches, as the default stack is by default.
pub fn load(file: Option<&Path>) -> Result<InsiteConfig, ConfigError> {
    load_with_explicit(file).map(|(config, _)| config)
}

/// [`load`], and the settings the file and the environment give
/// themselves (without the defaults), for the layers that fill in only
/// what the config leaves out.
fn load_with_explicit(file: Option<&Path>) -> Result<(InsiteConfig, Figment), ConfigError> {
    let figment = Figment::from(Serialized::defaults(InsiteConfig::default()));
    let explicit = layered(Figment::new(), file)?;
    let mut config: InsiteConfig = layered(figment, file)?
        .extract()
        .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
    follow_local_ports(&mut config, &|key| explicit.contains(key));
    Ok((config, explicit))
}

/// Points every server URL that `set` says the config leaves out at the
/// local stack's port for it.
fn follow_local_ports(config: &mut InsiteConfig, set: &dyn Fn(&str) -> bool) {
    let local = config.local.local_config();
    if !set("nats.url") {
        config.nats.url = local.nats_url();
    }
    if !set("redis.url") && !config.redis.cluster {
        config.redis.url = local.redis_url();
    }
    if !set("clickhouse.url") {
        config.clickhouse.url = local.clickhouse_url();
    }
}

/// `figment` with the file (if given), then the environment, merged on top.
fn layered(mut figment: Figment, file: Option<&Path>) -> Result<Figment, ConfigError> {
    if let Some(file) = file {
        if !file.is_file() {
            return Err(ConfigError::MissingFile(file.to_owned()));
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    // Every setting sits in a section, so its variable has a `__`
    // (`INSITE_NATS__URL`); other INSITE_* variables (INSITE_CONFIG,
    // INSITE_LOG, ...) are not settings.
    Ok(figment.merge(
        Env::prefixed("INSITE_")
            .filter(|key| key.as_str().contains("__"))
            .split("__"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("insite.toml");
        std::fs::write(&path, "[clickhouse]\ndatabase = \"analytics\"\n").unwrap();
        let config = load(Some(&path)).unwrap();
        assert_eq!(config.clickhouse.database, "analytics");
        assert_eq!(config.nats, NatsConfig::default());

        std::fs::write(&path, "[clickhouse]\ndatabse = \"typo\"\n").unwrap();
        let err = load(Some(&path)).unwrap_err();
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            source.as_deref().is_some_and(|s| s.contains("databse")),
            "{err}: {source:?}"
        );
    }

    #[test]
    fn server_urls_left_out_follow_the_local_stacks_ports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("insite.toml");
        std::fs::write(
            &path,
            "[local]\nnats_port = 21001\nredis_port = 21002\nclickhouse_http_port = 21003\n\
             [clickhouse]\nurl = \"http://10.0.0.5:8123\"\n",
        )
        .unwrap();
        let config = load(Some(&path)).unwrap();
        assert_eq!(config.nats.url, "nats://127.0.0.1:21001");
        assert_eq!(config.redis.url, "redis://127.0.0.1:21002/0");
        // A URL the config gives itself is kept.
        assert_eq!(config.clickhouse.url, "http://10.0.0.5:8123");

        // With the default ports, the default URLs.
        std::fs::write(&path, "").unwrap();
        let config = load(Some(&path)).unwrap();
        assert_eq!(config.nats, NatsConfig::default());
        assert_eq!(config.clickhouse.url, ClickHouseConfig::default().url);
    }

    #[test]
    fn written_file_loads_back_to_the_same_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("child.toml");
        let mut config = InsiteConfig::default();
        config.set_connections(Connections::default().isolated("t_1"));
        config.pipeline.name = "t_1".into();
        config.query.stream.client_queue = 64;
        config.write_file(&path).unwrap();
        assert_eq!(load(Some(&path)).unwrap(), config);
    }
}
