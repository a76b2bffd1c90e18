//! # insite
//!
//! The one command line of insite. Each subcommand parses its arguments,
//! loads the typed config and hands over to a library crate:
//!
//! | subcommand | library |
//! |---|---|
//! | `services install\|up\|down\|status` | `insite-local` |
//! | `migrate` | `insite-sinks` |
//!
//! Config is layered: built-in defaults, then a TOML file (`--config`, or
//! `INSITE_CONFIG`), then `INSITE_*` environment variables with `__` between
//! levels (`INSITE_NATS__URL`, `INSITE_CLICKHOUSE__DATABASE`, ...).

mod config;
mod migrate;
mod services;

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
    }
}
