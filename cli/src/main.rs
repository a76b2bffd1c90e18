//! # insite
//!
//! The one command line of insite. Each subcommand parses its arguments,
//! loads the typed config and hands over to a library crate:
//!
//! | subcommand | library |
//! |---|---|
//! | `services install\|up\|down\|status` | `insite-local` |
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
//! `INSITE_CLICKHOUSE__DATABASE`, ...).

mod backfill;
mod ingest;
mod migrate;
mod pipeline;
mod query;
mod services;
mod signal;

use insite_config as config;

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
    /// Create the ClickHouse database and apply the versioned migrations.
    Migrate,
    /// The dataflow job: JetStream in; ClickHouse, Redis and NATS out.
    Pipeline(pipeline::PipelineArgs),
    /// Re-run the dataflow over a stream range, into the live tables or
    /// another database.
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
    let config = config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Services(args) => services::run(&config, args),
        Command::Migrate => migrate::run(&config),
        Command::Pipeline(args) => pipeline::run(&config, args),
        Command::Replay(args) => pipeline::replay(&config, args),
        Command::Backfill(args) => backfill::run(&config, args),
        Command::Ingest(args) => ingest::run(&config, args),
        Command::Query(args) => query::run(&config, args),
    }
}
