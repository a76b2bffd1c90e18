//! `insite-bench soak`: the whole live system at a steady rate for minutes,
//! sampled over time, to show that memory stays bounded and that disk
//! levels off at what retention allows.
//!
//! Starts its own NATS, Redis and ClickHouse on free loopback ports (under
//! `<local root>/bench-soak-<pid>`, removed afterwards), then three `insite`
//! children with the configured defaults (see [`crate::child`]):
//! `insite pipeline run`, `insite query serve` (asked for a latest bar and
//! an hour of bars once a second, so that it reads Redis and ClickHouse)
//! and `insite ingest synthetic --rate R`, with event time = now. Every
//! `--sample-s` it records:
//!
//! - each process's RSS and CPU (the three children and the three servers);
//! - each server's disk: the bytes allocated under its data folder;
//! - ClickHouse's parts in the soak's database (`system.parts`): active and
//!   outdated (replaced by a merge, not yet removed), count and bytes;
//! - the bytes JetStream holds per stream, and the messages the pipeline's
//!   consumers have not yet been given (is it keeping up?);
//! - the machine's load average.
//!
//! The samples are printed as a table and written as CSV to
//! `target/soak/soak-<label>.csv` (or `--out`); at the end, ClickHouse's
//! parts per table, and the RSS of every process and the disk of every
//! server over time drawn as SVG files under `--svg-dir`
//! ([`crate::plot::time_series`]). `--raw-max-bytes` and friends set the
//! streams' byte limits for the run, so that a soak of a few minutes shows
//! NATS levelling off at them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use insite_config::InsiteConfig;
use insite_local::server::{self, ServerKind};
use insite_schemas::config::{ClickHouseConfig, Connections, NatsConfig, RedisConfig};

use crate::child::{InsiteBinaryArgs, InsiteChild};
use crate::procstat::{cpu_percent, Sample};
use crate::servers::OwnServers;

/// Arguments of `insite-bench soak`.
#[derive(Debug, Args)]
pub struct BenchSoakArgs {
    /// The `insite` binary of the children.
    #[command(flatten)]
    insite: InsiteBinaryArgs,
    /// How long the feed runs, in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Market events (trades and quotes) per second published.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Symbols simulated.
    #[arg(long, default_value_t = 50)]
    symbols: usize,
    /// Seconds between samples.
    #[arg(long, default_value_t = 15.0)]
    sample_s: f64,
    /// A name for this run (in the CSV file's name and the summary).
    #[arg(long, default_value = "run")]
    label: String,
    /// Where the CSV goes (default: `target/soak/soak-<label>.csv`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// `nats.streams.raw_max_bytes` for the run (default: the config's).
    #[arg(long)]
    raw_max_bytes: Option<i64>,
    /// `nats.streams.derived_max_bytes` for the run (default: the config's).
    #[arg(long)]
    derived_max_bytes: Option<i64>,
    /// Where the SVG curves go (`soak-<label>-rss.svg`,
    /// `soak-<label>-disk.svg`).
    #[arg(long, default_value = "docs/bench")]
    svg_dir: PathBuf,
}

/// One process followed by the soak.
#[derive(Debug, Clone)]
struct Watched {
    /// A short name (`pipeline`, `clickhouse`, ...).
    name: &'static str,
    /// Its pid.
    pid: u32,
    /// The last sample, for CPU over the interval.
    last: Sample,
}

/// ClickHouse's parts of one table in one state.
#[derive(Debug, Clone, Copy, Default)]
struct Parts {
    /// Number of parts.
    count: u64,
    /// Bytes on disk.
    bytes: u64,
}

/// One sample of everything.
#[derive(Debug, Clone, Default)]
struct Row {
    /// Seconds since the feed started.
    t_s: f64,
    /// Per process: RSS MiB and CPU % of one core over the interval.
    processes: Vec<(f64, f64)>,
    /// Bytes allocated under each server's data folder (NATS, Redis,
    /// ClickHouse).
    disk: [u64; 3],
    /// Active parts over the soak's database.
    active: Parts,
    /// Outdated parts (replaced, still on disk).
    outdated: Parts,
    /// Bytes JetStream holds in MARKET, SOCIAL, DERIVED, DLQ.
    streams: [u64; 4],
    /// Messages not yet given to the pipeline's two consumers.
    undelivered: u64,
    /// 1-minute load average.
    load1: f64,
    /// Query probes answered and failed since the start.
    probes_ok: u64,
    /// Query probes that failed.
    probes_failed: u64,
}

