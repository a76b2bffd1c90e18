//! `insite-bench e2e`: end to end, as a user feels it — from a trade's
//! event time to a WebSocket client holding a bar that includes it.
//!
//! Everything runs as it does in production, each in its own process on
//! its own NATS, Redis and ClickHouse (started on free loopback ports unless
//! given by URL): `insite ingest synthetic` paced at `--rate` market events
//! per second with event time = now (the simulator's clock follows the wall
//! clock), `insite pipeline run`, and `insite query serve`, whose
//! `/v1/stream` hub (one core NATS subscription, fed by the pipeline's
//! provisional and final results) serves `--clients` WebSocket clients held
//! by this process. Client `i` subscribes to `bars.<interval>` of symbol
//! `i mod --symbols`.
//!
//! **What is measured.** For every bar update a client receives after the
//! warm-up (provisional and final alike), the latency is
//!
//! ```text
//! receipt wall-clock time − event time of the newest trade the bar includes
//! ```
//!
//! The bar carries its symbol, window and trade count `n`, not its trades'
//! times, so this process also reads the trades themselves (a core NATS
//! subscription on `md.trades.>`, in the order the server stored them; a
//! symbol's trades are published in event-time order): the bar includes
//! the first `n` trades of its symbol and window, and the newest of those
//! is the reference. That is the age of the freshest information on the
//! user's screen when it arrives, and it covers ingest's batching and
//! acknowledged publish, JetStream, the pipeline (input, bars, the
//! operators' provisional cadence, the hot flush, the DERIVED task's core
//! NATS publish), the query service's hub and the client's socket. Clocks
//! are one machine's, so no skew enters. An update whose trade count does
//! not match the trades seen (a trade late for its window) is counted as
//! unmatched, not measured.
//!
//! The figures are given for all updates, then for the provisional and the
//! final ones apart: a final bar is emitted only once the watermark passes
//! its window's end plus the allowed lateness (`allowed_lateness_ms`, 2 s
//! by default), so its age is that wait by design, while a provisional one
//! is what the user sees move on the screen.
//!
//! The figures also give each process's CPU over the measured seconds
//! (this process holds the clients) and the load average, and the
//! pipeline's and ingest's own latency histograms as they export them to
//! Prometheus.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use insite_config::InsiteConfig;
use insite_schemas::wire::{self, Inbound};
use insite_schemas::Interval;

use crate::child::{InsiteBinaryArgs, InsiteChild};
use crate::procstat::{cpu_percent, Sample};
use crate::servers::{clean_up, BenchServers, ServerArgs};

/// Arguments of `insite-bench e2e`.
#[derive(Debug, Args)]
pub struct BenchE2eArgs {
    #[command(flatten)]
    servers: ServerArgs,
    #[command(flatten)]
    insite: InsiteBinaryArgs,
    /// Market events (trades and quotes) per second published by ingest.
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// Symbols simulated (`S0000`, `S0001`, ...).
    #[arg(long, default_value_t = 50)]
    symbols: usize,
    /// WebSocket clients on `/v1/stream`.
    #[arg(long, default_value_t = 1_000)]
    clients: usize,
    /// Bar interval the clients subscribe to.
    #[arg(long, default_value = "1s")]
    interval: String,
    /// Ingest's event-time batch slice, ms (`insite ingest --batch-ms`).
    #[arg(long, default_value_t = 10)]
    batch_ms: i64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seconds of warm-up (not measured).
    #[arg(long, default_value_t = 5.0)]
    warmup_seconds: f64,
}

/// One bar update as a client received it.
#[derive(Debug, Clone, Copy)]
struct Receipt {
    /// Index of the symbol.
    symbol: usize,
    /// The bar's window start, ms.
    window_start: i64,
    /// Its trade count.
    trades: usize,
    /// Wall-clock receipt time, µs since the epoch.
    at_us: i64,
    /// Whether it is the bar's final version (emitted once the watermark
    /// passes the window's end plus the allowed lateness), not a
    /// provisional one.
    is_final: bool,
}

