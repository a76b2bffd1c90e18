//! `insite-bench ingest`: how fast ingest publishes compared with the raw
//! limit of acknowledged JetStream publishing on the same server.
//!
//! For each batch size, two bounded runs on loopback (file storage):
//! 1. `insite ingest synthetic --max` for `--seconds`: events/s, messages/s
//!    and the mean message size;
//! 2. raw async-nats JetStream publishing of messages of that same size,
//!    pipelined with the same number of acks in flight, for `--seconds`;
//! 3. the same with the headers ingest sets (a unique `Nats-Msg-Id`, which
//!    JetStream tracks for de-duplication, and `Insite-Schema`).
//!
//! It prints both rates and their ratio. It starts its own NATS (data under
//! the local root, removed afterwards) unless `--nats-url` is given, and
//! deletes the streams it created either way.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use insite_config::InsiteConfig;
use insite_ingest::{BatchConfig, PublisherConfig, SyntheticConfig};
use insite_local::server::ServerKind;
use insite_schemas::config::{Connections, NatsConfig, StreamsConfig};
use insite_schemas::{subjects, Symbol};
use tokio_util::sync::CancellationToken;

use crate::servers::{delete_streams, OwnServers};

/// Arguments of `insite-bench ingest`.
#[derive(Debug, Args)]
pub struct BenchIngestArgs {
    /// Benchmark against this NATS instead of starting one.
    #[arg(long)]
    nats_url: Option<String>,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Publishes awaiting their ack at once (both paths).
    #[arg(long, default_value_t = 4_096)]
    max_in_flight: usize,
    /// Symbols simulated.
    #[arg(long, default_value_t = 50)]
    symbols: usize,
    /// Comma-separated batch sizes to measure (1: one event per message).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    batch_sizes: Vec<usize>,
    /// Event-time slice of a batch, in ms.
    #[arg(long, default_value_t = 100)]
    batch_ms: i64,
    /// Simulated event rate (sets how event time advances; publishing is
    /// as fast as possible).
    #[arg(long, default_value_t = 200_000.0)]
    rate: f64,
}

/// One line of results.
#[derive(Debug, Clone, Copy)]
struct Row {
    batch_size: usize,
    ingest_events_per_s: f64,
    ingest_msgs_per_s: f64,
    mean_bytes: f64,
    raw_msgs_per_s: f64,
    raw_id_msgs_per_s: f64,
}

/// Runs `insite-bench ingest`.
pub fn run(config: &InsiteConfig, args: BenchIngestArgs) -> anyhow::Result<()> {
    let own = match &args.nats_url {
        Some(_) => None,
        None => Some(
            OwnServers::start(config, "ingest", &[ServerKind::Nats])
                .context("starting a NATS for the benchmark")?,
        ),
    };
    let url = match (&args.nats_url, &own) {
        (Some(url), _) => url.clone(),
        (None, Some(own)) => own.local().nats_url(),
        (None, None) => anyhow::bail!("no NATS"),
    };
    let runtime = crate::runtime()?;
    let rows = runtime.block_on(bench(url.clone(), &args))?;
    println!();
    println!(
        "ingest benchmark: {} symbols, {} s per run, {} acks in flight, NATS {url}, file storage",
        args.symbols, args.seconds, args.max_in_flight
    );
    println!(
        "{:>6} {:>16} {:>14} {:>10} {:>12} {:>8} {:>20} {:>8}",
        "batch",
        "ingest events/s",
        "ingest msgs/s",
        "msg bytes",
        "raw msgs/s",
        "ratio",
        "raw+msg-id msgs/s",
        "ratio"
    );
    for r in &rows {
        println!(
            "{:>6} {:>16.0} {:>14.0} {:>10.0} {:>12.0} {:>7.1}% {:>20.0} {:>7.1}%",
            r.batch_size,
            r.ingest_events_per_s,
            r.ingest_msgs_per_s,
            r.mean_bytes,
            r.raw_msgs_per_s,
            100.0 * r.ingest_msgs_per_s / r.raw_msgs_per_s.max(1e-9),
            r.raw_id_msgs_per_s,
            100.0 * r.ingest_msgs_per_s / r.raw_id_msgs_per_s.max(1e-9)
        );
    }
    drop(own);
    Ok(())
}

