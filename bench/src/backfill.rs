//! `insite-bench backfill`: loading history, insite against Bytewax, in one
//! run over one generated file.
//!
//! 1. **The file.** A deterministic trades CSV in insite's native layout
//!    ([`tradefile`]): `--trades` trades (default 1,000,000) over
//!    `--symbols` symbols (50), one file sorted by time, consecutive trades
//!    1 to 2 ms apart, random-walk prices.
//! 2. **Bytewax** 0.21.1 ([`bytewax`]), in a virtualenv the benchmark
//!    creates under the target folder (reused when present): event-time
//!    1-minute OHLCV + VWAP + trade count with its `EventClock`,
//!    `TumblingWindower` and `fold_window`, bars written to a CSV, nothing
//!    durable. Timed from start to exit.
//! 3. **`insite backfill`** of the same file into a fresh database, as a
//!    child process, timed until it exits (which it does once every raw row
//!    and bar is durable in ClickHouse); then ClickHouse is checked: every
//!    trade in `trades`, and the 1-minute `bars FINAL`.
//! 4. **`insite ingest files`** of the same file into fresh streams, timed
//!    until it exits (every publish acknowledged); the stream is read back
//!    and its trades counted.
//! 5. Optionally (`--phases ...,pipeline`), a fresh **`insite pipeline
//!    run`** over that stream until every trade and the closed bars are in
//!    ClickHouse: the two-step path that `backfill` replaces ([`stream`]).
//! 6. **The check** ([`bars`]): insite's 1-minute bars equal Bytewax's for
//!    every symbol and window (open, high, low, close, volume and trade
//!    count exactly, VWAP within 1e-9 relative); differences are printed.
//!
//! It prints rates (trades/s), the ratios to Bytewax, peak memory and CPU
//! time of every child ([`measure`]), and the machine's load when it
//! started. It starts its own NATS, Redis and ClickHouse (unless all three
//! URLs are given), gives each phase its own streams and database
//! ([`Connections::isolated`](insite_schemas::config::Connections::isolated))
//! and removes them, and the file, at the end (`--keep-files` keeps the
//! file and Bytewax's output).

mod bars;
mod bytewax;
mod measure;
mod stream;
mod tradefile;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use insite_config::InsiteConfig;
use insite_schemas::config::Connections;

use self::bars::{BarSet, Comparison};
use self::measure::{children_cpu, wait_measured, Measured};
use self::stream::{PipelineRun, StreamCounts};
use self::tradefile::{TradeFile, TradeFileSpec};
use crate::child::{InsiteBinaryArgs, InsiteChild};
use crate::servers::{clean_up, BenchServers, ServerArgs};

/// The goal for `insite backfill`: this many times Bytewax's rate.
const BACKFILL_GOAL_RATIO: f64 = 5.0;

/// The goal for `insite ingest files`, trades/s.
const INGEST_GOAL_RATE: f64 = 500_000.0;

/// The phases after the file is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Bytewax 0.21.1 computing the 1-minute bars.
    Bytewax,
    /// `insite backfill` into ClickHouse.
    Backfill,
    /// `insite ingest files` into JetStream.
    Ingest,
    /// A fresh `insite pipeline run` over what `ingest` published.
    Pipeline,
}

/// Arguments of `insite-bench backfill`.
#[derive(Debug, Args)]
pub struct BenchBackfillArgs {
    #[command(flatten)]
    servers: ServerArgs,
    #[command(flatten)]
    insite: InsiteBinaryArgs,
    /// Trades in the generated file.
    #[arg(long, default_value_t = 1_000_000)]
    trades: u64,
    /// Symbols in the generated file.
    #[arg(long, default_value_t = 50)]
    symbols: usize,
    /// Seed of the generated file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Event time of the first trade (RFC 3339 or epoch ms).
    #[arg(long, default_value = "2024-03-04T14:30:00Z")]
    start: String,
    /// Phases to run, comma-separated (`pipeline` needs `ingest`).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "bytewax,backfill,ingest"
    )]
    phases: Vec<Phase>,
    /// The virtualenv for Bytewax (default: `bench-bytewax-venv` in the
    /// target folder).
    #[arg(long)]
    venv: Option<PathBuf>,
    /// Keep the generated file and Bytewax's output (the folder is
    /// printed).
    #[arg(long)]
    keep_files: bool,
    /// Longest any one phase may take, in seconds.
    #[arg(long, default_value_t = 600.0)]
    timeout_s: f64,
}