/// Bytes allocated to the files under `dir` (what `du` counts).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    total
}

/// The 1-minute load average.
fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Parts per table in `database`: `(table, active, parts)`.
async fn parts(
    client: &clickhouse::Client,
    database: &str,
) -> anyhow::Result<Vec<(String, bool, Parts)>> {
    let rows = client
        .query(
            "SELECT table, toUInt8(active), toUInt64(count()), toUInt64(sum(bytes_on_disk)) \
             FROM system.parts WHERE database = ? GROUP BY table, active ORDER BY table, active",
        )
        .bind(database)
        .fetch_all::<(String, u8, u64, u64)>()
        .await?;
    Ok(rows
        .into_iter()
        .map(|(table, active, count, bytes)| (table, active == 1, Parts { count, bytes }))
        .collect())
}

/// Bytes per stream (0 for a stream not there yet) and messages not yet
/// delivered to the pipeline's consumers.
async fn streams(
    js: &async_nats::jetstream::Context,
    services: &Connections,
    config: &InsiteConfig,
) -> ([u64; 4], u64) {
    let s = &services.nats.streams;
    let mut bytes = [0; 4];
    for (slot, name) in bytes
        .iter_mut()
        .zip([&s.market, &s.social, &s.derived, &s.dlq])
    {
        if let Ok(mut stream) = js.get_stream(name).await {
            if let Ok(info) = stream.info().await {
                *slot = info.state.bytes;
            }
        }
    }
    let mut undelivered = 0;
    let consumer = &config.pipeline.consumer;
    for (stream, durable) in [
        (&s.market, &consumer.market_durable),
        (&s.social, &consumer.social_durable),
    ] {
        if let Ok(stream) = js.get_stream(stream).await {
            if let Ok(mut c) = stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(durable)
                .await
            {
                if let Ok(info) = c.info().await {
                    undelivered += info.num_pending;
                }
            }
        }
    }
    (bytes, undelivered)
}

const MIB: f64 = 1_048_576.0;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// The CSV header for `watched`.
fn csv_header(watched: &[Watched]) -> String {
    let mut h = String::from("t_s");
    for w in watched {
        let _ = write!(h, ",{0}_rss_mib,{0}_cpu_pct", w.name);
    }
    h.push_str(
        ",nats_disk_mib,redis_disk_mib,clickhouse_disk_mib,\
         active_parts,active_parts_mib,outdated_parts,outdated_parts_mib,\
         market_mib,social_mib,derived_mib,dlq_mib,undelivered_msgs,load1,probes_ok,probes_failed",
    );
    h
}

fn csv_line(row: &Row) -> String {
    let mut l = format!("{:.1}", row.t_s);
    for (rss, cpu) in &row.processes {
        let _ = write!(l, ",{rss:.1},{cpu:.1}");
    }
    let _ = write!(
        l,
        ",{:.1},{:.1},{:.1},{},{:.1},{},{:.1},{:.1},{:.1},{:.1},{:.1},{},{:.2},{},{}",
        mib(row.disk[0]),
        mib(row.disk[1]),
        mib(row.disk[2]),
        row.active.count,
        mib(row.active.bytes),
        row.outdated.count,
        mib(row.outdated.bytes),
        mib(row.streams[0]),
        mib(row.streams[1]),
        mib(row.streams[2]),
        mib(row.streams[3]),
        row.undelivered,
        row.load1,
        row.probes_ok,
        row.probes_failed,
    );
    l
}

/// The table's header for `watched`.
fn table_header(watched: &[Watched]) -> String {
    let mut h = String::from("| t s |");
    for w in watched {
        let _ = write!(h, " {} RSS MiB (CPU) |", w.name);
    }
    h.push_str(
        " NATS disk MiB | ClickHouse disk MiB | active parts (MiB) | outdated parts (MiB) | \
         streams MiB (M/S/D) | undelivered | load |\n|---|",
    );
    for _ in watched {
        h.push_str("---|");
    }
    h.push_str("---|---|---|---|---|---|---|");
    h
}