async fn bench(url: String, args: &BenchIngestArgs) -> anyhow::Result<Vec<Row>> {
    let servers = Connections {
        nats: NatsConfig {
            url,
            ..NatsConfig::default()
        },
        ..Connections::default()
    };
    let nats = servers
        .isolated(&format!("bench_ingest_{}", std::process::id()))
        .nats;
    let js = insite_ingest::connect(&nats).await?;
    let seconds = Duration::try_from_secs_f64(args.seconds).context("--seconds")?;
    let mut rows = Vec::new();
    let result: anyhow::Result<()> = async {
        for &batch_size in &args.batch_sizes {
            delete_streams(&js, &nats.streams).await;
            let synthetic = SyntheticConfig {
                seed: 1,
                symbols: args.symbols,
                rate: args.rate,
                max_speed: true,
                batch: BatchConfig {
                    max_events: batch_size,
                    slice_ms: args.batch_ms,
                    ..BatchConfig::default()
                },
                publisher: PublisherConfig {
                    max_in_flight: args.max_in_flight,
                    ..PublisherConfig::default()
                },
                ..SyntheticConfig::default()
            };
            let shutdown = CancellationToken::new();
            let stop = shutdown.clone();
            let started = Instant::now();
            let timer = tokio::spawn(async move {
                tokio::time::sleep(seconds).await;
                stop.cancel();
            });
            let report = insite_ingest::run_synthetic(&js, &nats.streams, synthetic, shutdown).await?;
            let elapsed = started.elapsed().as_secs_f64();
            timer.abort();
            let mean_bytes = report.bytes as f64 / report.acked.max(1) as f64;
            eprintln!("batch {batch_size}: ingest {report} in {elapsed:.2} s");

            delete_streams(&js, &nats.streams).await;
            insite_sinks::streams::ensure_streams(&js, &nats.streams).await?;
            let size = mean_bytes.round() as usize;
            let (raw_msgs, raw_elapsed) =
                raw_publish(&js, &nats.streams, args, size, seconds, false).await?;
            eprintln!(
                "batch {batch_size}: raw {raw_msgs} messages of {mean_bytes:.0} B in {raw_elapsed:.2} s"
            );
            delete_streams(&js, &nats.streams).await;
            insite_sinks::streams::ensure_streams(&js, &nats.streams).await?;
            let (raw_id_msgs, raw_id_elapsed) =
                raw_publish(&js, &nats.streams, args, size, seconds, true).await?;
            eprintln!(
                "batch {batch_size}: raw with ids {raw_id_msgs} messages of {mean_bytes:.0} B in {raw_id_elapsed:.2} s"
            );
            rows.push(Row {
                batch_size,
                ingest_events_per_s: report.events as f64 / elapsed,
                ingest_msgs_per_s: report.acked as f64 / elapsed,
                mean_bytes,
                raw_msgs_per_s: raw_msgs as f64 / raw_elapsed,
                raw_id_msgs_per_s: raw_id_msgs as f64 / raw_id_elapsed,
            });
        }
        Ok(())
    }
    .await;
    delete_streams(&js, &nats.streams).await;
    result?;
    Ok(rows)
}

/// Raw async-nats publishing: `size`-byte payloads on the simulated
/// symbols' trade subjects, acks pipelined `max_in_flight` deep; with
/// `with_ids`, each message also carries the headers ingest sets (a unique
/// `Nats-Msg-Id`, which JetStream tracks for de-duplication, and
/// `Insite-Schema`).
async fn raw_publish(
    js: &async_nats::jetstream::Context,
    streams: &StreamsConfig,
    args: &BenchIngestArgs,
    size: usize,
    seconds: Duration,
    with_ids: bool,
) -> anyhow::Result<(u64, f64)> {
    let payload = bytes::Bytes::from(vec![0xA5u8; size.max(1)]);
    let subjects: Vec<String> = (0..args.symbols.max(1))
        .filter_map(|i| Symbol::new(&format!("S{i}")).ok())
        .map(|symbol| streams.subject(&subjects::trades(&symbol)))
        .collect();
    anyhow::ensure!(!subjects.is_empty(), "no subjects to publish on");
    let mut in_flight = VecDeque::with_capacity(args.max_in_flight);
    let started = Instant::now();
    let mut acked = 0u64;
    let mut i = 0usize;
    while started.elapsed() < seconds {
        if in_flight.len() >= args.max_in_flight.max(1) {
            if let Some(ack) = in_flight.pop_front() {
                let ack: async_nats::jetstream::context::PublishAckFuture = ack;
                ack.await?;
                acked += 1;
            }
        }
        let subject = subjects[i % subjects.len()].clone();
        i += 1;
        let ack = if with_ids {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(insite_schemas::wire::SCHEMA_HEADER, "trade_batch.v1");
            headers.insert(
                insite_schemas::wire::MSG_ID_HEADER,
                format!("raw:{i}:{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).as_str(),
            );
            js.publish_with_headers(subject, headers, payload.clone())
                .await?
        } else {
            js.publish(subject, payload.clone()).await?
        };
        in_flight.push_back(ack);
    }
    while let Some(ack) = in_flight.pop_front() {
        ack.await?;
        acked += 1;
    }
    Ok((acked, started.elapsed().as_secs_f64()))
}
