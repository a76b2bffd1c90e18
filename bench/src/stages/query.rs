//! `insite-bench stages query`: the query service at rising request rates.
//!
//! The service is the one `insite-bench query` drives
//! ([`SeededService`]: its own NATS, Redis and ClickHouse unless given by
//! URL, a day of 1-minute bars for `--symbols` symbols, their hot state in
//! Redis, a year of 5-minute bars for `--year-symbols` vendor symbols, and
//! `insite query serve` as a child process). After one cold pass over
//! every distinct history and vendor request (ClickHouse, then cached), each
//! stage offers one rate of `--rates` for `--stage-seconds`, open loop on
//! `--connections` keep-alive connections ([`http_phase`]: every request
//! has a send time fixed in advance, and its latency counts from that time,
//! so that a stalled service is not hidden by the generator waiting for
//! it), mixing by `--mix` (shares of hot, history, vendor):
//!
//! - hot reads: `/v1/symbols/S…/bar?interval=1m` and `/v1/symbols/S…/quote`
//!   alternately (Redis, or the service's memory);
//! - history: `/v1/aggs/S…/range/1m/<day>` (a day of 1-minute bars);
//! - vendor aggregates: `/v2/aggs/ticker/V…/range/1/day/…` (`--vendor-days`
//!   of days, 30 by default) and `/v2/aggs/ticker/V…/range/1/hour/…` (a
//!   week of hours).
//!
//! Per stage: offered and achieved req/s, avg/p50/p95/p99/max, the shares of
//! 2xx, 4xx, 5xx and transport errors, and the CPU and RSS of the service,
//! the generator (this process) and each server the benchmark started.
//! With 2 CPUs or more the generator runs on CPU 0 and the service on the
//! others ([`crate::pin`]); the servers are not pinned.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use clap::Args;
use insite_config::InsiteConfig;

use crate::child::InsiteBinaryArgs;
use crate::load::{http_phase, queue_phase, Paths};
use crate::pin::{pin, Pinning};
use crate::plot::{latency_curve, LatencyPoint};
use crate::procstat::{cpu_percent, load_average, Sample};
use crate::query::{symbol, vendor_symbol, wait_ready, Seed, SeededService, DAY};
use crate::servers::ServerArgs;
use crate::stages::{check_rates, knee, thousands, StagePoint};

/// Arguments of `insite-bench stages query`.
#[derive(Debug, Args)]
pub struct StagesQueryArgs {
    #[command(flatten)]
    servers: ServerArgs,
    #[command(flatten)]
    insite: InsiteBinaryArgs,
    /// Offered request rates of the stages, in the order run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100,1000,5000,10000,20000"
    )]
    rates: Vec<f64>,
    /// Seconds of each stage.
    #[arg(long, default_value_t = 10.0)]
    stage_seconds: f64,
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 128)]
    connections: usize,
    /// Shares of hot reads, history and vendor aggregates in the mix.
    #[arg(long, value_delimiter = ',', num_args = 3, default_value = "70,20,10")]
    mix: Vec<u32>,
    /// Symbols with a day of 1-minute bars and hot state.
    #[arg(long, default_value_t = 200)]
    symbols: usize,
    /// Vendor symbols with a year of 5-minute bars.
    #[arg(long, default_value_t = 4)]
    year_symbols: usize,
    /// Days of the vendor daily aggregates (a year by default; `bars` is
    /// partitioned by month, so a year's read opens 12 partitions).
    #[arg(long, default_value_t = 365)]
    vendor_days: i64,
    /// Where the SVG curve goes (`stages-query.svg`).
    #[arg(long, default_value = "docs/bench")]
    svg_dir: PathBuf,
    /// Do not pin the generator and the service to CPUs of their own.
    #[arg(long)]
    no_pin: bool,
}

/// The kinds of request in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The latest 1-minute bar.
    Bar,
    /// The latest quote.
    Quote,
    /// A day of 1-minute bars.
    History,
    /// A vendor aggregate.
    Vendor,
}

/// Distinct vendor requests (half a year of days, half a week of hours).
const VENDOR_DISTINCT: usize = 40;

