//! The streaming path over the same file: `insite ingest files` into fresh
//! JetStream streams (its own names), checked by reading the stream back,
//! and optionally a fresh `insite pipeline run` over what it published,
//! timed until every trade is in ClickHouse.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::consumer::{pull, AckPolicy};
use futures::StreamExt;
use insite_config::InsiteConfig;
use insite_schemas::config::NatsConfig;
use insite_schemas::wire::{self, Inbound};

use super::measure::{children_cpu, wait_measured, Measured};
use crate::child::InsiteChild;

/// What the market stream holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamCounts {
    /// Messages.
    pub messages: u64,
    /// Trades in them.
    pub trades: u64,
}

/// Runs `insite ingest files --trades <file>` as a child configured by
/// `config` until it exits.
pub fn ingest_files(
    insite: &Path,
    config: &InsiteConfig,
    trades: &Path,
    timeout: Duration,
) -> anyhow::Result<Measured> {
    let file = trades
        .to_str()
        .context("the trades file's path is not UTF-8")?;
    let cpu_before = children_cpu()?;
    let started = Instant::now();
    let mut child = InsiteChild::spawn(
        insite,
        "ingest-files",
        config,
        &["--log", "warn", "ingest", "files", "--trades", file],
    )?;
    let pid = child.pid();
    wait_measured(
        "insite ingest files",
        pid,
        || child.try_wait(),
        started,
        cpu_before,
        timeout,
    )
}

/// Reads the whole market stream back (an ephemeral consumer without
/// acks) and counts its messages and trades.
pub async fn count_stream(nats: &NatsConfig) -> anyhow::Result<StreamCounts> {
    let js = insite_ingest::connect(nats).await?;
    let mut stream = js
        .get_stream(&nats.streams.market)
        .await
        .with_context(|| format!("the stream {}", nats.streams.market))?;
    let total = stream.info().await?.state.messages;
    let mut counts = StreamCounts::default();
    if total == 0 {
        return Ok(counts);
    }
    let consumer = stream
        .create_consumer(pull::Config {
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while counts.messages < total {
        let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .context("no message from the market stream for 30 s")?
            .context("the market stream's messages ended")?
            .map_err(|e| anyhow::anyhow!("reading the market stream: {e}"))?;
        let schema = message
            .headers
            .as_ref()
            .and_then(|h| h.get(wire::SCHEMA_HEADER))
            .map(|v| v.as_str());
        if let Inbound::Trades(t) = wire::decode_inbound(schema, &message.payload)? {
            counts.trades += t.len() as u64;
        }
        counts.messages += 1;
    }
    Ok(counts)
}

/// A fresh `insite pipeline run` over a published stream.
#[derive(Debug, Clone, Copy)]
pub struct PipelineRun {
    /// From its start until every trade was in ClickHouse and the
    /// 1-minute bars had stopped changing.
    pub elapsed: Duration,
    /// Its peak RSS, KiB.
    pub peak_rss_kib: u64,
    /// Its user + system CPU time, start to stop.
    pub cpu: Duration,
}

/// Rows in `table` of `client`'s database (0 while it does not exist).
async fn count(client: &clickhouse::Client, sql: &str) -> u64 {
    client.query(sql).fetch_one::<u64>().await.unwrap_or(0)
}

/// Runs `insite pipeline run` (configured by `config`, whose `[pipeline]`
/// has the phase's own name and durables) until `trades` trades are in
/// ClickHouse and its 1-minute bars have not changed for a second, then
/// stops it with SIGTERM. Windows still open then (the last of each
/// symbol: nothing later moves the watermark past them) are not final.
pub async fn pipeline_run(
    insite: &Path,
    config: &InsiteConfig,
    trades: u64,
    timeout: Duration,
) -> anyhow::Result<PipelineRun> {
    let client = insite_sinks::clickhouse::connect(&config.clickhouse);
    let cpu_before = children_cpu()?;
    let started = Instant::now();
    let mut child = InsiteChild::spawn(
        insite,
        &config.pipeline.name,
        config,
        &["--log", "warn", "pipeline", "run", "--no-metrics"],
    )?;
    let pid = child.pid();
    let mut peak_rss_kib = 0;
    let (mut bars, mut bars_changed) = (0, started.elapsed());
    let mut trades_in = None;
    let elapsed = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(hwm) = crate::procstat::status_kib(pid, "VmHWM") {
            peak_rss_kib = peak_rss_kib.max(hwm);
        }
        anyhow::ensure!(
            child.try_wait()?.is_none(),
            "the pipeline exited before its input was in ClickHouse"
        );
        let rows = count(&client, "SELECT count() FROM trades").await;
        let now_bars = count(&client, "SELECT count() FROM bars WHERE interval_s = 60").await;
        let now = started.elapsed();
        if now_bars != bars {
            (bars, bars_changed) = (now_bars, now);
        }
        if rows >= trades && trades_in.is_none() {
            trades_in = Some(now);
        }
        if let Some(trades_in) = trades_in {
            if now - bars_changed >= Duration::from_secs(1) {
                break trades_in.max(bars_changed);
            }
        }
        anyhow::ensure!(
            now < timeout,
            "only {rows} of {trades} trades in ClickHouse after {:.0} s",
            timeout.as_secs_f64()
        );
    };
    let status = child
        .terminate(Duration::from_secs(30))
        .await
        .context("stopping the pipeline")?;
    anyhow::ensure!(
        status.is_some_and(|s| s.success()),
        "the pipeline did not stop cleanly: {status:?}"
    );
    Ok(PipelineRun {
        elapsed,
        peak_rss_kib,
        cpu: children_cpu()?.saturating_sub(cpu_before),
    })
}