fn table_line(row: &Row) -> String {
    let mut l = format!("| {:.0} |", row.t_s);
    for (rss, cpu) in &row.processes {
        let _ = write!(l, " {rss:.0} ({cpu:.0}%) |");
    }
    let _ = write!(
        l,
        " {:.0} | {:.0} | {} ({:.0}) | {} ({:.0}) | {:.0}/{:.0}/{:.0} | {} | {:.2} |",
        mib(row.disk[0]),
        mib(row.disk[2]),
        row.active.count,
        mib(row.active.bytes),
        row.outdated.count,
        mib(row.outdated.bytes),
        mib(row.streams[0]),
        mib(row.streams[1]),
        mib(row.streams[2]),
        row.undelivered,
        row.load1,
    );
    l
}

/// A free loopback address.
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Runs `insite-bench soak`.
pub fn run(config: &InsiteConfig, args: BenchSoakArgs) -> anyhow::Result<()> {
    let insite = args.insite.binary()?;
    anyhow::ensure!(args.minutes > 0.0, "--minutes must be positive");
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let duration = Duration::try_from_secs_f64(args.minutes * 60.0).context("--minutes")?;
    let every = Duration::try_from_secs_f64(args.sample_s.max(1.0)).context("--sample-s")?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("target/soak/soak-{}.csv", args.label)));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    let own = OwnServers::start(config, "soak", &ServerKind::ALL)
        .context("starting NATS, Redis and ClickHouse for the soak")?;
    let local = own.local().clone();
    let mut child_config = config.clone();
    let mut nats = NatsConfig {
        url: local.nats_url(),
        ..NatsConfig::default()
    };
    nats.streams = config.nats.streams.clone();
    if let Some(bytes) = args.raw_max_bytes {
        nats.streams.raw_max_bytes = bytes;
    }
    if let Some(bytes) = args.derived_max_bytes {
        nats.streams.derived_max_bytes = bytes;
    }
    let services = Connections {
        nats,
        clickhouse: ClickHouseConfig {
            url: local.clickhouse_url(),
            ..config.clickhouse.clone()
        },
        redis: RedisConfig {
            url: local.redis_url(),
            ..config.redis.clone()
        },
    };
    child_config.set_connections(services.clone());

    let query_addr = free_addr()?;
    let metrics_addr = free_addr()?;
    let pipeline = InsiteChild::spawn(
        &insite,
        "pipeline",
        &child_config,
        &[
            "pipeline",
            "run",
            "--metrics-addr",
            &metrics_addr.to_string(),
            "--log",
            "warn",
        ],
    )?;
    let query = InsiteChild::spawn(
        &insite,
        "query",
        &child_config,
        &[
            "query",
            "serve",
            "--listen",
            &query_addr.to_string(),
            "--log",
            "warn",
        ],
    )?;
    let runtime = crate::runtime()?;
    let result = runtime.block_on(soak(
        &insite,
        &args,
        &child_config,
        &services,
        &local,
        [pipeline, query],
        query_addr,
        duration,
        every,
        &out,
    ));
    drop(runtime);
    drop(own);
    result
}