/// The kind of the phase's `j`-th request for `mix` (shares of hot,
/// history, vendor): requests are spread over the mix's slots by a
/// multiplier prime to their number, so that every window of the mix's
/// size holds each kind in its share; hot slots alternate bar and quote.
pub fn kind(mix: [u32; 3], j: u64) -> Kind {
    let total = u64::from(mix[0]) + u64::from(mix[1]) + u64::from(mix[2]);
    if total == 0 {
        return Kind::Bar;
    }
    // 7919 is prime: prime to `total` unless a multiple of it.
    let step = if total.is_multiple_of(7_919) {
        1
    } else {
        7_919
    };
    let slot = j.wrapping_mul(step) % total;
    let (hot, history) = (u64::from(mix[0]), u64::from(mix[1]));
    if slot < hot {
        if slot.is_multiple_of(2) {
            Kind::Bar
        } else {
            Kind::Quote
        }
    } else if slot < hot + history {
        Kind::History
    } else {
        Kind::Vendor
    }
}

/// A day of 1-minute bars of symbol `i`.
fn history_path(i: usize) -> String {
    format!("/v1/aggs/{}/range/1m/{DAY}/{}", symbol(i), DAY + 86_400_000)
}

/// Distinct vendor request `i` (of [`VENDOR_DISTINCT`]) over `ys` symbols:
/// even ones `days` of daily bars, odd ones a week of hours, each distinct
/// by its end day.
fn vendor_path(i: usize, ys: usize, days: i64) -> String {
    let ys = ys.max(1);
    let k = i / 2;
    let end = DAY - (k / ys) as i64 * 86_400_000;
    let sym = vendor_symbol(k % ys);
    if i.is_multiple_of(2) {
        format!(
            "/v2/aggs/ticker/{sym}/range/1/day/{}/{end}",
            end - days * 86_400_000
        )
    } else {
        format!(
            "/v2/aggs/ticker/{sym}/range/1/hour/{}/{end}",
            end - 7 * 86_400_000
        )
    }
}

/// The path of the `j`-th request.
fn path(mix: [u32; 3], symbols: usize, year_symbols: usize, days: i64, j: u64) -> String {
    let spread = (j / 2) as usize;
    match kind(mix, j) {
        Kind::Bar => format!(
            "/v1/symbols/{}/bar?interval=1m",
            symbol(spread % symbols.max(1))
        ),
        Kind::Quote => format!("/v1/symbols/{}/quote", symbol(spread % symbols.max(1))),
        Kind::History => history_path(spread % symbols.max(1)),
        Kind::Vendor => vendor_path(spread % VENDOR_DISTINCT, year_symbols, days),
    }
}

/// One stage's figures.
#[derive(Debug)]
struct Row {
    offered: f64,
    phase: crate::load::Phase,
    /// Per server: name, CPU %, RSS MiB.
    servers: Vec<(String, f64, f64)>,
}

/// Runs `insite-bench stages query`.
pub fn run(config: &InsiteConfig, args: StagesQueryArgs) -> anyhow::Result<()> {
    check_rates(&args.rates)?;
    anyhow::ensure!(args.stage_seconds > 0.0, "--stage-seconds must be positive");
    anyhow::ensure!(args.connections > 0, "--connections must be positive");
    let mix = [args.mix[0], args.mix[1], args.mix[2]];
    anyhow::ensure!(mix.iter().sum::<u32>() > 0, "--mix is all zero");
    let insite = args.insite.binary()?;
    let pinning = if args.no_pin {
        None
    } else {
        Pinning::split(crate::pin::cpus())
    };
    let load_start = load_average();
    let runtime = match &pinning {
        Some(_) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?,
        None => crate::runtime()?,
    };
    let seeded = SeededService::start(
        config,
        &args.servers,
        &insite,
        Seed {
            symbols: args.symbols,
            year_symbols: args.year_symbols,
            vendor_symbols: 0,
        },
        &runtime,
    )?;
    let result = (|| {
        let pid = seeded.service.pid();
        if let Some(p) = &pinning {
            pin(std::process::id(), &p.generator)?;
            pin(pid, &p.service)?;
        }
        let rows = runtime.block_on(stages(&args, mix, seeded.addr, pid, &seeded))?;
        report(&args, mix, &rows, &load_start, pinning.as_ref())
    })();
    seeded.stop(&runtime);
    result
}

