//! `insite-bench stages pipeline`: the pipeline at rising event rates
//! until it saturates.
//!
//! Each stage is the live phase of `insite-bench pipeline`
//! ([`crate::pipeline::live`]) at one rate of `--rates`, on its own
//! streams, database and key prefix (servers started once, or given by
//! URL): a pipeline in this process, fed by the synthetic feed (also in
//! this process) with event time = now; after `--warmup-seconds`, the
//! pipeline's own histogram of event time → Redis write of every trade for
//! `--stage-seconds`. Per stage:
//!
//! - offered events/s; published (what the feed achieved); consumed (the
//!   published rate less the share of messages the pipeline's consumers
//!   had not yet been given when the feed stopped: a backlog it did not
//!   keep up with);
//! - event → Redis p50/p95/p99/max;
//! - CPU and RSS of this process (pipeline and feed together) and of each
//!   server the benchmark started.
//!
//! The knee ([`crate::stages::knee`]) compares consumed with offered; the
//! run stops `--past-knee` stages after it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use insite_config::InsiteConfig;

use crate::pipeline::{live, phase_pipeline, Live, LiveLoad};
use crate::plot::{latency_curve, LatencyPoint};
use crate::procstat::{cpu_percent, load_average};
use crate::servers::{clean_up, BenchServers, ServerArgs};
use crate::stages::{check_rates, knee, thousands, StagePoint};

/// Arguments of `insite-bench stages pipeline`.
#[derive(Debug, Args)]
pub struct StagesPipelineArgs {
    #[command(flatten)]
    servers: ServerArgs,
    /// Offered market events per second of the stages, in the order run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5000,10000,20000,40000,80000"
    )]
    rates: Vec<f64>,
    /// Seconds measured per stage, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    stage_seconds: f64,
    /// Seconds of warm-up per stage (not measured).
    #[arg(long, default_value_t = 3.0)]
    warmup_seconds: f64,
    /// Symbols simulated.
    #[arg(long, default_value_t = 50)]
    symbols: usize,
    /// Ingest's event-time batch slice, ms.
    #[arg(long, default_value_t = 10)]
    slice_ms: i64,
    /// Timely workers of the pipeline (default: `pipeline.workers`).
    #[arg(long)]
    workers: Option<usize>,
    /// Stages run after the knee (to show the curve past it) before the
    /// run stops.
    #[arg(long, default_value_t = 1)]
    past_knee: usize,
    /// Longest any one stage may take, in seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout_s: f64,
    /// Where the SVG curve goes (`stages-pipeline.svg`).
    #[arg(long, default_value = "docs/bench")]
    svg_dir: PathBuf,
}

/// One stage's figures.
#[derive(Debug)]
struct Row {
    offered: f64,
    live: Live,
}