/// The trades seen per (symbol, window start), in stream order: the
/// running maximum of their event times (so the newest of the first `n` is
/// entry `n - 1`).
type TradeLog = HashMap<(usize, i64), Vec<i64>>;

fn symbol(i: usize) -> String {
    format!("S{i:04}")
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Raises the open-file limit (each client is two sockets on this machine).
fn raise_nofile(want: u64) {
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    if soft < want && rlimit::Resource::NOFILE.set(want, want.max(hard)).is_err() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
}

/// A free loopback address.
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The number after `field` in a pushed message, found without parsing the
/// whole message (the clients must stay cheaper than what they measure).
fn number_after(text: &str, field: &str) -> Option<i64> {
    let rest = &text[text.find(field)? + field.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '-')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Runs `insite-bench e2e`.
pub fn run(config: &InsiteConfig, args: BenchE2eArgs) -> anyhow::Result<()> {
    let insite = args.insite.binary()?;
    let interval: Interval = args
        .interval
        .parse()
        .map_err(|e| anyhow::anyhow!("--interval {:?}: {e}", args.interval))?;
    anyhow::ensure!(args.symbols > 0, "--symbols must be at least 1");
    raise_nofile(65_536);
    let urls = BenchServers::start_or_use(config, "e2e", &args.servers)?;
    let services = urls.isolated(config, &format!("be{}", std::process::id()));
    let runtime = crate::runtime()?;
    let result = runtime.block_on(async {
        let outcome = bench(config, &args, &urls, &services, &insite, interval).await;
        clean_up(&services).await;
        outcome
    });
    drop(runtime);
    drop(urls);
    result
}

async fn bench(
    config: &InsiteConfig,
    args: &BenchE2eArgs,
    urls: &BenchServers,
    services: &insite_schemas::config::Connections,
    insite: &std::path::Path,
    interval: Interval,
) -> anyhow::Result<()> {
    let load_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let js = insite_ingest::connect(&services.nats).await?;
    insite_sinks::streams::ensure_streams(&js, &services.nats.streams).await?;
    insite_sinks::clickhouse::migrate(&services.clickhouse).await?;
    let mut child_config = config.clone();
    child_config.set_connections(services.clone());
    child_config.pipeline.name = format!("be{}", std::process::id());

    // The pipeline and the query service.
    let pipeline_metrics = free_addr()?;
    let mut pipeline = InsiteChild::spawn(
        insite,
        "pipeline",
        &child_config,
        &[
            "pipeline",
            "run",
            "--log",
            "warn",
            "--metrics-addr",
            &pipeline_metrics.to_string(),
        ],
    )?;
    let query_addr = free_addr()?;
    let mut query = InsiteChild::spawn(
        insite,
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
    let ready = Instant::now();
    while !crate::load::probe(query_addr, "/readyz").await {
        anyhow::ensure!(
            ready.elapsed() < Duration::from_secs(60),
            "the query service did not become ready in 60 s"
        );
        anyhow::ensure!(pipeline.try_wait()?.is_none(), "the pipeline exited early");
        anyhow::ensure!(query.try_wait()?.is_none(), "the query service exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The pipeline reads once its durable consumer exists.
    loop {
        let stream = js.get_stream(&services.nats.streams.market).await?;
        if stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
                &child_config.pipeline.consumer.market_durable,
            )
            .await
            .is_ok()
        {
            break;
        }
        anyhow::ensure!(
            ready.elapsed() < Duration::from_secs(60),
            "the pipeline did not create its consumer in 60 s"
        );
        anyhow::ensure!(pipeline.try_wait()?.is_none(), "the pipeline exited early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The trades, as the server stores them.
    let index: Arc<HashMap<String, usize>> =
        Arc::new((0..args.symbols).map(|i| (symbol(i), i)).collect());
    let trades: Arc<Mutex<TradeLog>> = Arc::default();
    let nats = insite_sinks::nats::connect(&services.nats, "insite-bench-e2e").await?;
    let mut subscription = nats
        .subscribe(services.nats.streams.subject("md.trades.>"))
        .await?;
    let reader = {
        let (trades, index) = (trades.clone(), index.clone());
        let width = interval.millis();
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let schema = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(wire::SCHEMA_HEADER))
                    .map(|v| v.as_str());
                let Ok(Inbound::Trades(batch)) = wire::decode_inbound(schema, &message.payload)
                else {
                    continue;
                };
                let Ok(mut log) = trades.lock() else { return };
                for trade in batch {
                    let Some(&sym) = index.get(trade.symbol.as_str()) else {
                        continue;
                    };
                    let window = trade.ts.div_euclid(width) * width;
                    let times = log.entry((sym, window)).or_default();
                    let newest = times.last().map_or(trade.ts, |&t| t.max(trade.ts));
                    times.push(newest);
                }
            }
        })
    };

    // The clients.
    let receipts: Arc<Mutex<Vec<Receipt>>> = Arc::default();
    let subscribed = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(tokio::sync::Semaphore::new(128));
    let connect_start = Instant::now();
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let (receipts, subscribed, failed, dropped, stop, gate) = (
            receipts.clone(),
            subscribed.clone(),
            failed.clone(),
            dropped.clone(),
            stop.clone(),
            gate.clone(),
        );
        let sym = i % args.symbols;
        let op = format!(
            r#"{{"op":"subscribe","symbols":["{}"],"kinds":["bars.{interval}"]}}"#,
            symbol(sym)
        );
        clients.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let Ok((mut ws, _)) =
                tokio_tungstenite::connect_async(format!("ws://{query_addr}/v1/stream")).await
            else {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            if ws.send(op.into()).await.is_err() || !matches!(ws.next().await, Some(Ok(_))) {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            drop(permit);
            subscribed.fetch_add(1, Ordering::Relaxed);
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let next = tokio::time::timeout(Duration::from_millis(200), ws.next()).await;
                let text = match next {
                    Err(_) => continue,
                    Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text)))) => text,
                    Ok(Some(Ok(_))) => continue,
                    Ok(_) => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                };
                let at_us = now_us();
                let (Some(window_start), Some(trades)) = (
                    number_after(&text, "\"window_start\":"),
                    number_after(&text, "\"trades\":"),
                ) else {
                    continue;
                };
                mine.push(Receipt {
                    symbol: sym,
                    window_start,
                    trades: usize::try_from(trades).unwrap_or(0),
                    at_us,
                    is_final: text.contains("\"finality\":\"final\""),
                });
            }
            if let Ok(mut all) = receipts.lock() {
                all.extend(mine);
            }
        }));
    }
    while subscribed.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < args.clients {
        anyhow::ensure!(
            connect_start.elapsed() < Duration::from_secs(120),
            "only {} of {} clients subscribed in 120 s",
            subscribed.load(Ordering::Relaxed),
            args.clients
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();

    // The feed: event time = now, paced, for warm-up + measured seconds.
    let total = args.warmup_seconds + args.seconds;
    let ingest_metrics = free_addr()?;
    let symbol_list = (0..args.symbols).map(symbol).collect::<Vec<_>>().join(",");
    let rate = format!("{}", args.rate / crate::pipeline::OPEN_INTENSITY);
    // A little longer than measured, so that its exporter is still there to
    // be read at the end.
    let duration = format!("{}ms", ((total + 3.0) * 1_000.0).round() as u64);
    let batch_ms = args.batch_ms.to_string();
    let mut ingest = InsiteChild::spawn(
        insite,
        "ingest",
        &child_config,
        &[
            "ingest",
            "--log",
            "warn",
            "--metrics-addr",
            &ingest_metrics.to_string(),
            "synthetic",
            "--symbol-list",
            &symbol_list,
            "--rate",
            &rate,
            "--duration",
            &duration,
            "--batch-ms",
            &batch_ms,
        ],
    )?;
    tokio::time::sleep(Duration::try_from_secs_f64(args.warmup_seconds)?).await;
    let pids = [
        ("ingest", ingest.pid()),
        ("pipeline", pipeline.pid()),
        ("query service", query.pid()),
        ("bench (clients)", std::process::id()),
    ];
    let servers = urls.server_pids();
    let before: Vec<Sample> = pids
        .iter()
        .map(|(_, p)| *p)
        .chain(servers.iter().map(|(_, p)| *p))
        .map(Sample::take)
        .collect();
    let measure_from = now_us();
    let measured_at = Instant::now();
    tokio::time::sleep(Duration::try_from_secs_f64(args.seconds)?).await;
    let measure_to = now_us();
    let after: Vec<Sample> = pids
        .iter()
        .map(|(_, p)| *p)
        .chain(servers.iter().map(|(_, p)| *p))
        .map(Sample::take)
        .collect();
    let measured_secs = measured_at.elapsed().as_secs_f64();
    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    // Let the last updates arrive, then scrape the exporters.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pipeline_text = crate::load::get_text(pipeline_metrics, "/metrics")
        .await
        .unwrap_or_default();
    let ingest_text = crate::load::get_text(ingest_metrics, "/metrics")
        .await
        .unwrap_or_default();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }
    reader.abort();
    let ingest_status = ingest.terminate(Duration::from_secs(10)).await?;
    let _ = query.terminate(Duration::from_secs(10)).await;
    let _ = pipeline.terminate(Duration::from_secs(30)).await;

    // The figures.
    let receipts = receipts
        .lock()
        .map_err(|_| anyhow::anyhow!("receipts lock poisoned"))?
        .clone();
    let trades = trades
        .lock()
        .map_err(|_| anyhow::anyhow!("trades lock poisoned"))?;
    // All updates, then the provisional and the final ones apart: a final
    // bar waits by design for the allowed lateness past its window's end.
    let mut hists: [Histogram<u64>; 3] = [
        crate::load::histogram()?,
        crate::load::histogram()?,
        crate::load::histogram()?,
    ];
    let (mut unmatched, mut outside) = (0u64, 0u64);
    for r in &receipts {
        if r.at_us < measure_from || r.at_us > measure_to {
            outside += 1;
            continue;
        }
        let newest = r
            .trades
            .checked_sub(1)
            .and_then(|n| trades.get(&(r.symbol, r.window_start))?.get(n));
        match newest {
            Some(&ts) => {
                let us = u64::try_from((r.at_us - ts * 1_000).max(1)).unwrap_or(u64::MAX);
                hists[0].saturating_record(us);
                hists[if r.is_final { 2 } else { 1 }].saturating_record(us);
            }
            None => unmatched += 1,
        }
    }
    let events = ingest_text
        .lines()
        .find(|l| l.starts_with("insite_ingest_events_total"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("?")
        .to_owned();
    println!();
    println!(
        "end to end: {} market events/s asked ({} symbols, ingest batch slice {} ms), {} WebSocket \
         clients on /v1/stream (bars.{interval}, one symbol each; {} subscribed in {connect_secs:.1} s, \
         {} failed, {} dropped by the service), {:.1} s measured after {:.1} s warm-up; ingest exit {:?}, \
         {events} events acknowledged",
        args.rate,
        args.symbols,
        args.batch_ms,
        args.clients,
        subscribed.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        dropped.load(Ordering::Relaxed),
        measured_secs,
        args.warmup_seconds,
        ingest_status
    );
    println!(
        "load average at start: {}; at the end of the measured seconds: {}",
        load_start.trim(),
        load_end.trim()
    );
    println!();
    println!(
        "event time of the newest trade in a bar → a client's receipt of that bar update \
         (provisional and final):"
    );
    println!("| updates | count | p50 ms | p95 ms | p99 ms | max ms | unmatched |");
    println!("|---|---|---|---|---|---|---|");
    for (name, hist) in ["all", "provisional", "final"].iter().zip(&hists) {
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1_000.0;
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            hist.len(),
            ms(0.5),
            ms(0.95),
            ms(0.99),
            hist.max() as f64 / 1_000.0,
            if *name == "all" {
                unmatched.to_string()
            } else {
                String::new()
            }
        );
    }
    let _ = outside;
    println!();
    println!("CPU over the measured seconds (% of one core):");
    println!("| process | CPU |");
    println!("|---|---|");
    let names = pids
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .chain(servers.iter().map(|(k, _)| k.clone()));
    for ((name, a), b) in names.zip(&before).zip(&after) {
        println!("| {name} | {:.0}% |", cpu_percent(*a, *b));
    }
    println!();
    println!("stages of the path, from the processes' own histograms (cumulative since start; quantiles interpolated within buckets, as Prometheus's histogram_quantile does):");
    println!("| histogram | count | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|");
    for (text, name, labels) in [
        (&ingest_text, "insite_ingest_event_to_ack_seconds", ""),
        (&ingest_text, "insite_ingest_publish_ack_seconds", ""),
        (
            &pipeline_text,
            "insite_pipeline_event_to_read_seconds",
            "source=\"market\"",
        ),
        (&pipeline_text, "insite_pipeline_event_to_redis_seconds", ""),
    ] {
        let buckets = prometheus_buckets(text, name, labels);
        let count = buckets.last().map_or(0.0, |b| b.1);
        let q = |q: f64| {
            bucket_quantile(&buckets, q).map_or("–".to_owned(), |s| format!("{:.1}", s * 1e3))
        };
        println!(
            "| `{name}` | {count:.0} | {} | {} | {} |",
            q(0.5),
            q(0.95),
            q(0.99)
        );
    }
    println!();
    println!("the processes' own histograms (Prometheus, cumulative since start):");
    for line in pipeline_text.lines().chain(ingest_text.lines()) {
        if line.starts_with("insite_pipeline_event_to_")
            || line.starts_with("insite_ingest_event_to_")
            || line.starts_with("insite_ingest_publish_ack_seconds")
        {
            println!("  {line}");
        }
    }
    Ok(())
}

/// The cumulative buckets `(le, count)` of histogram `name` in a Prometheus
/// text exposition, of the series whose labels include `labels` (all series
/// if empty, summed), in ascending `le` (`+Inf` last).
fn prometheus_buckets(text: &str, name: &str, labels: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((series, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        if !labels.is_empty() && !series.contains(labels) {
            continue;
        }
        let Some(le) = series
            .split(',')
            .find_map(|l| l.strip_prefix("le=\""))
            .map(|l| l.trim_end_matches('"'))
        else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::NAN)
        };
        let Ok(count) = value.trim().parse::<f64>() else {
            continue;
        };
        match buckets.iter_mut().find(|(b, _)| *b == le) {
            Some(bucket) => bucket.1 += count,
            None => buckets.push((le, count)),
        }
    }
    buckets.retain(|(le, _)| !le.is_nan());
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The `q` quantile of cumulative `buckets`, interpolated linearly within
/// the bucket it falls in (the lower bound of the first bucket is 0); the
/// largest finite bound if it falls in `+Inf`; `None` without observations.
fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = count - below;
            let share = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return Some(lower + (le - lower) * share);
        }
        (lower, below) = (le, count);
    }
    Some(lower)
}

