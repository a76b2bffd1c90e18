//! `insite-bench query`: the query service under load, on loopback.
//!
//! Starts its own NATS, Redis and ClickHouse (under the local root, removed
//! afterwards) unless all three URLs are given, fills ClickHouse with one
//! day of 1-minute bars per symbol and Redis with each symbol's hot state
//! (bars and a quote, as the pipeline's sinks write them), then starts
//! `insite query serve` as a child process (all of which is
//! [`SeededService`], shared with `stages query`), so that its CPU and
//! memory are its own, and drives
//! it from this process with the HTTP/1.1 load generator of [`crate::load`]
//! (one keep-alive connection per task, latencies in HDR histograms):
//!
//! 1. latest bar (Redis path): peak, closed loop; then a fixed request rate
//!    (open loop, latency measured from each request's scheduled time, so a
//!    stall is not hidden by the generator waiting);
//! 2. one day of 1-minute bars (1,440): cold (first request per symbol:
//!    ClickHouse with `FINAL`, answer written back to Redis), then warm
//!    (the cached, immutable answer);
//! 3. `redis-benchmark -t get` against the same Redis, the floor of the
//!    Redis path; and the HTTP floor ([`crate::floor`]: a bare hyper
//!    server answering a fixed body of the latest-bar answer's size)
//!    under the same generator, peak and fixed rate, with the ratios;
//! 4. WebSocket fan-out: N clients subscribed to one symbol's bars, bars
//!    published to DERIVED at a fixed rate, publish-to-client latency; and
//!    the same clients and messages against the WebSocket floor (a bare
//!    tokio-tungstenite broadcast server), with the ratio of the p99s.
//! 5. the vendor-compatible API: a one-year daily and a one-week hourly
//!    aggregate (rolled up from a year of 5-minute bars), cold (each
//!    distinct request's first time: ClickHouse) and warm (the cached
//!    durable answer); the grouped daily bars of `--vendor-symbols`
//!    symbols; and the WebSocket fan-out again with the vendor's protocol
//!    (`/stocks`, `AM` events of final 1-minute bars).
//!
//! Every phase reports avg/p50/p95/p99/max, throughput, 4xx/5xx and
//! transport errors, the service's CPU (share of one core) and RSS, and
//! the load generator's own CPU. With 2 CPUs or more the generator (this
//! process) is pinned to CPU 0 and the service and floor processes to the
//! others ([`crate::pin`]), so that neither starves the other; `--no-pin`
//! leaves scheduling to the kernel. `--phases` picks the phases.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use insite_config::InsiteConfig;
use insite_schemas::config::{ClickHouseConfig, Connections, NatsConfig, RedisConfig};
use insite_schemas::{Bar, Finality, Interval, Symbol};
use insite_sinks::clickhouse::rows::BarRow;
use insite_sinks::clickhouse::{TableWriter, WriterConfig};
use insite_sinks::nats::{Derived, DerivedPublisher};
use insite_sinks::redis::{HotUpdate, RedisSink, RedisSinkConfig};

use crate::child::{InsiteBinaryArgs, InsiteChild};
use crate::load::{histogram, http_phase, queue_phase, Paths, HEADER};
use crate::pin::{pin, Pinning};
use crate::procstat::{cpu_percent, cpu_seconds, load_average, Sample};
use crate::servers::{BenchServers, ServerArgs};

/// Arguments of `insite-bench query`.
#[derive(Debug, Args)]
pub struct BenchQueryArgs {
    #[command(flatten)]
    servers: ServerArgs,
    #[command(flatten)]
    insite: InsiteBinaryArgs,
    /// Seconds of each HTTP phase.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests per second of the fixed-rate phase.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Symbols filled (one day of 1-minute bars each).
    #[arg(long, default_value_t = 200)]
    symbols: usize,
    /// WebSocket clients (0: skip the WebSocket phase).
    #[arg(long, default_value_t = 10_000)]
    ws_clients: usize,
    /// Bars published in the WebSocket phase.
    #[arg(long, default_value_t = 100)]
    ws_messages: usize,
    /// Bars published per second in the WebSocket phase.
    #[arg(long, default_value_t = 10.0)]
    ws_rate: f64,
    /// Symbols with a year of 5-minute bars (vendor aggregates phases).
    #[arg(long, default_value_t = 4)]
    year_symbols: usize,
    /// Symbols with a day of 5-minute bars (vendor grouped daily phase).
    #[arg(long, default_value_t = 100)]
    vendor_symbols: usize,
    /// Phases to run: any of `latest` (latest bar and its HTTP floor),
    /// `history`, `vendor` (the vendor REST phases), `ws` (WebSocket
    /// fan-out and its floor).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "latest,history,vendor,ws"
    )]
    phases: Vec<String>,
    /// Do not pin: by default, with 2 CPUs or more, this process (the load
    /// generator) runs on CPU 0 and the service and the floors on the
    /// others.
    #[arg(long)]
    no_pin: bool,
}

