//! `insite` as a child process of a benchmark, so that its CPU and memory
//! are its own.
//!
//! The binary is `insite` beside this executable (both are built into the
//! same `target/<profile>/`), or the one given with `--insite PATH`. The
//! child gets its settings as a `--config` TOML file written from the typed
//! [`InsiteConfig`] (never as hand-built environment variables), and the
//! parent's `INSITE_<SECTION>__<KEY>` variables are removed from its
//! environment, so that the file, which already holds them, is the whole
//! story. The child is killed when its [`InsiteChild`] is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use insite_config::InsiteConfig;

/// The `--insite PATH` of a benchmark that starts `insite` processes.
#[derive(Debug, clap::Args)]
pub struct InsiteBinaryArgs {
    /// The `insite` binary to run as a child process (default: `insite`
    /// beside this executable).
    #[arg(long = "insite", value_name = "PATH")]
    insite: Option<PathBuf>,
}

impl InsiteBinaryArgs {
    /// The `insite` binary: `--insite`, or `insite` beside this executable;
    /// an error saying how to build it if it is not there.
    pub fn binary(&self) -> anyhow::Result<PathBuf> {
        let path = match &self.insite {
            Some(path) => path.clone(),
            None => std::env::current_exe()
                .context("locating this executable")?
                .with_file_name("insite"),
        };
        anyhow::ensure!(
            path.is_file(),
            "the insite binary {} is missing: build it with `cargo build --release -p insite` \
             (the same profile as insite-bench), or give its path with --insite PATH",
            path.display()
        );
        Ok(path)
    }
}

/// A running `insite` child, killed (if still running) on drop.
#[derive(Debug)]
pub struct InsiteChild {
    child: Child,
    /// Holds the child's config file for as long as the child runs.
    _config_dir: tempfile::TempDir,
}

impl InsiteChild {
    /// Starts `<binary> --config <file> <args>`, the file written from
    /// `config` (named `<name>.toml` in a temporary folder), with stdin
    /// closed.
    pub fn spawn(
        binary: &Path,
        name: &str,
        config: &InsiteConfig,
        args: &[&str],
    ) -> anyhow::Result<Self> {
        let config_dir = tempfile::Builder::new()
            .prefix("insite-bench-")
            .tempdir()
            .context("creating a folder for the child's config")?;
        let file = config_dir.path().join(format!("{name}.toml"));
        config.write_file(&file)?;
        let mut command = Command::new(binary);
        command
            .arg("--config")
            .arg(&file)
            .args(args)
            .stdin(Stdio::null());
        for (key, _) in std::env::vars_os() {
            if let Some(text) = key.to_str() {
                if text.starts_with("INSITE_") && text.contains("__") {
                    command.env_remove(&key);
                }
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {} {}", binary.display(), args.join(" ")))?;
        Ok(Self {
            child,
            _config_dir: config_dir,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it has exited (reaping it), `None` while it runs.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Stops it the way an operator does (SIGTERM) and waits up to `grace`
    /// for it to exit; its exit status, `None` if it is still running.
    pub async fn terminate(&mut self, grace: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let pid = i32::try_from(self.pid()).context("child pid")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .context("sending SIGTERM to the child")?;
        let stopping = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) && stopping.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(self.child.try_wait()?)
    }
}

impl Drop for InsiteChild {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