/// Runs `insite-bench stages pipeline`.
pub fn run(config: &InsiteConfig, args: StagesPipelineArgs) -> anyhow::Result<()> {
    check_rates(&args.rates)?;
    let warmup = Duration::try_from_secs_f64(args.warmup_seconds).context("--warmup-seconds")?;
    let measured = Duration::try_from_secs_f64(args.stage_seconds).context("--stage-seconds")?;
    let timeout = Duration::try_from_secs_f64(args.timeout_s).context("--timeout-s")?;
    let load_start = load_average();
    let urls = BenchServers::start_or_use(config, "stages", &args.servers)?;
    let mut names = vec!["insite-bench (pipeline + feed)".to_owned()];
    let mut pids = vec![std::process::id()];
    for (name, pid) in urls.server_pids() {
        names.push(name);
        pids.push(pid);
    }
    let runtime = crate::runtime()?;
    let mut rows: Vec<Row> = Vec::new();
    let mut failure = None;
    for (i, &rate) in args.rates.iter().enumerate() {
        let tag = format!("bs{}_{i}", std::process::id());
        let services = urls.isolated(config, &tag);
        let pipeline = phase_pipeline(config, args.workers, &tag);
        let load = LiveLoad {
            symbols: args.symbols,
            rate,
            warmup,
            measured,
            slice_ms: args.slice_ms,
        };
        let result = runtime.block_on(async {
            let r = live(&services, &pipeline, load, timeout, &pids).await;
            clean_up(&services).await;
            r
        });
        match result {
            Ok(live) => {
                eprintln!(
                    "stage {} events/s: published {:.0}, consumed {:.0}, p99 {:.1} ms; load average {}",
                    thousands(rate),
                    live.published_rate(),
                    live.consumed_rate(),
                    live.hist().value_at_quantile(0.99) as f64 / 1_000.0,
                    load_average()
                );
                rows.push(Row {
                    offered: rate,
                    live,
                });
            }
            Err(e) => {
                failure = Some(e.context(format!("the stage at {rate} events/s")));
                break;
            }
        }
        let k = knee(&points(&rows));
        if k.is_some_and(|k| rows.len() > k.stage + args.past_knee) {
            break;
        }
    }
    drop(runtime);
    drop(urls);
    report(&args, &rows, &names, &load_start)?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn ms(live: &Live, q: f64) -> f64 {
    live.hist().value_at_quantile(q) as f64 / 1_000.0
}

fn points(rows: &[Row]) -> Vec<StagePoint> {
    rows.iter()
        .map(|r| StagePoint {
            offered: r.offered,
            achieved: r.live.consumed_rate(),
            p99_ms: ms(&r.live, 0.99),
        })
        .collect()
}

/// Prints the table and the knee, draws the curve.
fn report(
    args: &StagesPipelineArgs,
    rows: &[Row],
    names: &[String],
    load_start: &str,
) -> anyhow::Result<()> {
    println!();
    println!(
        "staged pipeline load: {} s measured per stage after {} s warm-up, {} symbols, ingest batch slice {} ms, {} workers; \
         load average {load_start} at the start, {} at the end",
        args.stage_seconds,
        args.warmup_seconds,
        args.symbols,
        args.slice_ms,
        args.workers
            .map_or_else(|| "configured".to_owned(), |w| w.to_string()),
        load_average()
    );
    let mut header = String::from(
        "| offered events/s | published events/s | consumed events/s | undelivered msgs at the end | trades measured | p50 ms | p95 ms | p99 ms | max ms |",
    );
    for name in names {
        header.push_str(&format!(" {name} CPU, RSS MiB |"));
    }
    header.push_str("\n|---|---|---|---|---|---|---|---|---|");
    for _ in names {
        header.push_str("---|");
    }
    println!("{header}");
    for r in rows {
        let l = &r.live;
        let mut line = format!(
            "| {} | {:.0} | {:.0} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            thousands(r.offered),
            l.published_rate(),
            l.consumed_rate(),
            l.undelivered
                .map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
            l.hist().len(),
            ms(l, 0.5),
            ms(l, 0.95),
            ms(l, 0.99),
            l.hist().max() as f64 / 1_000.0,
        );
        for (before, after) in &l.usage {
            line.push_str(&format!(
                " {:.0} %, {:.0} |",
                cpu_percent(*before, *after),
                after.rss_mib()
            ));
        }
        println!("{line}");
    }
    let points = points(rows);
    let knee = knee(&points);
    match knee {
        Some(k) => println!(
            "knee: {} events/s offered, {k}",
            thousands(points[k.stage].offered)
        ),
        None => println!(
            "knee: none up to {} events/s; every stage kept up (consumed ≥ 95 % of offered, p99 ≤ 5× the previous stage's)",
            thousands(points.last().map_or(0.0, |p| p.offered))
        ),
    }
    if rows.is_empty() {
        return Ok(());
    }
    let svg = args.svg_dir.join("stages-pipeline.svg");
    let curve: Vec<LatencyPoint> = rows
        .iter()
        .map(|r| LatencyPoint {
            offered: r.offered,
            p50_ms: ms(&r.live, 0.5),
            p99_ms: ms(&r.live, 0.99),
        })
        .collect();
    latency_curve(
        &svg,
        "insite pipeline: event → Redis latency against offered event rate",
        "events/s",
        &curve,
        knee.map(|k| k.stage),
    )?;
    println!("curve written to {}", svg.display());
    Ok(())
}
