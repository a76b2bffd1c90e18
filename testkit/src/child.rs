//! Config files for `insite` child processes.
//!
//! A test or benchmark that runs `insite pipeline run` (or any other
//! command) as a process hands it a TOML file written from the same typed
//! config the process parses, so the child sees exactly the servers, names
//! and settings of the parent's run, and no key is spelled by hand.

use std::path::{Path, PathBuf};

use insite_pipeline::PipelineConfig;
use insite_schemas::config::Connections;
use serde::Serialize;

/// The sections of an `insite` config file that a child needs.
#[derive(Debug, Serialize)]
struct ChildConfig<'a> {
    nats: &'a insite_schemas::config::NatsConfig,
    clickhouse: &'a insite_schemas::config::ClickHouseConfig,
    redis: &'a insite_schemas::config::RedisConfig,
    pipeline: &'a PipelineConfig,
}

/// Why a child's config could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ChildConfigError {
    /// The config could not be put into TOML (a bug).
    #[error("encoding the child config: {0}")]
    Encode(#[from] toml::ser::Error),
    /// The file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The TOML text of a config file holding `connections` and `pipeline`.
pub fn config_toml(
    connections: &Connections,
    pipeline: &PipelineConfig,
) -> Result<String, toml::ser::Error> {
    toml::to_string(&ChildConfig {
        nats: &connections.nats,
        clickhouse: &connections.clickhouse,
        redis: &connections.redis,
        pipeline,
    })
}

/// Writes `<dir>/<name>.toml` holding `connections` and `pipeline`, for a
/// child's `--config`, and returns its path.
pub fn write_config(
    dir: &Path,
    name: &str,
    connections: &Connections,
    pipeline: &PipelineConfig,
) -> Result<PathBuf, ChildConfigError> {
    let text = config_toml(connections, pipeline)?;
    let path = dir.join(format!("{name}.toml"));
    std::fs::create_dir_all(dir).map_err(|source| ChildConfigError::Write {
        path: dir.to_owned(),
        source,
    })?;
    std::fs::write(&path, text).map_err(|source| ChildConfigError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