impl BenchQueryArgs {
    /// Whether phase `name` is to run.
    fn runs(&self, name: &str) -> bool {
        self.phases.iter().any(|p| p == name)
    }
}

/// The key the vendor WebSocket clients authenticate with.
const VENDOR_KEY: &str = "bench-vendor-key";

/// A vendor-phase symbol.
pub(crate) fn vendor_symbol(i: usize) -> String {
    format!("V{i:04}")
}

/// A year of regular-session 5-minute bars (14:30..21:00 UTC, weekdays)
/// ending with `DAY`, for `year_symbols` symbols; that last day for
/// `day_symbols` symbols.
async fn fill_vendor(
    year_symbols: usize,
    day_symbols: usize,
    clickhouse: &ClickHouseConfig,
) -> anyhow::Result<()> {
    let client = insite_sinks::clickhouse::connect(clickhouse);
    let mut writer = TableWriter::<BarRow>::new(client, "bars", WriterConfig::default());
    let session = |day: i64| (0..78).map(move |k| day + 52_200_000 + k * 300_000);
    for i in 0..year_symbols.max(day_symbols) {
        let sym = Symbol::new(&vendor_symbol(i))?;
        let days = if i < year_symbols { 365 } else { 1 };
        for d in (0..days).rev() {
            let day = DAY - d * 86_400_000;
            // 1970-01-01 was a Thursday: day numbers 2 and 3 (mod 7) are
            // Saturday and Sunday.
            if matches!((day / 86_400_000).rem_euclid(7), 2 | 3) {
                continue;
            }
            for (k, start) in session(day).enumerate() {
                let mut bar = day_bar(&sym, k as i64, Finality::Final, start);
                bar.interval = Interval::FIVE_MINUTES;
                writer.push(BarRow::from_bar(&bar, 1));
            }
        }
        writer.flush().await?;
    }
    Ok(())
}

/// 2023-11-14T00:00:00Z: the day of history.
pub(crate) const DAY: i64 = 1_699_920_000_000;

/// A symbol with a day of history and hot state.
pub(crate) fn symbol(i: usize) -> String {
    format!("S{i:04}")
}

fn day_bar(sym: &Symbol, minute: i64, finality: Finality, window_start: i64) -> Bar {
    let base = 100.0 + (minute % 97) as f64 * 0.1;
    Bar {
        symbol: sym.clone(),
        interval: Interval::MINUTE,
        window_start,
        open: base,
        high: base + 1.0,
        low: base - 1.0,
        close: base + 0.5,
        volume: 1_000 + minute as u64,
        vwap: base + 0.2,
        trades: 10,
        finality,
    }
}

async fn fill(
    symbols: usize,
    clickhouse: &ClickHouseConfig,
    redis: &RedisConfig,
    pipeline: &str,
) -> anyhow::Result<()> {
    insite_sinks::clickhouse::migrate(clickhouse).await?;
    let client = insite_sinks::clickhouse::connect(clickhouse);
    // The day of history is final and durable, as a pipeline that got past
    // it records: its ranges are immutable, so the warm phase is cached.
    // Past the end of the day in New York too (05:00 UTC the next day),
    // which ends the vendor's day buckets and grouped daily.
    insite_pipeline::resume::ProgressStore::new(client.clone(), pipeline, 0, 1)
        .save_pipeline(
            insite_pipeline::source::InputSource::Market,
            insite_pipeline::resume::StreamCheckpoint {
                durable_ms: Some(DAY + 2 * 86_400_000),
                resume_seq: 0,
                max_ts: None,
            },
        )
        .await?;
    let mut writer = TableWriter::<BarRow>::new(client, "bars", WriterConfig::default());
    let mut sink = RedisSink::connect(redis, RedisSinkConfig::default()).await?;
    let now = insite_schemas::time::now_ms();
    let current = Interval::MINUTE.window_start(now);
    for i in 0..symbols {
        let sym = Symbol::new(&symbol(i))?;
        for m in 0..1_440 {
            let bar = day_bar(&sym, m, Finality::Final, DAY + m * 60_000);
            writer.push(BarRow::from_bar(&bar, 1));
        }
        writer.flush().await?;
        for m in (1..=500).rev() {
            sink.push(HotUpdate::Bar(day_bar(
                &sym,
                m,
                Finality::Final,
                current - m * 60_000,
            )))?;
        }
        sink.push(HotUpdate::Bar(day_bar(
            &sym,
            0,
            Finality::Provisional,
            current,
        )))?;
        sink.push(HotUpdate::Quote(insite_schemas::Quote {
            symbol: sym.clone(),
            ts: now,
            bid: 100.0,
            bid_size: 300,
            ask: 100.02,
            ask_size: 200,
        }))?;
        sink.flush().await?;
    }
    Ok(())
}