/// The machine's load when the benchmark started.
#[derive(Debug, Clone)]
struct Load {
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages.
    loadavg: String,
    /// CPUs available to this process.
    cpus: usize,
}

impl Load {
    fn now() -> Self {
        let loadavg = std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".to_owned());
        Self {
            loadavg,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        }
    }
}

/// `insite backfill`'s run and what ClickHouse held after it.
#[derive(Debug)]
struct BackfillRun {
    measured: Measured,
    /// `trades FINAL` rows.
    trades: u64,
    /// 1-minute `bars FINAL` rows.
    bars: BarSet,
}

/// `insite ingest files`' run and what the stream held after it.
#[derive(Debug)]
struct IngestRun {
    measured: Measured,
    counts: StreamCounts,
}

/// The pipeline over the ingested stream, and its bars.
#[derive(Debug)]
struct PipelineFigures {
    run: PipelineRun,
    bars: BarSet,
}

/// Everything measured.
#[derive(Debug, Default)]
struct Figures {
    file: Option<(TradeFile, Duration)>,
    bytewax: Option<(Measured, BarSet, u64)>,
    backfill: Option<BackfillRun>,
    ingest: Option<IngestRun>,
    pipeline: Option<PipelineFigures>,
}

/// Runs `insite-bench backfill`.
pub fn run(config: &InsiteConfig, args: BenchBackfillArgs) -> anyhow::Result<()> {
    let load = Load::now();
    let has = |p: Phase| args.phases.contains(&p);
    anyhow::ensure!(
        !has(Phase::Pipeline) || has(Phase::Ingest),
        "--phases pipeline needs ingest (it runs over what ingest published)"
    );
    let start_ms = insite_schemas::time::parse_time(&args.start)
        .map_err(|e| anyhow::anyhow!("--start {:?}: {e}", args.start))?;
    let timeout = Duration::try_from_secs_f64(args.timeout_s).context("--timeout-s")?;
    // Everything that can fail before the measurements, first.
    let needs_insite = has(Phase::Backfill) || has(Phase::Ingest);
    let insite = needs_insite.then(|| args.insite.binary()).transpose()?;
    let python = match has(Phase::Bytewax) {
        true => Some(bytewax::ensure_venv(
            &args.venv.clone().unwrap_or_else(bytewax::default_venv),
        )?),
        false => None,
    };
    let urls = needs_insite
        .then(|| BenchServers::start_or_use(config, "backfill", &args.servers))
        .transpose()?;
    let root = config.local.local_config().root;
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("bench-backfill-")
        .tempdir_in(&root)
        .context("creating the benchmark's folder")?;
    let runtime = crate::runtime()?;
    let mut figures = Figures::default();
    let result = phases(
        config,
        &args,
        Inputs {
            insite: insite.as_deref(),
            python: python.as_deref(),
            urls: urls.as_ref(),
            dir: dir.path(),
            start_ms,
            timeout,
        },
        &runtime,
        &mut figures,
    );
    print_figures(&args, &load, &figures);
    let result = result.and_then(|()| check(&figures));
    if args.keep_files {
        eprintln!("files kept in {}", dir.keep().display());
    }
    drop(runtime);
    drop(urls);
    result
}

/// What the phases run with.
struct Inputs<'a> {
    insite: Option<&'a Path>,
    python: Option<&'a Path>,
    urls: Option<&'a BenchServers>,
    dir: &'a Path,
    start_ms: i64,
    timeout: Duration,
}

