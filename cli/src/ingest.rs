//! `insite ingest synthetic|replay|ws|rss`: the ingest workers, publishing
//! to JetStream until done or SIGINT/SIGTERM (which flushes what is in
//! flight), with an optional Prometheus endpoint.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use insite_ingest::source::finnhub::{FinnhubConfig, FinnhubSource};
use insite_ingest::source::rss::{RssConfig, RssSource};
use insite_ingest::source::SourceStats;
use insite_ingest::{BatchConfig, FilesConfig, IngestReport, PublisherConfig, SyntheticConfig};
use insite_schemas::{SourceName, Symbol};

use crate::config::InsiteConfig;

/// Arguments of `insite ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(subcommand)]
    feed: Feed,

    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long, global = true)]
    metrics_addr: Option<SocketAddr>,

    /// Most publishes awaiting their ack at once.
    #[arg(long, global = true, default_value_t = 4_096)]
    max_in_flight: usize,

    /// Seconds to wait for one ack before sending again (same id).
    #[arg(long, global = true, default_value_t = 5.0)]
    ack_timeout_s: f64,
}

/// Batching options shared by the synthetic and file feeds (their
/// defaults differ: a live feed wants small, prompt messages; a file wants
/// big ones, cut below the allowed lateness).
#[derive(Debug, Args)]
struct BatchArgs {
    /// Most trades or quotes of one symbol per message (1: one event per
    /// message) [default: 16 for synthetic, 1024 for files].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Event-time slice after which open batches are sent, in ms; keep it
    /// below the pipeline's allowed lateness, or batching itself makes
    /// events late [default: 100 for synthetic, 1000 for files].
    #[arg(long)]
    batch_ms: Option<i64>,
    /// Most posts of one source per message (1: one post per message, so
    /// JetStream drops repeated posts by id).
    #[arg(long, default_value_t = 1)]
    post_batch_size: usize,
}

impl BatchArgs {
    /// The batching of a live (synthetic) feed.
    fn live(&self) -> BatchConfig {
        BatchConfig {
            max_events: self.batch_size.unwrap_or(16),
            max_posts: self.post_batch_size,
            slice_ms: self.batch_ms.unwrap_or(100),
        }
    }

    /// The batching of a file feed.
    fn files(&self) -> BatchConfig {
        let defaults = BatchConfig::for_files();
        BatchConfig {
            max_events: self.batch_size.unwrap_or(defaults.max_events),
            max_posts: self.post_batch_size,
            slice_ms: self.batch_ms.unwrap_or(defaults.slice_ms),
        }
    }
}

/// The history files `insite ingest files` publishes and `insite backfill`
/// computes over: insite's layouts, or the vendor's flat-file layouts
/// (told apart by their header), plain or gzip.
#[derive(Debug, Clone, Args)]
pub struct InputFiles {
    /// Trades CSV: insite's layout (`symbol,ts,price,size[,trade_id,exchange,conditions]`)
    /// or the vendor flat-file layout (`ticker,...,sip_timestamp,...` in
    /// nanoseconds); plain or gzip.
    #[arg(long)]
    pub trades: Option<PathBuf>,
    /// Quotes CSV (`symbol,ts,bid,bid_size,ask,ask_size`, or the vendor
    /// layout); plain or gzip.
    #[arg(long)]
    pub quotes: Option<PathBuf>,
    /// Posts JSONL (`id, ts, source, author, text[, followers, cashtags]`);
    /// plain or gzip.
    #[arg(long)]
    pub posts: Option<PathBuf>,
}

impl InputFiles {
    /// Whether no file is given.
    pub fn is_empty(&self) -> bool {
        self.trades.is_none() && self.quotes.is_none() && self.posts.is_none()
    }
}