/// Readiness, the cold pass, then the stages.
async fn stages(
    args: &StagesQueryArgs,
    mix: [u32; 3],
    addr: SocketAddr,
    pid: u32,
    seeded: &SeededService,
) -> anyhow::Result<Vec<Row>> {
    let ready = wait_ready(addr).await?;
    println!(
        "service pid {pid} ready in {:.1} s; load average {}",
        ready.as_secs_f64(),
        load_average()
    );
    // The cold pass: each distinct history and vendor request once, 4 at
    // a time, so that the stages see the cached (immutable) answers as a
    // chart's users after the first would.
    let (n, ys, days) = (args.symbols, args.year_symbols, args.vendor_days);
    let next = Arc::new(AtomicUsize::new(0));
    let cold: Paths = Arc::new(move |_, _| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i < n {
            history_path(i)
        } else {
            vendor_path(i - n, ys, days)
        }
    });
    let cold = queue_phase("cold pass", addr, pid, 4, n + VENDOR_DISTINCT, cold).await?;
    println!(
        "cold pass: {} distinct history and vendor requests, p50 {:.1} ms, p99 {:.1} ms, 2xx {:.1} %",
        n + VENDOR_DISTINCT,
        cold.ms_at(0.5),
        cold.ms_at(0.99),
        cold.shares()[0]
    );
    let (symbols, connections) = (args.symbols, args.connections);
    let paths: Paths =
        Arc::new(move |task, i| path(mix, symbols, ys, days, i * connections as u64 + task as u64));
    // Warm-up of connections and code paths, not reported.
    http_phase(
        "warm-up",
        addr,
        pid,
        connections,
        1.0,
        Some(100.0),
        paths.clone(),
    )
    .await?;
    let servers = seeded.server_pids();
    let mut rows = Vec::new();
    for &rate in &args.rates {
        let before: Vec<Sample> = servers.iter().map(|(_, p)| Sample::take(*p)).collect();
        let phase = http_phase(
            &format!("{} req/s", thousands(rate)),
            addr,
            pid,
            connections,
            args.stage_seconds,
            Some(rate),
            paths.clone(),
        )
        .await?;
        let servers = servers
            .iter()
            .zip(before)
            .map(|((name, p), b)| {
                let a = Sample::take(*p);
                (name.clone(), cpu_percent(b, a), a.rss_mib())
            })
            .collect();
        eprintln!(
            "stage {} req/s: achieved {:.0}, p99 {:.2} ms; load average {}",
            thousands(rate),
            phase.rate(),
            phase.ms_at(0.99),
            load_average()
        );
        rows.push(Row {
            offered: rate,
            phase,
            servers,
        });
    }
    Ok(rows)
}