/// Raises the open-file limit (the WebSocket phase holds two sockets per
/// client in this machine: ours and the service's).
fn raise_nofile(want: u64) -> u64 {
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    if soft >= want {
        return soft;
    }
    // Root may raise the hard limit too.
    if rlimit::Resource::NOFILE.set(want, want.max(hard)).is_ok() {
        return want;
    }
    let _ = rlimit::Resource::NOFILE.set(hard, hard);
    rlimit::Resource::NOFILE
        .get()
        .map(|(s, _)| s)
        .unwrap_or(soft)
}

/// Outcome of the WebSocket phase.
struct WsOutcome {
    clients: usize,
    connect_failures: usize,
    hist: Histogram<u64>,
    expected: u64,
    received: u64,
    cpu: f64,
    rss_mib: f64,
    connect_secs: f64,
    client_cpu: f64,
    /// The service's CPU seconds over the phase (all deliveries' cost).
    cpu_secs: f64,
    /// The clients' CPU seconds over the phase.
    client_cpu_secs: f64,
}

/// The WebSocket protocol a phase speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WsProtocol {
    /// insite's `/v1/stream`: `bars.1m` of `S0000`.
    V1,
    /// The vendor's `/stocks`: `AM.S0000` (final 1-minute bars).
    Vendor,
}