#[derive(Debug, Subcommand)]
enum Feed {
    /// A seeded market and social simulator.
    Synthetic {
        /// Seed: same seed and start, same events and messages.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Number of symbols (well-known tickers first).
        #[arg(long, default_value_t = 50)]
        symbols: usize,
        /// Explicit comma-separated symbols instead.
        #[arg(long, value_delimiter = ',')]
        symbol_list: Vec<String>,
        /// Market events (trades and quotes) per second of event time.
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        /// Publish as fast as possible (event time still advances at --rate).
        #[arg(long)]
        max: bool,
        /// Stop after this much event time (e.g. 30s, 5m, 500ms).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Event time of the first event (RFC 3339 or epoch ms; default now).
        #[arg(long)]
        start: Option<String>,
        /// Share of market events that are quotes.
        #[arg(long, default_value_t = 0.5)]
        quote_share: f64,
        /// Posts per second of event time.
        #[arg(long, default_value_t = 20.0)]
        posts_per_s: f64,
        /// Share of posts repeating an earlier one (same id).
        #[arg(long, default_value_t = 0.02)]
        duplicate_share: f64,
        /// Deliver events up to this late (out of order within the bound).
        #[arg(long, default_value_t = 0)]
        jitter_ms: u64,
        #[command(flatten)]
        batch: BatchArgs,
    },
    /// Publish trades/quotes CSV and posts JSONL files (`replay` is an
    /// older name for it; `insite replay` re-runs the pipeline over a
    /// stream range, which is something else).
    #[command(visible_alias = "replay")]
    Files {
        #[command(flatten)]
        files: InputFiles,
        /// Replay at N times the original pace.
        #[arg(long, conflicts_with = "max")]
        speed: Option<f64>,
        /// As fast as possible (the default).
        #[arg(long)]
        max: bool,
        #[command(flatten)]
        batch: BatchArgs,
    },
    /// Live trades from a Finnhub-protocol WebSocket.
    Ws {
        /// WebSocket URL.
        #[arg(long, default_value = "wss://ws.finnhub.io")]
        url: String,
        /// Comma-separated symbols to subscribe to.
        #[arg(long, value_delimiter = ',', required = true)]
        symbols: Vec<String>,
        /// API token (better from the environment).
        #[arg(long, env = "INSITE_FINNHUB_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// News from an RSS/Atom feed, polled.
    Rss {
        /// Feed URL.
        #[arg(long)]
        url: String,
        /// Time between polls (e.g. 60s, 5m).
        #[arg(long, value_parser = parse_duration, default_value = "60s")]
        every: Duration,
        /// Source name for the posts (`social.posts.<source>`).
        #[arg(long, default_value = "news")]
        source: String,
    },
}

/// Parses `500ms`, `10s`, `5m`, `1h` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 10s, 5m or 1h"))?;
    let seconds = match unit {
        "ms" => value / 1_000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3_600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

fn symbols(list: &[String]) -> anyhow::Result<Vec<Symbol>> {
    list.iter()
        .map(|s| Symbol::new(&s.trim().to_ascii_uppercase()).map_err(anyhow::Error::from))
        .collect()
}

/// Runs `insite ingest`.
pub fn run(config: &InsiteConfig, args: IngestArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(config, args))
}

async fn run_async(config: &InsiteConfig, args: IngestArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.metrics_addr {
        crate::metrics::exporter()
            .context("metric buckets")?
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("serving metrics on {addr}"))?;
        insite_ingest::metrics::IngestMetrics::describe();
        eprintln!("metrics on http://{addr}/metrics");
    }
    let publisher = PublisherConfig {
        max_in_flight: args.max_in_flight,
        ack_timeout: Duration::try_from_secs_f64(args.ack_timeout_s).context("--ack-timeout-s")?,
        ..PublisherConfig::default()
    };
    let js = insite_ingest::connect(&config.nats).await?;
    let streams = &config.nats.streams;
    let shutdown = crate::signal::shutdown_on_signal();
    let started = std::time::Instant::now();
    let report: IngestReport = match args.feed {
        Feed::Synthetic {
            seed,
            symbols: count,
            symbol_list,
            rate,
            max,
            duration,
            count: events,
            start,
            quote_share,
            posts_per_s,
            duplicate_share,
            jitter_ms,
            batch,
        } => {
            let mut synthetic = SyntheticConfig {
                seed,
                symbols: count,
                symbol_list: symbols(&symbol_list)?,
                rate,
                max_speed: max,
                // A feed of given times is paced from its first event.
                wall_clock: start.is_none(),
                duration,
                count: events,
                quote_share,
                posts_per_s,
                duplicate_share,
                jitter_ms,
                batch: batch.live(),
                publisher,
                ..SyntheticConfig::default()
            };
            if let Some(start) = start {
                synthetic.start_ms = insite_schemas::time::parse_time(&start)
                    .map_err(|e| anyhow::anyhow!("--start: {e}"))?;
            }
            insite_ingest::run_synthetic(&js, streams, synthetic, shutdown).await?
        }
        Feed::Files {
            files,
            speed,
            max: _,
            batch,
        } => {
            let replay = FilesConfig {
                trades: files.trades,
                quotes: files.quotes,
                posts: files.posts,
                speed,
                batch: batch.files(),
                publisher,
            };
            insite_ingest::publish_files(&js, streams, replay, shutdown).await?
        }
        Feed::Ws {
            url,
            symbols: list,
            token,
        } => {
            let mut ws = FinnhubConfig::new(url, symbols(&list)?);
            ws.token = token;
            let stats = Arc::new(SourceStats::default());
            insite_ingest::run_source(
                &js,
                streams,
                FinnhubSource::new(ws),
                publisher,
                stats,
                shutdown,
            )
            .await?
        }
        Feed::Rss { url, every, source } => {
            let mut rss = RssConfig::new(url, every)?;
            rss.source = SourceName::new(&source)?;
            let stats = Arc::new(SourceStats::default());
            insite_ingest::run_source(
                &js,
                streams,
                RssSource::new(rss),
                publisher,
                stats,
                shutdown,
            )
            .await?
        }
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{report} in {secs:.2} s ({:.0} events/s, {:.0} messages/s)",
        report.events as f64 / secs.max(1e-9),
        report.acked as f64 / secs.max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
