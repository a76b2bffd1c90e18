//! `insite` as a child process: its config file, and starting and stopping
//! `insite pipeline run`.
//!
//! A test or benchmark that runs `insite pipeline run` (or any other
//! command) as a process hands it a TOML file written from the same typed
//! config the process parses, so the child sees exactly the servers, names
//! and settings of the parent's run, and no key is spelled by hand.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
    // It may hold passwords: only its owner may read it. Written aside and
    // renamed into place, so that a child started a moment earlier from the
    // same file (the processes of one cluster) never reads it half written.
    let aside = dir.join(format!(
        ".{name}.toml.{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::write(&aside, "")
        .and_then(|()| {
            std::fs::set_permissions(&aside, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        })
        .and_then(|()| std::fs::write(&aside, text))
        .and_then(|()| std::fs::rename(&aside, &path))
        .map_err(|source| ChildConfigError::Write {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// Starts `<insite> --config <file> pipeline run --no-metrics <extra>`, with
/// `<file>` written from `connections` and `config` (see [`write_config`])
/// into a folder of this test process; `insite` is the binary (in a test of
/// the `insite` crate, `env!("CARGO_BIN_EXE_insite")`).
///
/// # Panics
/// If the config cannot be written or the process cannot be started.
pub fn spawn_pipeline(
    insite: &Path,
    connections: &Connections,
    config: &PipelineConfig,
    extra: &[String],
) -> Child {
    let dir = std::env::temp_dir().join(format!("insite-child-{}", std::process::id()));
    let connections = crate::as_role(connections, insite_local::Role::Pipeline);
    let file =
        write_config(&dir, &config.name, &connections, config).expect("writing the child's config");
    Command::new(insite)
        .arg("--config")
        .arg(&file)
        .args(["pipeline", "run", "--no-metrics"])
        .args(extra)
        .env("INSITE_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("starting insite pipeline run")
}

/// Stops pipeline processes the way an operator does (SIGTERM to every
/// process of a cluster at once) and checks that each exits cleanly.
///
/// # Panics
/// If a signal cannot be sent or a process exits unsuccessfully.
pub fn terminate(children: Vec<Child>) {
    for child in &children {
        let pid = i32::try_from(child.id()).expect("a pid fits in i32");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("sending SIGTERM");
    }
    for mut child in children {
        let status = child.wait().expect("waiting for the pipeline process");
        assert!(status.success(), "pipeline exited with {status}");
    }
}