fn phases(
    config: &InsiteConfig,
    args: &BenchBackfillArgs,
    inputs: Inputs<'_>,
    runtime: &tokio::runtime::Runtime,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let has = |p: Phase| args.phases.contains(&p);
    let id = std::process::id();
    let timeout = inputs.timeout;

    let trades = inputs.dir.join("trades.csv");
    let generating = Instant::now();
    let file = tradefile::generate(
        &trades,
        TradeFileSpec {
            trades: args.trades,
            symbols: args.symbols,
            seed: args.seed,
            start_ms: inputs.start_ms,
        },
    )?;
    eprintln!(
        "generated {} trades ({:.1} MB) in {:.2} s",
        file.trades,
        file.bytes as f64 / 1e6,
        generating.elapsed().as_secs_f64()
    );
    figures.file = Some((file, generating.elapsed()));

    if let Some(python) = inputs.python {
        let run = bytewax::run_ohlcv(python, &trades, inputs.dir, timeout)?;
        let bars = bars::read_bytewax(&run.bars)?;
        eprintln!(
            "Bytewax: {} bars in {:.2} s",
            bars.len(),
            run.measured.wall.as_secs_f64()
        );
        figures.bytewax = Some((run.measured, bars, run.late));
    }

    let (insite, urls) = match (inputs.insite, inputs.urls) {
        (Some(insite), Some(urls)) => (insite, urls),
        _ => return Ok(()),
    };

    if has(Phase::Backfill) {
        let services = urls.isolated(config, &format!("bb{id}_backfill"));
        let result = backfill(
            insite,
            config,
            &services,
            &trades,
            file.trades,
            timeout,
            runtime,
        );
        runtime.block_on(clean_up(&services));
        let run = result?;
        eprintln!(
            "insite backfill: {} trades, {} bars in {:.2} s",
            run.trades,
            run.bars.len(),
            run.measured.wall.as_secs_f64()
        );
        figures.backfill = Some(run);
    }

    if has(Phase::Ingest) {
        let tag = format!("bb{id}_ingest");
        let services = urls.isolated(config, &tag);
        let mut child_config = config.clone();
        child_config.set_connections(services.clone());
        child_config.pipeline.name = tag.clone();
        child_config.pipeline.consumer.market_durable = format!("{tag}-market");
        child_config.pipeline.consumer.social_durable = format!("{tag}-social");
        let result = (|| {
            let measured = stream::ingest_files(insite, &child_config, &trades, timeout)?;
            let counts = runtime.block_on(stream::count_stream(&services.nats))?;
            eprintln!(
                "insite ingest files: {} trades in {} messages in {:.2} s",
                counts.trades,
                counts.messages,
                measured.wall.as_secs_f64()
            );
            figures.ingest = Some(IngestRun { measured, counts });
            if has(Phase::Pipeline) {
                let run = runtime.block_on(stream::pipeline_run(
                    insite,
                    &child_config,
                    file.trades,
                    timeout,
                ))?;
                let client = insite_sinks::clickhouse::connect(&services.clickhouse);
                let bars = runtime.block_on(bars::read_insite(&client))?;
                eprintln!(
                    "insite pipeline run: {} closed bars in {:.2} s",
                    bars.len(),
                    run.elapsed.as_secs_f64()
                );
                figures.pipeline = Some(PipelineFigures { run, bars });
            }
            anyhow::Ok(())
        })();
        runtime.block_on(clean_up(&services));
        result?;
    }
    Ok(())
}