async fn ws_phase(
    addr: SocketAddr,
    pid: u32,
    nats: &NatsConfig,
    args: &BenchQueryArgs,
    protocol: WsProtocol,
) -> anyhow::Result<WsOutcome> {
    let sym = Symbol::new(&symbol(0))?;
    // Publish times in µs since `epoch` (0: not yet published).
    let epoch = Instant::now();
    let sent: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.ws_messages).map(|_| AtomicU64::new(0)).collect());
    let hist = Arc::new(Mutex::new(histogram()?));
    let received = Arc::new(AtomicU64::new(0));
    let subscribed = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let connect_start = Instant::now();
    let mut tasks = Vec::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    for _ in 0..args.ws_clients {
        let (sent, hist, received, subscribed, failures, stop, gate) = (
            sent.clone(),
            hist.clone(),
            received.clone(),
            subscribed.clone(),
            failures.clone(),
            stop.clone(),
            gate.clone(),
        );
        let expected = args.ws_messages;
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let path = match protocol {
                WsProtocol::V1 => "/v1/stream",
                WsProtocol::Vendor => "/stocks",
            };
            let Ok((mut ws, _)) =
                tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await
            else {
                failures.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let ops: Vec<String> = match protocol {
                WsProtocol::V1 => {
                    vec![r#"{"op":"subscribe","symbols":["S0000"],"kinds":["bars.1m"]}"#.into()]
                }
                WsProtocol::Vendor => {
                    // The greeting comes first.
                    if !matches!(ws.next().await, Some(Ok(_))) {
                        failures.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    vec![
                        format!(r#"{{"action":"auth","params":"{VENDOR_KEY}"}}"#),
                        r#"{"action":"subscribe","params":"AM.S0000"}"#.into(),
                    ]
                }
            };
            for op in ops {
                if ws.send(op.into()).await.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                // Each op is done once its reply arrives.
                if !matches!(ws.next().await, Some(Ok(_))) {
                    failures.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            drop(permit);
            subscribed.fetch_add(1, Ordering::Relaxed);
            let mut local = match histogram() {
                Ok(h) => h,
                Err(_) => return,
            };
            let mut got = 0;
            while got < expected {
                let next = tokio::select! {
                    () = stop.cancelled() => break,
                    m = ws.next() => m,
                };
                let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) = next else {
                    break;
                };
                let now = epoch.elapsed().as_micros();
                // The sequence number travels in `trades` (the vendor's
                // `v`, the volume, there).
                let field = match protocol {
                    WsProtocol::V1 => "\"trades\":",
                    WsProtocol::Vendor => "\"v\":",
                };
                let at = number_after(&text, field)
                    .and_then(|seq| sent.get(seq))
                    .map(|at| at.load(Ordering::Acquire))
                    .filter(|&at| at > 0);
                if let Some(at) = at {
                    let us = u64::try_from(now)
                        .unwrap_or(u64::MAX)
                        .saturating_sub(at)
                        .max(1);
                    local.saturating_record(us);
                }
                got += 1;
            }
            // Counted once per client, not per message: a shared counter
            // touched 100,000 times a second would cost the generator more
            // than the reads it counts.
            received.fetch_add(local.len(), Ordering::Relaxed);
            if let Ok(mut h) = hist.lock() {
                let _ = h.add(&local);
            }
        }));
    }
    // Wait until every client is subscribed (or failed).
    loop {
        let done = subscribed.load(Ordering::Relaxed) + failures.load(Ordering::Relaxed);
        if done >= args.ws_clients {
            break;
        }
        if connect_start.elapsed() > Duration::from_secs(300) {
            anyhow::bail!(
                "only {done} of {} WebSocket clients connected in 300 s",
                args.ws_clients
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();
    let clients = subscribed.load(Ordering::Relaxed);
    println!(
        "  {clients} WebSocket clients subscribed in {connect_secs:.1} s ({} failed)",
        failures.load(Ordering::Relaxed)
    );

    let client = insite_sinks::nats::connect(nats, "insite-bench").await?;
    let js = async_nats::jetstream::new(client);
    insite_sinks::streams::ensure_streams(&js, &nats.streams).await?;
    let mut publisher = DerivedPublisher::new(js, nats.streams.clone(), 64);
    let before = Sample::take(pid);
    let own_before = Sample::take(std::process::id());
    let period = Duration::from_secs_f64(1.0 / args.ws_rate.max(0.1));
    let start = Instant::now();
    let current = Interval::MINUTE.window_start(insite_schemas::time::now_ms());
    for seq in 0..args.ws_messages {
        tokio::time::sleep_until((start + period.mul_f64(seq as f64)).into()).await;
        let bar = match protocol {
            WsProtocol::V1 => {
                let mut bar = day_bar(&sym, 0, Finality::Provisional, current);
                bar.trades = seq as u64;
                bar
            }
            // Final 1-minute bars are the vendor's `AM` events.
            WsProtocol::Vendor => {
                let mut bar = day_bar(&sym, 0, Finality::Final, current - 60_000 * seq as i64);
                bar.volume = seq as u64;
                bar.trades = 1;
                bar
            }
        };
        let at = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        sent[seq].store(at.max(1), Ordering::Release);
        publisher.publish(&Derived::Bar(bar)).await?;
    }
    publisher.flush().await?;
    let expected = (clients * args.ws_messages) as u64;
    let wait_start = Instant::now();
    while received.load(Ordering::Relaxed) < expected
        && wait_start.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = Sample::take(pid);
    let own_after = Sample::take(std::process::id());
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let hist = hist
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?
        .clone();
    Ok(WsOutcome {
        clients,
        connect_failures: failures.load(Ordering::Relaxed),
        hist,
        expected,
        received: received.load(Ordering::Relaxed),
        cpu: cpu_percent(before, after),
        rss_mib: after.rss_kib.max(before.rss_kib) as f64 / 1024.0,
        connect_secs,
        client_cpu: cpu_percent(own_before, own_after),
        cpu_secs: cpu_seconds(before, after),
        client_cpu_secs: cpu_seconds(own_before, own_after),
    })
}

/// The number after `field` (`"trades":`) in a pushed message, found
/// without parsing the whole message (the generator must stay cheaper than
/// what it measures).
fn number_after(text: &str, field: &str) -> Option<usize> {
    let rest = &text[text.find(field)? + field.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn redis_benchmark(redis_url: &str) -> String {
    let rest = redis_url.trim_start_matches("redis://");
    let hostport = rest.split('/').next().unwrap_or(rest);
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    let out = Command::new("redis-benchmark")
        .args([
            "-h", host, "-p", port, "-t", "get", "-n", "400000", "-c", "64", "-q",
        ])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines()
                .filter_map(|l| l.rsplit('\r').next())
                .filter(|l| l.starts_with("GET"))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        }
        Ok(out) => format!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("redis-benchmark not run: {e}"),
    }
}

/// Runs `insite-bench query`.
pub fn run(config: &InsiteConfig, args: BenchQueryArgs) -> anyhow::Result<()> {
    let insite = args.insite.binary()?;
    let nofile = raise_nofile(65_536);
    let pinning = if args.no_pin {
        None
    } else {
        Pinning::split(crate::pin::cpus())
    };
    println!(
        "load average at the start: {}; {} CPUs; {}",
        load_average(),
        crate::pin::cpus(),
        match &pinning {
            Some(p) => format!(
                "generator pinned to CPU {}, service and floors to CPU {}",
                p.generator, p.service
            ),
            None => "not pinned".into(),
        }
    );
    // Pinned, the generator has one CPU: one worker thread, not two
    // taking turns on it.
    let runtime = match &pinning {
        Some(_) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?,
        None => crate::runtime()?,
    };
    let year_symbols = if args.runs("vendor") {
        args.year_symbols
    } else {
        0
    };
    let vendor_symbols = if args.runs("vendor") {
        args.vendor_symbols
    } else {
        0
    };
    let seeded = SeededService::start(
        config,
        &args.servers,
        &insite,
        Seed {
            symbols: args.symbols,
            year_symbols,
            vendor_symbols,
        },
        &runtime,
    )?;
    let (services, child_config, addr) = (
        seeded.services.clone(),
        seeded.child_config.clone(),
        seeded.addr,
    );
    let (nats, redis) = (&services.nats, &services.redis);
    let pid = seeded.service.pid();
    // The floors, as a process of their own: this executable's `floor`.
    let free_port = || -> anyhow::Result<SocketAddr> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
    };
    let (floor_http, floor_ws, floor_ws_raw) = (free_port()?, free_port()?, free_port()?);
    let mut floor: Option<InsiteChild> = None;
    if let Some(p) = &pinning {
        pin(std::process::id(), &p.generator)?;
        pin(pid, &p.service)?;
    }

    let result = runtime.block_on(async {
        let ready = wait_ready(addr).await?;
        println!(
            "service pid {pid} ready in {:.1} s (RSS {:.0} MiB); open-file limit {nofile}",
            ready.as_secs_f64(),
            Sample::take(pid).rss_mib()
        );
        // The floor answers a body of the latest-bar answer's size.
        let body = crate::load::get_text(addr, &format!("/v1/symbols/{}/bar?interval=1m", symbol(0))).await?;
        let me = std::env::current_exe()?;
        let (fh, fw, fr) = (floor_http.to_string(), floor_ws.to_string(), floor_ws_raw.to_string());
        let (live, fin) = (
            nats.streams.subject(&format!("insite.live.bars.1m.{}", symbol(0))),
            nats.streams.subject(&format!("insite.bars.1m.{}", symbol(0))),
        );
        let bytes = body.len().to_string();
        let child = InsiteChild::spawn(
            &me,
            "floor",
            &child_config,
            &["--log", "warn", "floor", "--http", &fh, "--body-bytes", &bytes, "--ws", &fw, "--ws-raw", &fr, "--subject", &live, "--subject", &fin],
        )?;
        let floor_pid = child.pid();
        floor = Some(child);
        if let Some(p) = &pinning {
            pin(floor_pid, &p.service)?;
        }
        let ready_start = Instant::now();
        while !crate::load::probe(floor_http, "/").await {
            if ready_start.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("the floor did not become ready in 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!("floor pid {floor_pid} ready (HTTP {floor_http}, a fixed body of {bytes} bytes; WebSocket {floor_ws}, raw WebSocket {floor_ws_raw})");
        let n = args.symbols;
        let mut phases = Vec::new();
        let mut ratios = Vec::new();
        let latest: Paths = Arc::new(move |t, i| {
            format!("/v1/symbols/{}/bar?interval=1m", symbol((t * 7919 + i as usize) % n))
        });
        if args.runs("latest") {
        // Warm-up of connections and code paths, not reported.
        http_phase("warm-up", addr, pid, args.connections, 1.0, None, latest.clone()).await?;
        http_phase("warm-up", floor_http, floor_pid, args.connections, 1.0, None, latest.clone()).await?;
        let peak = http_phase("latest bar, peak", addr, pid, args.connections, args.seconds, None, latest.clone())
                .await?;
        let floor_peak = http_phase(&format!("floor: bare hyper, {bytes}-byte body, peak"), floor_http, floor_pid, args.connections, args.seconds, None, latest.clone())
                .await?;
        let fixed = http_phase(
                &format!("latest bar, {:.0} req/s", args.rate),
                addr,
                pid,
                args.connections,
                args.seconds,
                Some(args.rate),
                latest.clone(),
            )
            .await?;
        let floor_fixed = http_phase(
                &format!("floor: bare hyper, {:.0} req/s", args.rate),
                floor_http,
                floor_pid,
                args.connections,
                args.seconds,
                Some(args.rate),
                latest,
            )
            .await?;
        ratios.push(format!(
            "latest bar peak: {:.0} req/s against the bare hyper server's {:.0}: ratio {:.2}",
            peak.rate(), floor_peak.rate(), peak.rate() / floor_peak.rate().max(1e-9)
        ));
        ratios.push(format!(
            "latest bar at {:.0} req/s: p99 {:.3} ms against the bare hyper server's {:.3} ms: ratio {:.2}",
            args.rate, fixed.ms_at(0.99), floor_fixed.ms_at(0.99), fixed.ms_at(0.99) / floor_fixed.ms_at(0.99).max(1e-9)
        ));
        phases.extend([peak, floor_peak, fixed, floor_fixed]);
        // Where the service's latest-bar answers came from over all the
        // phases: held in memory, or read through to Redis (a held value
        // older than `max_age_ms`, or not held).
        let metrics = crate::load::get_text(addr, "/metrics").await?;
        let sources: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("insite_query_cache_total") && l.contains("/v1/symbols/{symbol}/bar"))
            .collect();
        ratios.push(format!("latest bar answers by source: {}", sources.join("; ")));
        }
        let day = |s: &str, extra: &str| {
            format!("/v1/aggs/{s}/range/1m/{DAY}/{}{extra}", DAY + 86_400_000)
        };
        if args.runs("history") {
        // Cold: the first request per symbol, 4 at a time.
        let cold_n = n;
        let next = Arc::new(AtomicUsize::new(0));
        let cold_paths: Paths = {
            let next = next.clone();
            Arc::new(move |_, _| {
                let i = next.fetch_add(1, Ordering::Relaxed);
                day(&symbol(i % cold_n), "")
            })
        };
        let cold = queue_phase(
            "1-day 1m history, cold (first per symbol)",
            addr,
            pid,
            4,
            cold_n,
            cold_paths,
        )
        .await?;
        phases.push(cold);
        let warm: Paths =
            Arc::new(move |t, i| day(&symbol((t * 31 + i as usize) % n), ""));
        phases.push(
            http_phase("1-day 1m history, warm (cached)", addr, pid, args.connections, args.seconds, None, warm)
                .await?,
        );
        }
        if args.runs("vendor") {
        // The vendor's aggregates: a year of days and a week of hours, each
        // request distinct by its end day (so the first time is cold).
        let ys = args.year_symbols.max(1);
        let distinct = 40usize;
        let year_path = move |i: usize| {
            let end = DAY - (i / ys) as i64 * 86_400_000;
            format!(
                "/v2/aggs/ticker/{}/range/1/day/{}/{end}",
                vendor_symbol(i % ys),
                end - 365 * 86_400_000
            )
        };
        let week_path = move |i: usize| {
            let end = DAY - (i / ys) as i64 * 86_400_000;
            format!(
                "/v2/aggs/ticker/{}/range/1/hour/{}/{end}",
                vendor_symbol(i % ys),
                end - 7 * 86_400_000
            )
        };
        for (name, path) in [
            ("vendor 1-year daily", Arc::new(year_path) as Arc<dyn Fn(usize) -> String + Send + Sync>),
            ("vendor 1-week hourly", Arc::new(week_path)),
        ] {
            let next = Arc::new(AtomicUsize::new(0));
            let cold_paths: Paths = {
                let (next, path) = (next.clone(), path.clone());
                Arc::new(move |_, _| path(next.fetch_add(1, Ordering::Relaxed) % distinct))
            };
            phases.push(
                queue_phase(&format!("{name}, cold (first per request)"), addr, pid, 4, distinct, cold_paths)
                    .await?,
            );
            let warm_paths: Paths =
                Arc::new(move |t, i| path((t * 31 + i as usize) % distinct));
            phases.push(
                http_phase(&format!("{name}, warm (cached)"), addr, pid, args.connections, args.seconds, None, warm_paths)
                    .await?,
            );
        }
        let grouped: Paths = Arc::new(|_, _| {
            format!("/v2/aggs/grouped/locale/us/market/stocks/{}", "2023-11-14")
        });
        phases.push(
            http_phase(
                &format!("vendor grouped daily, {} symbols", args.vendor_symbols),
                addr,
                pid,
                args.connections,
                args.seconds,
                None,
                grouped,
            )
            .await?,
        );
        }
        println!();
        println!("{HEADER}");
        for p in &phases {
            println!("{}", p.line());
        }
        println!();
        for r in &ratios {
            println!("{r}");
        }
        if args.runs("latest") {
            println!("redis-benchmark -t get -n 400000 -c 64 (floor of the Redis path): {}", redis_benchmark(&redis.url));
        }

        let mut ws_p99 = Vec::new();
        // The floor between the service's two protocols, so that a change
        // of the machine's load in the run touches both sides alike.
        for (name, floor_addr, protocol) in [
            ("/v1/stream", None, WsProtocol::V1),
            ("floor: bare tokio-tungstenite broadcast", Some(floor_ws), WsProtocol::V1),
            ("vendor /stocks, AM events", None, WsProtocol::Vendor),
            ("floor: raw pre-framed writes, one task", Some(floor_ws_raw), WsProtocol::V1),
        ] {
            let is_floor = floor_addr.is_some();
            if args.ws_clients == 0 || !args.runs("ws") {
                break;
            }
            println!();
            println!(
                "WebSocket fan-out ({name}): {} clients on one symbol's 1m bars, {} bars at {}/s; load average {}",
                args.ws_clients,
                args.ws_messages,
                args.ws_rate,
                load_average()
            );
            let (ws_addr, ws_pid) = floor_addr.map_or((addr, pid), |a| (a, floor_pid));
            let ws = ws_phase(ws_addr, ws_pid, nats, &args, protocol).await?;
            let ms = |q: f64| ws.hist.value_at_quantile(q) as f64 / 1_000.0;
            println!(
                "| clients held | connect time s | failed connects | deliveries | expected | avg ms | p50 ms | p95 ms | p99 ms | max ms | service CPU | service RSS MiB | clients' CPU | service CPU µs/delivery | clients' CPU µs/delivery |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n| {} | {:.1} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0}% | {:.0} | {:.0}% | {:.2} | {:.2} |",
                ws.clients,
                ws.connect_secs,
                ws.connect_failures,
                ws.received,
                ws.expected,
                ws.hist.mean() / 1_000.0,
                ms(0.5),
                ms(0.95),
                ms(0.99),
                ws.hist.max() as f64 / 1_000.0,
                ws.cpu,
                ws.rss_mib,
                ws.client_cpu,
                ws.cpu_secs * 1e6 / ws.received.max(1) as f64,
                ws.client_cpu_secs * 1e6 / ws.received.max(1) as f64,
            );
            ws_p99.push((name, ms(0.99)));
            if is_floor {
                continue;
            }
            // The service's own view: hub hand-over to written on the socket.
            let metrics = crate::load::get_text(addr, "/metrics").await?;
            let buckets: Vec<&str> = metrics
                .lines()
                .filter(|l| l.starts_with("insite_query_ws_delivery_seconds"))
                .collect();
            println!("service-side delivery (hub to socket) histogram:");
            for line in buckets {
                println!("  {line}");
            }
        }
        let floors: Vec<_> = ws_p99.iter().filter(|(n, _)| n.starts_with("floor")).copied().collect();
        if !floors.is_empty() {
            println!();
        }
        for (floor_name, floor_p99) in floors {
            for (name, p99) in ws_p99.iter().filter(|(n, _)| !n.starts_with("floor")) {
                println!("WebSocket fan-out {name}: p99 {p99:.2} ms against the {}'s {floor_p99:.2} ms: ratio {:.2}", floor_name.trim_start_matches("floor: "), p99 / floor_p99.max(1e-9));
            }
        }
        println!("load average at the end: {}", load_average());
        anyhow::Ok(())
    });
    drop(floor);
    seeded.stop(&runtime);
    result
}

/// What [`SeededService::start`] fills.
#[derive(Debug, Clone, Copy)]
pub struct Seed {
    /// Symbols `S0000..` with a day of 1-minute bars in ClickHouse and
    /// their hot state (500 final bars and a provisional one, a quote) in
    /// Redis.
    pub symbols: usize,
    /// Symbols `V0000..` with a year of 5-minute bars (vendor aggregates).
    pub year_symbols: usize,
    /// Symbols `V0000..` with a day of 5-minute bars (vendor grouped daily).
    pub vendor_symbols: usize,
}

/// The query service as the query benchmarks drive it: its servers (its
/// own, or given by URL) with an isolated stream, database and key names,
/// the data of a [`Seed`], and `insite query serve` as a child process on
/// a free loopback port (its config has [`VENDOR_KEY`] and a deep client
/// queue).
#[derive(Debug)]
pub struct SeededService {
    own: BenchServers,
    /// The phase's connections.
    pub services: Connections,
    /// The child's config.
    pub child_config: InsiteConfig,
    /// The service child.
    pub service: InsiteChild,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl SeededService {
    /// Starts (or uses) the servers, fills them with `seed` on `runtime`,
    /// starts the service (not waiting until it is ready: see
    /// [`wait_ready`]).
    pub fn start(
        config: &InsiteConfig,
        servers: &ServerArgs,
        insite: &std::path::Path,
        seed: Seed,
        runtime: &tokio::runtime::Runtime,
    ) -> anyhow::Result<Self> {
        let own = BenchServers::start_or_use(config, "query", servers)?;
        let services = own.isolated(config, &format!("bench_query_{}", std::process::id()));
        let filled = (|| {
            let fill_start = Instant::now();
            runtime.block_on(fill(
                seed.symbols,
                &services.clickhouse,
                &services.redis,
                &config.query.pipeline,
            ))?;
            println!(
                "filled {} symbols × 1,440 bars into ClickHouse and their hot state into Redis in {:.1} s",
                seed.symbols,
                fill_start.elapsed().as_secs_f64()
            );
            let fill_start = Instant::now();
            runtime.block_on(fill_vendor(
                seed.year_symbols,
                seed.vendor_symbols,
                &services.clickhouse,
            ))?;
            println!(
                "filled {} symbols × a year and {} symbols × a day of 5-minute bars in {:.1} s",
                seed.year_symbols,
                seed.vendor_symbols,
                fill_start.elapsed().as_secs_f64()
            );
            let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            let mut child_config = config.clone();
            child_config.set_connections(services.clone());
            child_config.query.stream.client_queue = 1024;
            child_config
                .query
                .auth
                .keys
                .push(insite_query::config::ApiKey {
                    key: VENDOR_KEY.into(),
                    name: "bench".into(),
                    per_second: 1_000_000,
                    burst: 1_000_000,
                });
            let service = InsiteChild::spawn(
                insite,
                "query",
                &child_config,
                &[
                    "query",
                    "serve",
                    "--listen",
                    &addr.to_string(),
                    "--log",
                    "warn",
                ],
            )?;
            anyhow::Ok((child_config, service, addr))
        })();
        match filled {
            Ok((child_config, service, addr)) => Ok(Self {
                own,
                services,
                child_config,
                service,
                addr,
            }),
            Err(e) => {
                runtime.block_on(crate::servers::clean_up(&services));
                Err(e)
            }
        }
    }

    /// The name and pid of each server this benchmark started (none for
    /// servers given by URL).
    pub fn server_pids(&self) -> Vec<(String, u32)> {
        self.own.server_pids()
    }

    /// Stops the service, removes the phase's streams and database (so
    /// that nothing is left on servers that were given), stops the
    /// servers this benchmark started.
    pub fn stop(self, runtime: &tokio::runtime::Runtime) {
        drop(self.service);
        runtime.block_on(crate::servers::clean_up(&self.services));
        drop(self.own);
    }
}

/// Waits until the service at `addr` answers `/readyz` (60 s at most);
/// how long that took.
pub async fn wait_ready(addr: SocketAddr) -> anyhow::Result<Duration> {
    let ready_start = Instant::now();
    loop {
        if crate::load::probe(addr, "/readyz").await {
            return Ok(ready_start.elapsed());
        }
        if ready_start.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("the query service did not become ready in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
