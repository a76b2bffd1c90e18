//! `insite pipeline run` and `insite replay`: the dataflow job, live or over
//! a stream range.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use insite_pipeline::source::StreamRange;
use insite_pipeline::{ReplaySpec, RunConfig, Topology};

use crate::config::InsiteConfig;

/// `insite pipeline ...`
#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(subcommand)]
    command: PipelineCommand,
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Run the live pipeline until interrupted (Ctrl-C or SIGTERM).
    Run(RunArgs),
}

/// `insite pipeline run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Timely worker threads per process (default: `pipeline.workers`).
    #[arg(long)]
    workers: Option<usize>,
    /// This process's index in a multi-process cluster.
    #[arg(long, default_value_t = 0)]
    process: usize,
    /// `host:port` of every process of the cluster, comma-separated, in
    /// index order (all processes get the same list).
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<String>,
    /// Serve Prometheus metrics on this address.
    #[arg(long, default_value = "127.0.0.1:9465")]
    metrics_addr: SocketAddr,
    /// Serve no metrics.
    #[arg(long)]
    no_metrics: bool,
}

/// Which streams a replay reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReplayStreams {
    /// MARKET and SOCIAL.
    Both,
    /// MARKET only (bars, alerts on prices and volume).
    Market,
    /// SOCIAL only (sentiment, trending).
    Social,
}

/// `insite replay`
///
/// A range is given by stream sequence, by storage time (when JetStream
/// stored each message), or by event time (the events' own timestamps),
/// or by several of them at once. Whatever the range, only the finals of
/// windows it fully covers are written, so a replay into the live database
/// never replaces a live final with a partial one.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Which streams to read.
    #[arg(long, value_enum, default_value_t = ReplayStreams::Both)]
    streams: ReplayStreams,
    /// First stream sequence to read (inclusive; a JetStream position, the
    /// same number in every stream read).
    #[arg(long)]
    from_seq: Option<u64>,
    /// Last stream sequence to read (inclusive).
    #[arg(long)]
    to_seq: Option<u64>,
    /// First storage time to read (RFC 3339, inclusive): when JetStream
    /// stored the message, not when its events happened. A backlog
    /// published in one go was stored all at once: use --from-event-time.
    #[arg(long, visible_alias = "from-stored-time", value_parser = parse_time)]
    from_time: Option<i64>,
    /// Last storage time to read (RFC 3339, inclusive).
    #[arg(long, visible_alias = "to-stored-time", value_parser = parse_time)]
    to_time: Option<i64>,
    /// Start of an event-time range (RFC 3339, inclusive): only events, and
    /// windows, at or after it are written. Reading starts the clock-skew
    /// bound earlier in storage time.
    #[arg(long, value_parser = parse_time)]
    from_event_time: Option<i64>,
    /// End of an event-time range (RFC 3339, exclusive; a bare date means
    /// the end of that day): only events before it, and windows ending by
    /// it, are written. Reading stops once the stream's clock has passed it.
    #[arg(long, value_parser = parse_time_end)]
    to_event_time: Option<i64>,
    /// Write into this ClickHouse database instead of the live one (created
    /// and migrated if missing).
    #[arg(long)]
    database: Option<String>,
    /// Also write Redis and publish to DERIVED.
    #[arg(long)]
    hot: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// An edge for people.
fn edge_text(ms: i64) -> String {
    match ms {
        i64::MIN => "the stream's start".into(),
        i64::MAX => "the end".into(),
        ms => format!("{ms} ms since the epoch"),
    }
}

fn parse_time_end(text: &str) -> Result<i64, String> {
    insite_schemas::time::parse_time_end(text).map_err(|e| e.to_string())
}

fn parse_time(text: &str) -> Result<i64, String> {
    insite_schemas::time::parse_time(text).map_err(|e| e.to_string())
}

/// Runs `insite pipeline ...`.
pub fn run(config: &InsiteConfig, args: PipelineArgs) -> anyhow::Result<()> {
    let PipelineCommand::Run(args) = args.command;
    let mut pipeline = config.pipeline.clone();
    if let Some(workers) = args.workers {
        pipeline.workers = workers;
    }
    pipeline
        .operators
        .validate()
        .context("invalid [pipeline.operators] settings")?;
    anyhow::ensure!(
        args.hosts.is_empty() || args.process < args.hosts.len(),
        "--process {} is not an index into --hosts ({} entries)",
        args.process,
        args.hosts.len()
    );
    let topology = Topology {
        process: args.process,
        hosts: args.hosts,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        if !args.no_metrics {
            crate::metrics::exporter()
                .context("metric buckets")?
                .with_http_listener(args.metrics_addr)
                .install()
                .with_context(|| format!("serving metrics on {}", args.metrics_addr))?;
        }
        let run = RunConfig {
            topology,
            ..RunConfig::new(config.connections(), pipeline)
        };
        let report = insite_pipeline::run(&run, crate::signal::shutdown_on_signal())
            .await
            .context("pipeline failed")?;
        tracing::info!(
            finished = report.checkpoints.finished,
            held = report.checkpoints.held,
            elapsed_s = report.elapsed.as_secs_f64(),
            "pipeline stopped"
        );
        Ok(())
    })
}

/// Runs `insite replay`.
pub fn replay(config: &InsiteConfig, args: ReplayArgs) -> anyhow::Result<()> {
    let mut services = config.connections();
    if let Some(database) = &args.database {
        services.clickhouse.database = database.clone();
    }
    if let (Some(from), Some(to)) = (args.from_event_time, args.to_event_time) {
        anyhow::ensure!(
            from < to,
            "--from-event-time must be before --to-event-time"
        );
    }
    let range = StreamRange {
        from_seq: args.from_seq,
        from_time_ms: args.from_time,
        to_seq: args.to_seq,
        to_time_ms: args.to_time,
        from_event_ms: args.from_event_time,
        to_event_ms: args.to_event_time,
    };
    let spec = ReplaySpec {
        market: matches!(args.streams, ReplayStreams::Both | ReplayStreams::Market)
            .then_some(range),
        social: matches!(args.streams, ReplayStreams::Both | ReplayStreams::Social)
            .then_some(range),
        hot: args.hot,
        progress_bar: !args.quiet,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime
        .block_on(insite_pipeline::replay(&services, &config.pipeline, &spec))
        .context("replay failed")?;
    let seconds = report.elapsed.as_secs_f64().max(1e-9);
    println!(
        "replayed {} messages ({} events) into database {:?} in {:.1} s ({:.0} events/s)",
        report.messages,
        report.events,
        services.clickhouse.database,
        seconds,
        report.events as f64 / seconds
    );
    for (name, written) in [("MARKET", report.market), ("SOCIAL", report.social)] {
        if let Some(written) = written {
            println!(
                "{name}: finals written for windows from {} to {}",
                edge_text(written.from),
                edge_text(written.to)
            );
        }
    }
    println!(
        "left out: {} finals of windows the range does not fully cover, {} late events \
         judged by messages before it",
        report.withheld_finals, report.withheld_late
    );
    Ok(())
}
