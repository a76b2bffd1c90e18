//! Bytewax, the reference: a virtualenv with `bytewax==0.21.1` from PyPI
//! (created by the benchmark under the target folder, reused when it
//! already holds that version) running `bench/bytewax/ohlcv.py` (compiled
//! into this binary and written next to the data) over the trades file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::measure::{children_cpu, wait_measured, Measured};

/// The Bytewax version measured.
pub const BYTEWAX_VERSION: &str = "0.21.1";

/// The dataflow script.
const OHLCV_PY: &str = include_str!("../../bytewax/ohlcv.py");

/// The default virtualenv: `bench-bytewax-venv` in the target folder this
/// executable was built into (`target/<profile>/insite-bench`), else in
/// the working directory's `target/`.
pub fn default_venv() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("bench-bytewax-venv")
}

/// The venv's Python, after making sure it holds Bytewax
/// [`BYTEWAX_VERSION`] (creating the venv with `python3 -m venv` and
/// installing with its pip when not).
pub fn ensure_venv(venv: &Path) -> anyhow::Result<PathBuf> {
    let python = venv.join("bin").join("python");
    if installed_version(&python).as_deref() == Some(BYTEWAX_VERSION) {
        return Ok(python);
    }
    if !python.is_file() {
        eprintln!("creating the virtualenv {}", venv.display());
        run(Command::new("python3").arg("-m").arg("venv").arg(venv))
            .context("creating the Bytewax virtualenv (is python3-venv installed?)")?;
    }
    eprintln!(
        "installing bytewax=={BYTEWAX_VERSION} into {}",
        venv.display()
    );
    run(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("bytewax=={BYTEWAX_VERSION}"),
    ]))
    .context("installing Bytewax from PyPI")?;
    let found = installed_version(&python);
    anyhow::ensure!(
        found.as_deref() == Some(BYTEWAX_VERSION),
        "the virtualenv {} holds bytewax {found:?} after installing {BYTEWAX_VERSION}",
        venv.display()
    );
    Ok(python)
}

/// The bytewax version `python` imports, if any.
fn installed_version(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('bytewax'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    anyhow::ensure!(status.success(), "{command:?} failed: {status}");
    Ok(())
}

/// What Bytewax wrote.
#[derive(Debug)]
pub struct BytewaxRun {
    /// Time, memory and CPU of the Python process.
    pub measured: Measured,
    /// Its bars CSV (`symbol,window_start_ms,open,high,low,close,volume,vwap,trades`).
    pub bars: PathBuf,
    /// Trades its clock found late.
    pub late: u64,
}

/// Runs the dataflow over `trades` with `python`, writing into `dir`.
pub fn run_ohlcv(
    python: &Path,
    trades: &Path,
    dir: &Path,
    timeout: Duration,
) -> anyhow::Result<BytewaxRun> {
    let script = dir.join("ohlcv.py");
    std::fs::write(&script, OHLCV_PY).with_context(|| format!("writing {}", script.display()))?;
    let bars = dir.join("bytewax-bars.csv");
    let late = dir.join("bytewax-late.csv");
    let cpu_before = children_cpu()?;
    let started = Instant::now();
    let mut child = Command::new(python)
        .arg(&script)
        .arg(trades)
        .arg(&bars)
        .arg(&late)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
    let pid = child.id();
    let measured = wait_measured(
        "the Bytewax dataflow",
        pid,
        || child.try_wait(),
        started,
        cpu_before,
        timeout,
    );
    if measured.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let measured = measured?;
    let late = std::fs::read_to_string(&late)
        .with_context(|| format!("reading {}", late.display()))?
        .lines()
        .filter(|l| !l.is_empty())
        .count() as u64;
    Ok(BytewaxRun {
        measured,
        bars,
        late,
    })
}
