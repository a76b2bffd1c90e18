//! The one typed config of insite: defaults, then a TOML file, then
//! `INSITE_*` environment variables (`__` separates levels). Every error in
//! any layer is reported at start-up, with the key that is wrong.

use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use insite_schemas::config::{ClickHouseConfig, NatsConfig, RedisConfig};
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
}

/// Where `insite services` keeps local servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalSection {
    /// Data folder (relative paths are from the current directory).
    pub root: PathBuf,
}

impl Default for LocalSection {
    fn default() -> Self {
        Self {
            root: PathBuf::from(".insite"),
        }
    }
}

/// Loads the config: defaults, then `file` (if given), then the environment.
pub fn load(file: Option<&Path>) -> anyhow::Result<InsiteConfig> {
    let mut figment = Figment::from(Serialized::defaults(InsiteConfig::default()));
    if let Some(file) = file {
        anyhow::ensure!(file.is_file(), "config file {} does not exist", file.display());
        figment = figment.merge(Toml::file_exact(file));
    }
    figment = figment.merge(Env::prefixed("INSITE_").split("__").ignore(&["CONFIG", "LOG"]));
    figment
        .extract()
        .context("invalid configuration (defaults, then the config file, then INSITE_* variables)")
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
        let err = format!("{:#}", load(Some(&path)).unwrap_err());
        assert!(err.contains("databse"), "{err}");
    }
}
