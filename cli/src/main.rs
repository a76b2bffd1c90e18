//! # insite
//!
//! The one command line of insite. Each subcommand parses its arguments,
//! loads the typed config and hands over to a library crate:
//!
//! | subcommand | library |
//! |---|---|
//! | `services install\|up\|down\|status` | `insite-local` |
//! | `cluster up\|status\|down\|kill` | `insite-local` (`cluster`) |
//! | `migrate` | `insite-sinks` |
//! | `pipeline run`, `replay` | `insite-pipeline` |
//! | `backfill` | `insite-ingest` (reading files), `insite-pipeline` (the bounded run) |
//! | `ingest synthetic\|replay\|ws\|rss` | `insite-ingest` |
//! | `query serve` | `insite-query` |
//!
//! The benchmarks are a binary of their own, `insite-bench` (`bench/`).
//!
//! Config (`insite-config`) is layered: built-in defaults, then a TOML file
//! (`--config`, or `INSITE_CONFIG`), then `INSITE_*` environment variables
//! with `__` between levels (`INSITE_NATS__URL`,
//! `INSITE_CLICKHOUSE__DATABASE`, ...). Against the local stack, each
//! subcommand connects as its component's user with the password from
//! `.insite/secrets.toml` (written by `services up`) unless the config names
//! a user or password itself: `ingest` as ingest, `query` as query,
//! `migrate`, `pipeline`, `replay` and `backfill` as the pipeline.
//!
//! Every process allocates with mimalloc: the query service's answers and
//! the pipeline's rows are many small, short-lived allocations, where
//! glibc's allocator took about a tenth of the service's CPU in a profile
//! of the latest-bar route (see `docs/benchmarks.md`).

mod backfill;
mod cluster;
mod ingest;
mod metrics;
mod migrate;
mod pipeline;
mod query;
mod services;
mod signal;

use insite_config as config;

/// The allocator of every `insite` process (see the crate docs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// insite: a real-time market-intelligence stream pipeline.
#[derive(Debug, Parser)]
#[command(name = "insite", version, about)]
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

#[derive(Debug, Subcommand)]
enum Command {
    /// Install (if missing), start, check or stop the local NATS, Redis and
    /// ClickHouse servers.
    Services(services::ServicesArgs),
    /// A local cluster of every component: NATS ×3, Redis Cluster 3+3,
    /// ClickHouse 2 shards × 2 replicas with ZooKeeper, the pipeline's timely
    /// processes, query instances behind haproxy.
    Cluster(cluster::ClusterArgs),
    /// Create the ClickHouse database and apply the versioned migrations.
    Migrate,
    /// The dataflow job: JetStream in; ClickHouse, Redis and NATS out.
    Pipeline(pipeline::PipelineArgs),
    /// Re-run the dataflow over a stream range (by stream sequence, storage
    /// time or event time), into the live tables or another database,
    /// writing only the windows the range fully covers.
    ///
    /// `--from-seq`/`--to-seq` count JetStream stream sequences;
    /// `--from-time`/`--to-time` the time JetStream stored each message;
    /// `--from-event-time`/`--to-event-time` the events' own timestamps.
    /// Finals of windows cut by the range, or still open at its end, are
    /// never written, so a live final is never replaced by a partial one.
    Replay(pipeline::ReplayArgs),
    /// Load history from files (trades, quotes, posts; the vendor's flat
    /// files too) through the operators into ClickHouse, safely next to the
    /// live pipeline.
    Backfill(backfill::BackfillArgs),
    /// Ingest workers: publish synthetic, replayed or live feeds to JetStream.
    Ingest(ingest::IngestArgs),
    /// The query service: HTTP API, WebSocket push, live chart page.
    Query(query::QueryArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log)?)
        .with_writer(std::io::stderr)
        .init();
    // Each component connects as its own user; the local stack's passwords
    // (`.insite/secrets.toml`) fill in what the config leaves out.
    let role = match &cli.command {
        Command::Services(_) | Command::Cluster(_) => None,
        Command::Ingest(_) => Some(config::Role::Ingest),
        Command::Query(_) => Some(config::Role::Query),
        Command::Migrate | Command::Pipeline(_) | Command::Replay(_) | Command::Backfill(_) => {
            Some(config::Role::Pipeline)
        }
    };
    let config = match role {
        Some(role) => config::load_as(cli.config.as_deref(), role)?,
        None => config::load(cli.config.as_deref())?,
    };
    match cli.command {
        Command::Services(args) => services::run(&config, args),
        Command::Cluster(args) => cluster::run(&config, args),
        Command::Migrate => migrate::run(&config),
        Command::Pipeline(args) => pipeline::run(&config, args),
        Command::Replay(args) => pipeline::replay(&config, args),
        Command::Backfill(args) => backfill::run(&config, args),
        Command::Ingest(args) => ingest::run(&config, args),
        Command::Query(args) => query::run(&config, args),
    }
}