/// Prints the table and the knee, draws the curve.
fn report(
    args: &StagesQueryArgs,
    mix: [u32; 3],
    rows: &[Row],
    load_start: &str,
    pinning: Option<&Pinning>,
) -> anyhow::Result<()> {
    println!();
    println!(
        "staged query load: {} s per stage, {} connections, open loop, mix {}/{}/{} (hot/history/vendor), \
         {} symbols, {} vendor symbols ({}-day daily and 1-week hourly aggregates); {}; \
         load average {load_start} at the start, {} at the end",
        args.stage_seconds,
        args.connections,
        mix[0],
        mix[1],
        mix[2],
        args.symbols,
        args.year_symbols,
        args.vendor_days,
        match pinning {
            Some(p) => format!("generator on CPU {}, service on CPU {}", p.generator, p.service),
            None => "not pinned".into(),
        },
        load_average()
    );
    let server_names: Vec<&str> = rows
        .first()
        .map(|r| r.servers.iter().map(|(n, ..)| n.as_str()).collect())
        .unwrap_or_default();
    let mut header = String::from(
        "| offered req/s | achieved req/s | avg ms | p50 ms | p95 ms | p99 ms | max ms | 2xx % | 4xx % | 5xx % | errors % | service CPU, RSS MiB | generator CPU, RSS MiB |",
    );
    for name in &server_names {
        header.push_str(&format!(" {name} CPU, RSS MiB |"));
    }
    header.push_str("\n|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for _ in &server_names {
        header.push_str("---|");
    }
    println!("{header}");
    for r in rows {
        let p = &r.phase;
        let s = p.shares();
        let (cpu, rss) = p.service_usage();
        let (gcpu, grss) = p.generator_usage();
        let mut line = format!(
            "| {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {cpu:.0} %, {rss:.0} | {gcpu:.0} %, {grss:.0} |",
            thousands(r.offered),
            p.rate(),
            p.mean_ms(),
            p.ms_at(0.5),
            p.ms_at(0.95),
            p.ms_at(0.99),
            p.ms_at(1.0),
            s[0],
            s[1],
            s[2],
            s[3],
        );
        for (_, cpu, rss) in &r.servers {
            line.push_str(&format!(" {cpu:.0} %, {rss:.0} |"));
        }
        println!("{line}");
    }
    let points: Vec<StagePoint> = rows
        .iter()
        .map(|r| StagePoint {
            offered: r.offered,
            achieved: r.phase.rate(),
            p99_ms: r.phase.ms_at(0.99),
        })
        .collect();
    let knee = knee(&points);
    match knee {
        Some(k) => println!(
            "knee: {} req/s offered, {k}",
            thousands(points[k.stage].offered)
        ),
        None => println!("knee: none; every stage kept up (achieved ≥ 95 % of offered, p99 ≤ 5× the previous stage's)"),
    }
    let svg = args.svg_dir.join("stages-query.svg");
    let curve: Vec<LatencyPoint> = rows
        .iter()
        .map(|r| LatencyPoint {
            offered: r.offered,
            p50_ms: r.phase.ms_at(0.5),
            p99_ms: r.phase.ms_at(0.99),
        })
        .collect();
    latency_curve(
        &svg,
        "insite query service: latency against offered load (open loop)",
        "req/s",
        &curve,
        knee.map(|k| k.stage),
    )?;
    println!("curve written to {}", svg.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_holds_each_kind_in_its_share() {
        let mix = [70, 20, 10];
        let mut counts = [0usize; 4];
        for j in 0..10_000 {
            let i = match kind(mix, j) {
                Kind::Bar => 0,
                Kind::Quote => 1,
                Kind::History => 2,
                Kind::Vendor => 3,
            };
            counts[i] += 1;
        }
        assert_eq!(counts, [3_500, 3_500, 2_000, 1_000]);
        // Every window of 100 consecutive requests too.
        let window: Vec<Kind> = (500..600).map(|j| kind(mix, j)).collect();
        assert_eq!(window.iter().filter(|k| **k == Kind::Vendor).count(), 10);
    }

    #[test]
    fn the_mix_is_spread_not_in_runs() {
        // A run of 70 hot reads then 30 others would load ClickHouse's
        // cache path in bursts; the spread interleaves them.
        let kinds: Vec<Kind> = (0..100).map(|j| kind([70, 20, 10], j)).collect();
        let longest_hot_run = kinds
            .split(|k| matches!(k, Kind::History | Kind::Vendor))
            .map(<[Kind]>::len)
            .max()
            .unwrap_or(0);
        assert!(longest_hot_run < 20, "a run of {longest_hot_run} hot reads");
    }

    #[test]
    fn paths_are_the_service_routes() {
        let mix = [1, 1, 1];
        let paths: Vec<String> = (0..6).map(|j| path(mix, 200, 4, 30, j)).collect();
        assert!(paths.iter().any(|p| p.starts_with("/v1/symbols/S")));
        assert!(paths.iter().any(|p| p.starts_with("/v1/aggs/S")));
        assert!(paths.iter().any(|p| p.starts_with("/v2/aggs/ticker/V")));
        assert!(vendor_path(1, 4, 30).contains("/range/1/hour/"));
        assert!(vendor_path(0, 4, 30).contains("/range/1/day/"));
    }
}