#[cfg(test)]
mod bucket_tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_the_bucket_as_prometheus_does() {
        let text = "\
x_bucket{source=\"market\",le=\"0.01\"} 50
x_bucket{source=\"market\",le=\"0.1\"} 100
x_bucket{source=\"market\",le=\"+Inf\"} 100
x_bucket{source=\"social\",le=\"0.01\"} 0
x_bucket{source=\"social\",le=\"0.1\"} 0
x_bucket{source=\"social\",le=\"+Inf\"} 100
x_sum 3
";
        let market = prometheus_buckets(text, "x", "source=\"market\"");
        assert_eq!(market, [(0.01, 50.0), (0.1, 100.0), (f64::INFINITY, 100.0)]);
        // Half of the observations are at most 10 ms: the median is 10 ms.
        assert!((bucket_quantile(&market, 0.5).unwrap() - 0.01).abs() < 1e-12);
        // The 75th percentile is halfway through the second bucket.
        assert!((bucket_quantile(&market, 0.75).unwrap() - 0.055).abs() < 1e-12);
        // All series summed; a quantile in +Inf is the largest finite bound.
        let all = prometheus_buckets(text, "x", "");
        assert_eq!(all.last(), Some(&(f64::INFINITY, 200.0)));
        assert_eq!(bucket_quantile(&all, 0.99), Some(0.1));
        assert_eq!(bucket_quantile(&[], 0.5), None);
    }
}
