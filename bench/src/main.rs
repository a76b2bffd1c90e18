//! # insite-bench
//!
//! The benchmarks of insite, a binary of their own so that the `insite`
//! binary carries none of their code or dependencies (HTTP client, HDR
//! histograms, WebSocket client, rlimit). Each benchmark starts its own
//! NATS, Redis and ClickHouse on free loopback ports (or uses the ones given
//! by URL), gives every phase its own stream, database and key names
//! ([`Connections::isolated`](insite_schemas::config::Connections::isolated)),
//! removes what it created and prints its figures; `docs/benchmarks.md`
//! holds the results and the commands that produced them.
//!
//! ```sh
//! cargo build --release -p insite -p insite-bench
//! ./target/release/insite-bench --log warn pipeline
//! ```
//!
//! | subcommand | what it measures | module |
//! |---|---|---|
//! | `ingest` | `insite ingest synthetic --max` vs raw acknowledged JetStream publishing | [`ingest`] |
//! | `pipeline` | raw JetStream consume vs the pipeline's sustained rate, end-to-end latency, peak memory of an `insite pipeline run` child | [`pipeline`] |
//! | `query` | an `insite query serve` child under HTTP and WebSocket load | [`query`] |
//! | `backfill` | `insite backfill` and `insite ingest files` of a generated trades file vs Bytewax 0.21 over the same file, bars compared | [`backfill`] |
//! | `soak` | the live system (pipeline, query service, synthetic feed) for minutes at a rate: RSS of every process, each server's disk, ClickHouse's active and outdated parts, NATS's streams, over time | [`soak`] |
//! | `e2e` | event time → a WebSocket client's receipt of the bar update, through `insite ingest`, JetStream, `insite pipeline run` and `insite query serve` children | [`e2e`] |
//! | `stages query`, `stages pipeline` | staged load: the query service at rising request rates (open loop, hot reads, history and vendor aggregates mixed), the pipeline at rising event rates; per stage throughput, latency, error shares, each process's CPU and RSS; the knee named, the curves drawn as SVG | [`stages`] |
//! | `faults` | the node-loss fault suite on a local cluster: availability, time to full service, events lost, tables against a run without faults | [`faults`] |
//! | `floor` (hidden) | the floors `query` runs as a child process: a bare hyper server and a bare tokio-tungstenite broadcast server | [`floor`] |
//!
//! Shared modules:
//! - [`servers`]: the servers a benchmark runs against (its own, or given
//!   by URL) and the clean-up of a phase's streams and database;
//! - [`child`]: `insite` as a child process: found beside this executable
//!   (or `--insite PATH`), configured by a TOML file written from the typed
//!   config, stopped when dropped;
//! - [`procstat`]: a process's CPU time, RSS and peak RSS from `/proc`;
//! - [`load`]: the HTTP/1.1 load generator (keep-alive connections, closed
//!   or open loop, latencies in HDR histograms);
//! - [`pin`]: pinning the generator and the measured processes to CPUs of
//!   their own (`taskset`);
//! - [`plot`]: SVG curves (`plotters`): latency against offered load, and
//!   a soak's quantities over time.
//!
//! Config is `insite`'s own (`insite-config`): built-in defaults, then
//! `--config` (or `INSITE_CONFIG`), then `INSITE_*` environment variables.
//! The benchmarks use its `[local]` root for the servers they start, its
//! `[clickhouse]` credentials, its `[pipeline]` settings and, for the
//! service child, its `[query]` settings.

mod backfill;
mod child;
mod e2e;
mod faults;
mod floor;
mod ingest;
mod load;
mod pin;
mod pipeline;
mod plot;
mod procstat;
mod query;
mod servers;
mod soak;
mod stages;

use clap::{Parser, Subcommand};

/// insite-bench: benchmarks of insite's ingest, pipeline and query service.
#[derive(Debug, Parser)]
#[command(name = "insite-bench", version, about)]
struct Cli {
    /// A TOML config file (defaults, then this file, then INSITE_* env vars).
    #[arg(long, global = true, env = "INSITE_CONFIG")]
    config: Option<std::path::PathBuf>,

    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, global = true, env = "INSITE_LOG", default_value = "info")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
enum Command {
    /// Raw JetStream publishing vs `insite ingest synthetic --max`.
    Ingest(ingest::BenchIngestArgs),
    /// The pipeline: raw JetStream consume vs sustained pipeline rate,
    /// end-to-end latency at a steady rate, peak memory at many symbols.
    Pipeline(pipeline::BenchPipelineArgs),
    /// The query service under load: hot and history endpoints, Redis
    /// floor, WebSocket fan-out.
    Query(query::BenchQueryArgs),
    /// History: `insite backfill` and `insite ingest files` of a generated
    /// trades file against Bytewax over the same file, bars compared.
    Backfill(backfill::BenchBackfillArgs),
    /// End to end: event time to a WebSocket client's receipt of the bar
    /// update, through ingest, the pipeline and the query service.
    E2e(e2e::BenchE2eArgs),
    /// Kill each kind of node of a local cluster under load, one at a
    /// time, and report availability, recovery, loss and table equality.
    Faults(faults::BenchFaultsArgs),
    /// The live system for minutes at a steady rate: memory, disk,
    /// ClickHouse parts and NATS streams over time.
    Soak(soak::BenchSoakArgs),
    /// Staged load: the query service at rising request rates, the
    /// pipeline at rising event rates; the knee of each curve.
    Stages(stages::BenchStagesArgs),
    /// The floors of `query` (a bare hyper server, a bare WebSocket
    /// broadcast server), run by it as a child process.
    #[command(hide = true)]
    Floor(floor::FloorArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log)?)
        .with_writer(std::io::stderr)
        .init();
    let config = insite_config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Ingest(args) => ingest::run(&config, args),
        Command::Pipeline(args) => pipeline::run(&config, args),
        Command::Query(args) => query::run(&config, args),
        Command::Backfill(args) => backfill::run(&config, args),
        Command::E2e(args) => e2e::run(&config, args),
        Command::Faults(args) => faults::run(&config, args),
        Command::Soak(args) => soak::run(&config, args),
        Command::Stages(args) => stages::run(&config, args),
        Command::Floor(args) => floor::run(&config, args),
    }
}

/// The multi-threaded async runtime every benchmark runs on.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