/// `insite backfill --trades <file> --database <fresh> --quiet` as a
/// child, then the check of what ClickHouse holds.
fn backfill(
    insite: &Path,
    config: &InsiteConfig,
    services: &Connections,
    trades: &Path,
    expected: u64,
    timeout: Duration,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<BackfillRun> {
    let mut child_config = config.clone();
    child_config.set_connections(services.clone());
    let file = trades
        .to_str()
        .context("the trades file's path is not UTF-8")?;
    let database = services.clickhouse.database.as_str();
    let cpu_before = children_cpu()?;
    let started = Instant::now();
    let mut child = InsiteChild::spawn(
        insite,
        "backfill",
        &child_config,
        &[
            "--log",
            "warn",
            "backfill",
            "--trades",
            file,
            "--database",
            database,
            "--quiet",
        ],
    )?;
    let pid = child.pid();
    let measured = wait_measured(
        "insite backfill",
        pid,
        || child.try_wait(),
        started,
        cpu_before,
        timeout,
    )?;
    let client = insite_sinks::clickhouse::connect(&services.clickhouse);
    let (rows, bars) = runtime.block_on(async {
        let rows = client
            .query("SELECT count() FROM trades FINAL")
            .fetch_one::<u64>()
            .await
            .context("counting the backfilled trades")?;
        anyhow::Ok((rows, bars::read_insite(&client).await?))
    })?;
    anyhow::ensure!(
        rows == expected,
        "after insite backfill exited, ClickHouse holds {rows} of the {expected} trades"
    );
    anyhow::ensure!(
        !bars.is_empty(),
        "after insite backfill exited, ClickHouse holds no 1-minute bars"
    );
    Ok(BackfillRun {
        measured,
        trades: rows,
        bars,
    })
}

/// An error if insite's output is not what it must be: every trade in
/// the stream, and backfilled bars equal to Bytewax's.
fn check(f: &Figures) -> anyhow::Result<()> {
    let Some((file, _)) = f.file else {
        return Ok(());
    };
    if let Some(i) = &f.ingest {
        anyhow::ensure!(
            i.counts.trades == file.trades,
            "the stream holds {} of the file's {} trades",
            i.counts.trades,
            file.trades
        );
    }
    if let (Some((_, reference, _)), Some(b)) = (&f.bytewax, &f.backfill) {
        let c = bars::compare(reference, &b.bars);
        anyhow::ensure!(
            c.identical(),
            "insite backfill's bars differ from Bytewax's: {c}"
        );
    }
    if let (Some((_, reference, _)), Some(p)) = (&f.bytewax, &f.pipeline) {
        let mut c = bars::compare(reference, &p.bars);
        without_last_windows(&mut c, reference);
        anyhow::ensure!(
            c.identical(),
            "the pipeline's bars differ from Bytewax's: {c}"
        );
    }
    Ok(())
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// The bars a pipeline stopped after its input could not have closed:
/// the last window of each symbol (nothing later moved the watermark past
/// its end).
fn without_last_windows(c: &mut Comparison, reference: &BarSet) -> usize {
    let mut last: std::collections::BTreeMap<&str, u64> = Default::default();
    for (symbol, start) in reference.keys() {
        last.insert(symbol.as_str(), *start);
    }
    let before = c.missing.len();
    c.missing
        .retain(|(symbol, start)| last.get(symbol.as_str()) != Some(start));
    before - c.missing.len()
}

fn print_figures(args: &BenchBackfillArgs, load: &Load, f: &Figures) {
    println!();
    println!(
        "backfill benchmark: load average {} at the start, {} CPUs",
        load.loadavg, load.cpus
    );
    let Some((file, generated)) = f.file else {
        return;
    };
    let span_s = (file.last_ms - file.first_ms) as f64 / 1_000.0;
    println!(
        "file: {} trades, {} symbols, {:.1} MB native CSV, {:.0} s of event time (seed {}), generated in {:.2} s",
        file.trades,
        args.symbols,
        file.bytes as f64 / 1e6,
        span_s,
        args.seed,
        generated.as_secs_f64()
    );
    println!();
    println!(
        "| system | what it does | seconds | trades/s | ratio to Bytewax | peak RSS MiB | CPU s |"
    );
    println!("|---|---|---|---|---|---|---|");
    let bytewax_rate = f
        .bytewax
        .as_ref()
        .map(|(m, _, _)| rate(file.trades, m.wall));
    let row = |system: &str, what: &str, wall: Duration, rss_mib: f64, cpu: Duration| {
        let r = rate(file.trades, wall);
        println!(
            "| {system} | {what} | {:.2} | {:.0} | {} | {:.0} | {:.2} |",
            wall.as_secs_f64(),
            r,
            bytewax_rate.map_or_else(|| "".to_owned(), |b| format!("{:.2}×", r / b)),
            rss_mib,
            cpu.as_secs_f64()
        );
    };
    if let Some((m, _, _)) = &f.bytewax {
        row(
            &format!("Bytewax {}", bytewax::BYTEWAX_VERSION),
            "CSV → event-time 1-minute OHLCV/VWAP, in memory, bars to a CSV, nothing durable",
            m.wall,
            m.peak_rss_mib(),
            m.cpu,
        );
    }
    if let Some(b) = &f.backfill {
        row(
            "insite",
            "`insite backfill` until every trade and bar is durable in ClickHouse",
            b.measured.wall,
            b.measured.peak_rss_mib(),
            b.measured.cpu,
        );
    }
    if let Some(i) = &f.ingest {
        row(
            "insite",
            "`insite ingest files` into JetStream, every publish acknowledged",
            i.measured.wall,
            i.measured.peak_rss_mib(),
            i.measured.cpu,
        );
    }
    if let Some(p) = &f.pipeline {
        row(
            "insite",
            "a fresh `insite pipeline run` over that stream until every trade and closed bar is in ClickHouse",
            p.run.elapsed,
            p.run.peak_rss_kib as f64 / 1024.0,
            p.run.cpu,
        );
    }
    println!();
    println!(
        "CPU s is the child's own user + system time (the servers' is not counted; the pipeline's includes its stop)."
    );
    if let (Some(b), Some(bx)) = (&f.backfill, bytewax_rate) {
        let ratio = rate(file.trades, b.measured.wall) / bx;
        println!(
            "insite backfill: {:.2}× Bytewax's rate (goal ≥ {BACKFILL_GOAL_RATIO}×: {})",
            ratio,
            if ratio >= BACKFILL_GOAL_RATIO {
                "met"
            } else {
                "not met"
            }
        );
    }
    if let Some(i) = &f.ingest {
        let r = rate(i.counts.trades, i.measured.wall);
        println!(
            "insite ingest files: {r:.0} trades/s in {} messages ({:.1} trades each), {} of {} trades in the stream (goal ≥ {INGEST_GOAL_RATE:.0} trades/s: {})",
            i.counts.messages,
            i.counts.trades as f64 / i.counts.messages.max(1) as f64,
            i.counts.trades,
            file.trades,
            if r >= INGEST_GOAL_RATE { "met" } else { "not met" }
        );
    }
    let Some((_, reference, late)) = &f.bytewax else {
        return;
    };
    println!();
    println!(
        "Bytewax: {} one-minute bars, {late} late trades",
        reference.len()
    );
    if let Some(b) = &f.backfill {
        let c = bars::compare(reference, &b.bars);
        println!(
            "insite backfill vs Bytewax: {c}: {}",
            if c.identical() {
                "identical"
            } else {
                "DIFFERENT"
            }
        );
        c.print_differences("backfill vs Bytewax", 10);
    }
    if let Some(p) = &f.pipeline {
        let mut c = bars::compare(reference, &p.bars);
        let open = without_last_windows(&mut c, reference);
        println!(
            "insite pipeline run vs Bytewax: {c} (leaving out the last window of each symbol, {open} in all, still open when it was stopped): {}",
            if c.identical() { "identical" } else { "DIFFERENT" }
        );
        c.print_differences("pipeline vs Bytewax", 10);
    }
}