/// Starts the feed once the pipeline is consuming, samples until
/// `duration` has passed, stops everything.
#[allow(clippy::too_many_arguments)]
async fn soak(
    insite: &Path,
    args: &BenchSoakArgs,
    config: &InsiteConfig,
    services: &Connections,
    local: &insite_local::LocalConfig,
    children: [InsiteChild; 2],
    query_addr: SocketAddr,
    duration: Duration,
    every: Duration,
    out: &Path,
) -> anyhow::Result<()> {
    let [mut pipeline, mut query] = children;
    let js = insite_ingest::connect(&services.nats).await?;
    // The pipeline creates the streams and its consumers, and migrates.
    let ready = Instant::now();
    loop {
        let consumer_exists = match js.get_stream(&services.nats.streams.market).await {
            Ok(stream) => stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
                    &config.pipeline.consumer.market_durable,
                )
                .await
                .is_ok(),
            Err(_) => false,
        };
        if consumer_exists && crate::load::probe(query_addr, "/readyz").await {
            break;
        }
        if let Ok(Some(status)) = pipeline.try_wait() {
            anyhow::bail!("the pipeline child exited before it was ready: {status}");
        }
        if let Ok(Some(status)) = query.try_wait() {
            anyhow::bail!("the query child exited before it was ready: {status}");
        }
        anyhow::ensure!(
            ready.elapsed() < Duration::from_secs(120),
            "the pipeline and query service were not ready in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The synthetic feed's intraday curve is at the open for the whole
    // soak: divide by it so that the published rate is the asked one.
    let nominal = args.rate / crate::pipeline::OPEN_INTENSITY;
    let feed_seconds = format!("{}s", duration.as_secs().max(1));
    let mut feed = InsiteChild::spawn(
        insite,
        "ingest",
        config,
        &[
            "ingest",
            "synthetic",
            "--symbols",
            &args.symbols.to_string(),
            "--rate",
            &format!("{nominal:.1}"),
            "--duration",
            &feed_seconds,
            "--log",
            "warn",
        ],
    )?;
    let started = Instant::now();

    let mut watched = vec![
        Watched {
            name: "pipeline",
            pid: pipeline.pid(),
            last: Sample::take(pipeline.pid()),
        },
        Watched {
            name: "query",
            pid: query.pid(),
            last: Sample::take(query.pid()),
        },
        Watched {
            name: "ingest",
            pid: feed.pid(),
            last: Sample::take(feed.pid()),
        },
    ];
    for kind in ServerKind::ALL {
        if let Some(pid) = server::running_pid(local, kind) {
            watched.push(Watched {
                name: kind.name(),
                pid,
                last: Sample::take(pid),
            });
        }
    }
    let admin = insite_sinks::clickhouse::client_without_database(&services.clickhouse);
    let database = services.clickhouse.database.clone();

    // The query service is asked once a second for what a chart asks.
    let probes = std::sync::Arc::new((
        std::sync::atomic::AtomicU64::new(0),
        std::sync::atomic::AtomicU64::new(0),
    ));
    let prober = {
        let probes = probes.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let now = insite_schemas::time::now_ms();
                for path in [
                    "/v1/symbols/AAPL/bar?interval=1m".to_owned(),
                    format!("/v1/aggs/AAPL/range/1m/{}/{now}", now - 3_600_000),
                ] {
                    let slot = if crate::load::probe(query_addr, &path).await {
                        &probes.0
                    } else {
                        &probes.1
                    };
                    slot.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
    };

    println!(
        "soak '{}': {:.0} market events/s ({} symbols) for {:.1} min, a sample every {:.0} s; \
         servers under {}",
        args.label,
        args.rate,
        args.symbols,
        duration.as_secs_f64() / 60.0,
        every.as_secs_f64(),
        local.root.display()
    );
    println!("{}", table_header(&watched));
    let mut csv = csv_header(&watched);
    csv.push('\n');
    let mut rows = Vec::new();
    let mut per_table = Vec::new();
    let mut next = started + every;
    let end = started + duration;
    let mut failure = None;
    loop {
        tokio::time::sleep_until(next.min(end).into()).await;
        next += every;
        let last = Instant::now() >= end;
        let mut row = Row {
            t_s: started.elapsed().as_secs_f64(),
            ..Row::default()
        };
        for w in &mut watched {
            let sample = Sample::take(w.pid);
            row.processes
                .push((sample.rss_mib(), cpu_percent(w.last, sample)));
            w.last = sample;
        }
        for (slot, kind) in row.disk.iter_mut().zip(ServerKind::ALL) {
            *slot = disk_bytes(&local.root.join(kind.name()));
        }
        match parts(&admin, &database).await {
            Ok(tables) => {
                for (_, active, p) in &tables {
                    let sum = if *active {
                        &mut row.active
                    } else {
                        &mut row.outdated
                    };
                    sum.count += p.count;
                    sum.bytes += p.bytes;
                }
                per_table = tables;
            }
            Err(e) => eprintln!("system.parts: {e}"),
        }
        (row.streams, row.undelivered) = streams(&js, services, config).await;
        row.load1 = load1();
        row.probes_ok = probes.0.load(std::sync::atomic::Ordering::Relaxed);
        row.probes_failed = probes.1.load(std::sync::atomic::Ordering::Relaxed);
        println!("{}", table_line(&row));
        csv.push_str(&csv_line(&row));
        csv.push('\n');
        std::fs::write(out, &csv).with_context(|| format!("writing {}", out.display()))?;
        rows.push(row);
        for (name, child) in [
            ("pipeline", &mut pipeline),
            ("query", &mut query),
            ("ingest", &mut feed),
        ] {
            if let Ok(Some(status)) = child.try_wait() {
                if !(name == "ingest" && status.success()) {
                    failure = Some(format!("the {name} child exited: {status}"));
                }
            }
        }
        if last || failure.is_some() {
            break;
        }
    }
    prober.abort();
    let _ = feed.terminate(Duration::from_secs(10)).await;
    let _ = query.terminate(Duration::from_secs(20)).await;
    let stopped = pipeline.terminate(Duration::from_secs(60)).await;

    println!();
    println!("ClickHouse parts per table at the end:");
    println!("| table | active parts | active MiB | outdated parts | outdated MiB |");
    println!("|---|---|---|---|---|");
    let mut tables: Vec<&str> = per_table.iter().map(|(t, ..)| t.as_str()).collect();
    tables.dedup();
    for table in tables {
        let find = |active: bool| {
            per_table
                .iter()
                .find(|(t, a, _)| t == table && *a == active)
                .map(|(.., p)| *p)
                .unwrap_or_default()
        };
        let (a, o) = (find(true), find(false));
        println!(
            "| {table} | {} | {:.1} | {} | {:.1} |",
            a.count,
            mib(a.bytes),
            o.count,
            mib(o.bytes)
        );
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let peak = |i: usize| rows.iter().map(|r| r.processes[i].0).fold(0.0, f64::max);
        println!();
        println!("summary '{}' ({:.0} s):", args.label, last.t_s);
        for (i, w) in watched.iter().enumerate() {
            println!(
                "  {:<10} RSS {:.0} MiB at the first sample, {:.0} at the last, peak {:.0}",
                w.name,
                first.processes[i].0,
                last.processes[i].0,
                peak(i)
            );
        }
        let peak_ch = rows.iter().map(|r| r.disk[2]).max().unwrap_or(0);
        let peak_outdated = rows.iter().map(|r| r.outdated.count).max().unwrap_or(0);
        println!(
            "  ClickHouse disk {:.0} MiB at the end (peak {:.0}); active parts {} ({:.1} MiB), \
             outdated {} ({:.1} MiB, peak {} parts)",
            mib(last.disk[2]),
            mib(peak_ch),
            last.active.count,
            mib(last.active.bytes),
            last.outdated.count,
            mib(last.outdated.bytes),
            peak_outdated
        );
        println!(
            "  NATS disk {:.0} MiB at the end (streams {:.0}/{:.0}/{:.0}/{:.0} MiB); \
             undelivered {}; query probes {} ok, {} failed",
            mib(last.disk[0]),
            mib(last.streams[0]),
            mib(last.streams[1]),
            mib(last.streams[2]),
            mib(last.streams[3]),
            last.undelivered,
            last.probes_ok,
            last.probes_failed
        );
        println!("  samples written to {}", out.display());
        for svg in curves(args, &watched, &rows)? {
            println!("  curve written to {}", svg.display());
        }
    }
    if let Some(failure) = failure {
        anyhow::bail!(failure);
    }
    let stopped = stopped.context("stopping the pipeline child")?;
    anyhow::ensure!(
        stopped.is_some_and(|s| s.success()),
        "the pipeline child did not stop cleanly: {stopped:?}"
    );
    Ok(())
}

/// Draws the soak's RSS of every process and disk of every server over
/// time as SVG files under `--svg-dir`; their paths.
fn curves(args: &BenchSoakArgs, watched: &[Watched], rows: &[Row]) -> anyhow::Result<Vec<PathBuf>> {
    let rss: Vec<crate::plot::Series> = watched
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let points = rows.iter().map(|r| (r.t_s, r.processes[i].0)).collect();
            (w.name.to_owned(), points)
        })
        .collect();
    let mut disk: Vec<crate::plot::Series> = ServerKind::ALL
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let points = rows.iter().map(|r| (r.t_s, mib(r.disk[i]))).collect();
            (format!("{} data folder", kind.name()), points)
        })
        .collect();
    disk.push((
        "ClickHouse active parts".into(),
        rows.iter().map(|r| (r.t_s, mib(r.active.bytes))).collect(),
    ));
    disk.push((
        "ClickHouse outdated parts".into(),
        rows.iter()
            .map(|r| (r.t_s, mib(r.outdated.bytes)))
            .collect(),
    ));
    let title = |what: &str| {
        format!(
            "insite soak '{}' at {:.0} events/s: {what}",
            args.label, args.rate
        )
    };
    let rss_path = args.svg_dir.join(format!("soak-{}-rss.svg", args.label));
    crate::plot::time_series(&rss_path, &title("RSS per process"), "RSS, MiB", &rss)?;
    let disk_path = args.svg_dir.join(format!("soak-{}-disk.svg", args.label));
    crate::plot::time_series(&disk_path, &title("disk per server"), "MiB", &disk)?;
    Ok(vec![rss_path, disk_path])
}
