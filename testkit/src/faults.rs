//! The node-loss fault suite on the local cluster (`insite_local::cluster`).
//!
//! With a steady synthetic feed (`insite ingest synthetic` at a few
//! thousand events/s) and a steady query load through the load balancer,
//! it kills one node at a time with SIGKILL, restarts it (`cluster::up`,
//! which restarts the whole pipeline when one of its processes is gone)
//! and measures, for each fault:
//!
//! - requests served and failed through the load balancer from the kill to
//!   full service, and the availability they give;
//! - the time to full service: every node healthy again, the query service
//!   answering, and (for a lost pipeline process) the pipeline reading at
//!   full rate again (its consumers moving at least as fast as the streams
//!   grow). A restarted pipeline re-reads from its checkpoint, which trails
//!   by up to the longest window (5 minutes of input by default).
//!
//! After the faults, still under the same feed and load, the suite rescales
//! the application tier ([`Shape::RESCALES`]): a third query instance
//! joins the load balancer and leaves again, and the pipeline goes from 2
//! to 3 to 1 processes (a stop and start: timely's topology is fixed; each
//! new process records its own frontier from the pipeline's before it
//! starts, so records of a gone topology never speak for the new one). For
//! each rescale it measures the same availability and time to full
//! service, then how the work spreads over the next `settle`: requests per
//! query instance (the load balancer's counts) and results per pipeline
//! process.
//!
//! After the last rescale the feed stops and the pipeline drains; then the
//! suite counts events acknowledged by JetStream but missing from the
//! streams or from ClickHouse, and compares `bars` and `sentiment` (FINAL)
//! with a replay of the same streams into a separate database on one server
//! (a run without faults over the same input).
//!
//! First, before the pipeline starts, `insite backfill` writes a day of
//! recorded trades long before the feed's into the cluster's empty
//! database ([`BackfillCheck`]), and the suite counts the backfilled rows on
//! each ClickHouse server's local tables as soon as the backfill returns:
//! with the insert quorum, both replicas of each shard hold every row by
//! then. The comparisons below leave the backfilled range out.
//!
//! [`run`] does all of it on a cluster it starts fresh and stops at the end
//! (also on failure); [`Report`] prints as the table in
//! `docs/benchmarks.md`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use insite_config::InsiteConfig;
use insite_local::cluster::{self, layout, ClusterConfig, Node, NodeKind};
use insite_local::Health;
use insite_pipeline::source::StreamRange;
use insite_pipeline::ReplaySpec;
use insite_schemas::config::{ClickHouseConfig, Connections};

use crate::results::{close, read_bars, read_sentiment, BarTable, SentimentTable};

/// A kind of node loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The NATS server leading the MARKET stream.
    NatsLeader,
    /// A Redis master (its replica is promoted).
    RedisMaster,
    /// A ClickHouse replica.
    ClickHouseReplica,
    /// A query instance.
    QueryInstance,
    /// A pipeline process (the pipeline restarts as a whole).
    PipelineProcess,
}

impl FaultKind {
    /// Every kind, in the order the suite runs them.
    pub const ALL: [FaultKind; 5] = [
        Self::QueryInstance,
        Self::RedisMaster,
        Self::NatsLeader,
        Self::ClickHouseReplica,
        Self::PipelineProcess,
    ];

    /// What is lost, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NatsLeader => "NATS node (MARKET leader)",
            Self::RedisMaster => "Redis master",
            Self::ClickHouseReplica => "ClickHouse replica",
            Self::QueryInstance => "query instance",
            Self::PipelineProcess => "pipeline process",
        }
    }
}

/// A shape of the cluster's application tier, reached under the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Query instances behind the load balancer.
    pub query_instances: usize,
    /// Pipeline processes (one timely cluster).
    pub pipeline_processes: usize,
}

impl Shape {
    /// The rescales the suite runs after the faults, from 2 query
    /// instances and 2 pipeline processes: a third query instance in, then
    /// out; the pipeline 2 → 3 → 1; then one query instance, so that the
    /// shares of one and of two instances and processes are measured in
    /// the same run.
    pub const RESCALES: [Shape; 5] = [
        Shape::new(3, 2),
        Shape::new(2, 2),
        Shape::new(2, 3),
        Shape::new(2, 1),
        Shape::new(1, 1),
    ];

    /// `query_instances` query instances and `pipeline_processes` pipeline
    /// processes.
    pub const fn new(query_instances: usize, pipeline_processes: usize) -> Self {
        Self {
            query_instances,
            pipeline_processes,
        }
    }

    fn of(cluster: &ClusterConfig) -> Self {
        Self::new(cluster.query_instances, cluster.pipeline_processes)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} query, {} pipeline",
            self.query_instances, self.pipeline_processes
        )
    }
}

/// One rescale's figures, and how the work spread once it was done.
#[derive(Debug, Clone)]
pub struct RescaleOutcome {
    /// The shape before.
    pub from: Shape,
    /// The shape after.
    pub to: Shape,
    /// Requests answered 2xx/4xx from the start of the rescale to full
    /// service.
    pub served: u64,
    /// Requests failed (5xx, errors, timeouts) in that time.
    pub failed: u64,
    /// From the start of the rescale to full service.
    pub recovery: Duration,
    /// Requests the load balancer sent to each query instance over the
    /// steady window after the rescale.
    pub query_share: Vec<(Node, u64)>,
    /// Results each pipeline process produced over that window
    /// (`insite_pipeline_results_out_total`).
    pub pipeline_share: Vec<(Node, f64)>,
}

impl RescaleOutcome {
    /// Served over all requests during the rescale, in %.
    pub fn availability(&self) -> f64 {
        availability(self.served, self.failed)
    }
}

/// A backfill into the cluster (`insite backfill --trades`, recorded
/// trades of a day long before the live feed's), and where its rows are
/// once it returned.
#[derive(Debug, Clone, Default)]
pub struct BackfillCheck {
    /// Trades and bars in the backfilled range, read through the
    /// `Distributed` tables (one replica of each shard).
    pub rows: u64,
    /// Of them, trades (not the feed's: left out of the raw rows compared
    /// with the run without faults).
    pub trades: u64,
    /// The same rows on each ClickHouse server's local tables, counted as
    /// soon as the backfill returned, with the server's (shard, replica).
    pub per_server: Vec<(Node, (usize, usize), u64)>,
}

impl BackfillCheck {
    /// Whether the backfill wrote rows and both replicas of every shard
    /// held all of that shard's rows when it returned (what the insert
    /// quorum promises).
    pub fn on_every_replica(&self) -> bool {
        let mut shards: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        for (_, (shard, _), rows) in &self.per_server {
            shards.entry(*shard).or_default().push(*rows);
        }
        let replicas_agree = shards
            .values()
            .all(|counts| counts.len() == 2 && counts[0] == counts[1]);
        let sum: u64 = shards.values().filter_map(|c| c.first()).sum();
        self.rows > 0 && replicas_agree && sum == self.rows
    }
}

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct FaultSuite {
    /// The `insite` binary the cluster's processes and the feed run.
    pub insite: PathBuf,
    /// The cluster (its folder is emptied first).
    pub cluster: ClusterConfig,
    /// The base config (the cluster's is derived from it).
    pub config: InsiteConfig,
    /// Market events per second of the feed.
    pub rate: f64,
    /// Concurrent query clients (each sends a request, then waits 10 ms).
    pub query_clients: usize,
    /// The faults, in order.
    pub faults: Vec<FaultKind>,
    /// How long a killed node stays down before it is restarted.
    pub down_for: Duration,
    /// Steady running before the first fault and between faults.
    pub settle: Duration,
    /// Shapes reached one after another once the faults are done (see
    /// [`Shape::RESCALES`]); the shares are measured over `settle` after
    /// each.
    pub rescales: Vec<Shape>,
}

/// One fault's figures.
#[derive(Debug, Clone)]
pub struct FaultOutcome {
    /// What was lost.
    pub kind: FaultKind,
    /// The node killed.
    pub node: Node,
    /// Requests answered 2xx/4xx from the kill to full service.
    pub served: u64,
    /// Requests failed (5xx, errors, timeouts) in that time.
    pub failed: u64,
    /// From the kill to full service.
    pub recovery: Duration,
}

impl FaultOutcome {
    /// Served over all requests, in %.
    pub fn availability(&self) -> f64 {
        availability(self.served, self.failed)
    }
}

fn availability(served: u64, failed: u64) -> f64 {
    let total = served + failed;
    if total == 0 {
        100.0
    } else {
        100.0 * served as f64 / total as f64
    }
}

/// What the suite measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Each fault.
    pub faults: Vec<FaultOutcome>,
    /// Each rescale, after the faults.
    pub rescales: Vec<RescaleOutcome>,
    /// Messages JetStream acknowledged to the feed, duplicates excluded.
    pub acked_messages: u64,
    /// Messages the MARKET and SOCIAL streams hold.
    pub stream_messages: u64,
    /// Trades, quotes and posts in the cluster's ClickHouse.
    pub live_rows: u64,
    /// The same, in the replay without faults.
    pub baseline_rows: u64,
    /// Final bar windows compared, and how many differ.
    pub bars: (usize, usize),
    /// Final sentiment windows compared, and how many differ.
    pub sentiment: (usize, usize),
    /// All requests through the load balancer during the whole run.
    pub total: (u64, u64),
    /// The machine's load average at the start.
    pub load_average: String,
    /// Resident memory by kind of node at the end of the faults (MiB).
    pub memory: Vec<(NodeKind, u64)>,
    /// When requests failed, in seconds from the start of the load.
    pub failures_at: Vec<f64>,
    /// When the first fault was injected, in seconds from the start.
    pub faults_start: f64,
    /// Requests the load balancer sent to each query instance.
    pub query_share: Vec<(Node, u64)>,
    /// Results each pipeline process wrote since its last start
    /// (`insite_pipeline_results_out_total`).
    pub pipeline_share: Vec<(Node, f64)>,
    /// The backfill into the cluster, before the feed.
    pub backfill: BackfillCheck,
}

/// `(node, value)` as shares in %, for the report.
fn shares<T: Copy + Into<f64>>(values: &[(Node, T)]) -> String {
    let total: f64 = values.iter().map(|(_, v)| (*v).into()).sum();
    values
        .iter()
        .map(|(node, v)| {
            let v: f64 = (*v).into();
            format!(
                "{node} {:.0} %",
                if total > 0.0 { 100.0 * v / total } else { 0.0 }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sum of the samples of `metric` on a Prometheus text page.
fn metric_sum(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl Report {
    /// Events acknowledged but missing from the streams or ClickHouse.
    pub fn lost(&self) -> u64 {
        self.acked_messages.saturating_sub(self.stream_messages)
            + self.baseline_rows.saturating_sub(self.live_rows)
    }

    /// Whether the tables equal the run without faults.
    pub fn identical(&self) -> bool {
        self.bars.1 == 0 && self.sentiment.1 == 0 && self.bars.0 > 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| node lost | node | served | failed | availability | time to full service |"
        )?;
        writeln!(f, "|---|---|---:|---:|---:|---:|")?;
        for o in &self.faults {
            writeln!(
                f,
                "| {} | {} | {} | {} | {:.3} % | {:.1} s |",
                o.kind.describe(),
                o.node,
                o.served,
                o.failed,
                o.availability(),
                o.recovery.as_secs_f64()
            )?;
        }
        if !self.rescales.is_empty() {
            writeln!(
                f,
                "\n| rescale | served | failed | availability | time to full service | requests per query instance | results per pipeline process |"
            )?;
            writeln!(f, "|---|---:|---:|---:|---:|---|---|")?;
            for r in &self.rescales {
                writeln!(
                    f,
                    "| {} → {} | {} | {} | {:.3} % | {:.1} s | {} | {} |",
                    r.from,
                    r.to,
                    r.served,
                    r.failed,
                    r.availability(),
                    r.recovery.as_secs_f64(),
                    shares(
                        &r.query_share
                            .iter()
                            .map(|(n, v)| (*n, *v as f64))
                            .collect::<Vec<_>>()
                    ),
                    shares(&r.pipeline_share)
                )?;
            }
        }
        writeln!(
            f,
            "\nWhole run: {} requests served, {} failed ({:.3} %).",
            self.total.0,
            self.total.1,
            availability(self.total.0, self.total.1)
        )?;
        writeln!(
            f,
            "Events: {} messages acknowledged, {} in the streams; {} trades+quotes+posts in ClickHouse, {} in the run without faults: {} lost.",
            self.acked_messages, self.stream_messages, self.live_rows, self.baseline_rows, self.lost()
        )?;
        writeln!(
            f,
            "Tables (FINAL) against the run without faults: bars {} windows, {} differ; sentiment {} windows, {} differ: {}.",
            self.bars.0,
            self.bars.1,
            self.sentiment.0,
            self.sentiment.1,
            if self.identical() { "identical" } else { "DIFFERENT" }
        )?;
        let memory: Vec<String> = self
            .memory
            .iter()
            .map(|(kind, mib)| format!("{kind} {mib} MiB"))
            .collect();
        let total: u64 = self.memory.iter().map(|(_, m)| m).sum();
        writeln!(
            f,
            "Resident memory under load: {} (total {total} MiB).",
            memory.join(", ")
        )?;
        if let (Some(first), Some(last)) = (self.failures_at.first(), self.failures_at.last()) {
            writeln!(
                f,
                "Failed requests between {first:.1} s and {last:.1} s of the run (faults from {:.1} s).",
                self.faults_start
            )?;
        }
        writeln!(
            f,
            "Share of requests per query instance: {}; of results per pipeline process: {}.",
            shares(
                &self
                    .query_share
                    .iter()
                    .map(|(n, v)| (*n, *v as f64))
                    .collect::<Vec<_>>()
            ),
            shares(&self.pipeline_share)
        )?;
        writeln!(
            f,
            "Backfill into the cluster: {} trades and bars; per server when it returned: {}: {}.",
            self.backfill.rows,
            self.backfill
                .per_server
                .iter()
                .map(|(node, (shard, replica), rows)| {
                    format!("{node} (shard {shard}, replica {replica}) {rows}")
                })
                .collect::<Vec<_>>()
                .join(", "),
            if self.backfill.on_every_replica() {
                "on both replicas of every shard"
            } else {
                "NOT on every replica"
            }
        )?;
        write!(f, "Load average at the start: {}.", self.load_average)
    }
}

/// Stops the cluster when dropped (so a failed run cleans up too).
struct ClusterGuard(ClusterConfig);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(e) = cluster::down(&self.0) {
            tracing::warn!(error = %e, "stopping the cluster");
        }
    }
}

/// Stops the feed when dropped.
struct Feed(Option<Child>);

impl Feed {
    /// Stops it with SIGTERM (it flushes and prints its report) and returns
    /// (acknowledged, duplicates) from that report.
    fn stop(&mut self) -> (u64, u64) {
        let Some(child) = self.0.take() else {
            return (0, 0);
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let output = child.wait_with_output().expect("waiting for the feed");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let number = |word: &str| -> u64 {
            text.split(',')
                .find_map(|part| {
                    let part = part.trim();
                    part.strip_prefix(word)
                        .and_then(|rest| rest.split_whitespace().next())
                        .and_then(|n| n.parse().ok())
                })
                .unwrap_or(0)
        };
        let (acked, duplicates) = (number("acked "), number("duplicates "));
        assert!(acked > 0, "the feed reported nothing: {text:?}");
        (acked, duplicates)
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// (time since the start, succeeded) of every request.
type Requests = Arc<Mutex<Vec<(Duration, bool)>>>;

/// Sends requests through the load balancer until `stop`.
fn query_load(
    url: String,
    clients: usize,
    started: Instant,
    stop: tokio_util::sync::CancellationToken,
) -> (Requests, Vec<tokio::task::JoinHandle<()>>) {
    let log: Requests = Arc::default();
    let paths = [
        "/v1/symbols/AAPL/quote",
        "/v1/symbols/MSFT/bar?interval=1m",
        "/v1/symbols/NVDA/trade",
        "/v1/symbols/TSLA/bar?interval=1s",
    ];
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("an HTTP client");
    let tasks = (0..clients.max(1))
        .map(|c| {
            let (http, url, log, stop) = (http.clone(), url.clone(), log.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = c;
                while !stop.is_cancelled() {
                    let path = paths[n % paths.len()];
                    n += 1;
                    let ok = match http.get(format!("{url}{path}")).send().await {
                        Ok(response) => !response.status().is_server_error(),
                        Err(_) => false,
                    };
                    log.lock().unwrap().push((started.elapsed(), ok));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    (log, tasks)
}

fn count(log: &Requests, from: Duration, to: Duration) -> (u64, u64) {
    let log = log.lock().unwrap();
    let mut served = 0;
    let mut failed = 0;
    for (at, ok) in log.iter().filter(|(at, _)| *at >= from && *at <= to) {
        let _ = at;
        if *ok {
            served += 1;
        } else {
            failed += 1;
        }
    }
    (served, failed)
}

/// `cluster::up` off the async threads.
async fn up(config: &ClusterConfig) {
    let config = config.clone();
    tokio::task::spawn_blocking(move || cluster::up(&config, &mut |_| {}))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cluster up: {e}"));
}

/// The durable consumers' state: (messages not yet delivered, stream
/// sequences delivered, the streams' last sequences), summed over MARKET
/// and SOCIAL.
async fn consumers(
    js: &async_nats::jetstream::Context,
    config: &InsiteConfig,
) -> Option<(u64, u64, u64)> {
    let streams = &config.nats.streams;
    let consumer = &config.pipeline.consumer;
    let mut total = (0, 0, 0);
    for (stream, durable) in [
        (&streams.market, &consumer.market_durable),
        (&streams.social, &consumer.social_durable),
    ] {
        let mut stream = js.get_stream(stream).await.ok()?;
        let last = stream.info().await.ok()?.state.last_sequence;
        let mut c: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(durable).await.ok()?;
        let info = c.info().await.ok()?;
        total.0 += info.num_pending;
        total.1 += info.delivered.stream_sequence;
        total.2 += last;
    }
    Some(total)
}

/// Messages the durable consumers have not yet been delivered.
async fn pending(js: &async_nats::jetstream::Context, config: &InsiteConfig) -> Option<u64> {
    consumers(js, config).await.map(|c| c.0)
}

/// Whether the pipeline reads at full rate: over two seconds its consumers
/// move at least as far as the streams grow (so it keeps up with the feed
/// and works off any backlog).
async fn at_full_rate(js: &async_nats::jetstream::Context, config: &InsiteConfig) -> bool {
    let Some((_, delivered_0, last_0)) = consumers(js, config).await else {
        return false;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let Some((pending, delivered_1, last_1)) = consumers(js, config).await else {
        return false;
    };
    let read = delivered_1.saturating_sub(delivered_0);
    let grew = last_1.saturating_sub(last_0);
    pending == 0 || (read > 0 && read >= grew)
}

/// Waits for full service: every node healthy and, with `pipeline`, the
/// pipeline reading at full rate ([`at_full_rate`]); panics once `limit`
/// has passed `since`, naming what happened then (`after`).
async fn wait_full_service(
    cluster: &ClusterConfig,
    pipeline: Option<(&async_nats::jetstream::Context, &InsiteConfig)>,
    since: Instant,
    limit: Duration,
    after: &str,
) {
    loop {
        let healthy = {
            let cluster = cluster.clone();
            tokio::task::spawn_blocking(move || all_healthy(&cluster))
                .await
                .unwrap()
        };
        let caught_up = match pipeline {
            Some((js, config)) => at_full_rate(js, config).await,
            None => true,
        };
        if healthy && caught_up {
            return;
        }
        assert!(
            since.elapsed() < limit,
            "no full service {} s after {after}",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn all_healthy(config: &ClusterConfig) -> bool {
    cluster::status(config)
        .iter()
        .all(|s| s.health == Health::Healthy)
}

/// The node to kill for `kind`.
fn victim(config: &ClusterConfig, kind: FaultKind, market: &str) -> Node {
    match kind {
        FaultKind::NatsLeader => {
            cluster::nats_stream_leader(config, market).unwrap_or(Node::new(NodeKind::Nats, 0))
        }
        FaultKind::RedisMaster => cluster::redis_masters(config)
            .first()
            .copied()
            .unwrap_or(Node::new(NodeKind::Redis, 0)),
        FaultKind::ClickHouseReplica => Node::new(NodeKind::ClickHouse, 1),
        FaultKind::QueryInstance => Node::new(NodeKind::Query, 0),
        FaultKind::PipelineProcess => Node::new(
            NodeKind::Pipeline,
            config.pipeline_processes.saturating_sub(1),
        ),
    }
}

/// Runs the suite (see the module docs).
pub async fn run(suite: FaultSuite) -> Report {
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let mut cluster = suite.cluster.clone();
    // A fresh cluster: no streams, tables or keys of an earlier run.
    let _ = cluster::down(&ClusterConfig {
        app: None,
        ..cluster.clone()
    });
    let _ = std::fs::remove_dir_all(&cluster.root);
    std::fs::create_dir_all(&cluster.root).unwrap();
    let app_config = suite.config.for_cluster(&cluster);
    let config_file = InsiteConfig::cluster_config_file(&cluster);
    app_config.write_file(&config_file).unwrap();
    cluster.app = Some(cluster::AppSpec {
        insite: suite.insite.clone(),
        config_file: config_file.clone(),
    });
    cluster.record_shape().unwrap();
    let _guard = ClusterGuard(cluster.clone());
    // The servers and the schema first: a backfill into the empty
    // database, before the pipeline records anything there.
    up(&ClusterConfig {
        app: None,
        ..cluster.clone()
    })
    .await;
    let live = ClickHouseConfig {
        url: cluster.clickhouse_url(),
        ..app_config.clickhouse.clone()
    };
    let backfill = backfill_into_cluster(&suite.insite, &config_file, &cluster, &live).await;
    up(&cluster).await;

    let feed_log = std::fs::File::create(cluster.root.join("logs").join("feed.log")).unwrap();
    let mut feed = Feed(Some(
        Command::new(&suite.insite)
            .arg("--config")
            .arg(&config_file)
            .args(["--log", "warn", "ingest", "synthetic", "--rate"])
            .arg(suite.rate.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(feed_log)
            .spawn()
            .expect("starting the feed"),
    ));
    let started = Instant::now();
    let stop_load = tokio_util::sync::CancellationToken::new();
    let (log, load) = query_load(
        cluster.query_url(),
        suite.query_clients,
        started,
        stop_load.clone(),
    );
    let nats = insite_sinks::nats::connect(&app_config.nats, "insite-faults")
        .await
        .expect("connecting to NATS");
    let js = async_nats::jetstream::new(nats);
    tokio::time::sleep(suite.settle).await;

    let faults_start = started.elapsed().as_secs_f64();
    let mut faults = Vec::new();
    for kind in &suite.faults {
        let kind = *kind;
        let node = victim(&cluster, kind, &app_config.nats.streams.market);
        let killed_at = started.elapsed();
        let t0 = Instant::now();
        cluster::kill(&cluster, node);
        tokio::time::sleep(suite.down_for).await;
        up(&cluster).await;
        // Full service: every node healthy; for the pipeline, caught up with
        // its input as it was before the fault.
        wait_full_service(
            &cluster,
            (kind == FaultKind::PipelineProcess).then_some((&js, &app_config)),
            t0,
            Duration::from_secs(300),
            &format!("losing {node}"),
        )
        .await;
        let recovery = t0.elapsed();
        let (served, failed) = count(&log, killed_at, started.elapsed());
        let outcome = FaultOutcome {
            kind,
            node,
            served,
            failed,
            recovery,
        };
        tracing::warn!(?outcome, "fault done");
        faults.push(outcome);
        tokio::time::sleep(suite.settle).await;
    }

    let mut rescales = Vec::new();
    for to in &suite.rescales {
        let from = Shape::of(&cluster);
        let begun_at = started.elapsed();
        let t0 = Instant::now();
        cluster.query_instances = to.query_instances;
        cluster.pipeline_processes = to.pipeline_processes;
        cluster.record_shape().unwrap();
        up(&cluster).await;
        let pipeline_changed = from.pipeline_processes != to.pipeline_processes;
        // A rescale restarts the whole pipeline, which re-reads up to the
        // longest window of input with more processes than cores.
        wait_full_service(
            &cluster,
            pipeline_changed.then_some((&js, &app_config)),
            t0,
            Duration::from_secs(600),
            &format!("rescaling to {to}"),
        )
        .await;
        let recovery = t0.elapsed();
        let (served, failed) = count(&log, begun_at, started.elapsed());
        let (query_share, pipeline_share) = work_shares(&cluster, suite.settle).await;
        let outcome = RescaleOutcome {
            from,
            to: *to,
            served,
            failed,
            recovery,
            query_share,
            pipeline_share,
        };
        tracing::warn!(?outcome, "rescale done");
        rescales.push(outcome);
    }

    let mut memory: BTreeMap<NodeKind, u64> = BTreeMap::new();
    for status in cluster::status(&cluster) {
        *memory.entry(status.node.kind).or_default() += status.rss_bytes.unwrap_or(0) >> 20;
    }
    let (query_share, pipeline_share) = work_done(&cluster);
    let (acked, duplicates) = feed.stop();
    stop_load.cancel();
    for task in load {
        let _ = task.await;
    }
    let total = count(&log, Duration::ZERO, started.elapsed());
    let failures_at: Vec<f64> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(at, _)| at.as_secs_f64())
        .collect();

    // Drain: nothing pending and the raw tables stop growing.
    let mut last = u64::MAX;
    let drain_deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let drained = pending(&js, &app_config).await == Some(0);
        let rows = raw_rows(&live).await;
        if drained && rows == last {
            break;
        }
        last = rows;
        assert!(
            Instant::now() < drain_deadline,
            "the pipeline did not drain"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let mut stream_messages = 0;
    for stream in [
        &app_config.nats.streams.market,
        &app_config.nats.streams.social,
    ] {
        let mut s = js.get_stream(stream).await.expect("a stream");
        stream_messages += s.info().await.expect("stream info").state.messages;
    }

    // The run without faults: the same streams replayed into a database of
    // one server.
    let baseline = Connections {
        nats: app_config.nats.clone(),
        redis: app_config.redis.clone(),
        clickhouse: ClickHouseConfig {
            url: cluster.clickhouse_node_url(0),
            database: "baseline".into(),
            insert_quorum: 0,
            ..app_config.clickhouse.clone()
        },
    };
    let spec = ReplaySpec {
        market: Some(StreamRange::default()),
        social: Some(StreamRange::default()),
        hot: false,
        progress_bar: false,
    };
    insite_pipeline::replay(&baseline, &app_config.pipeline, &spec)
        .await
        .expect("the replay without faults");
    // Compared: windows final in the live run (before its durable
    // frontier) and wholly inside the replayed input (before the replay's
    // newest window).
    let frontier = crate::results::durable_frontier(&live, &app_config.pipeline.name)
        .await
        .unwrap_or(i64::MIN);
    let newest = |keys: &mut dyn Iterator<Item = u64>| keys.max().map_or(i64::MIN, |s| s as i64);
    // The backfill's bars (of January 2026) are not the feed's.
    let (mut live_bars, base_bars) = (
        read_bars(&live).await,
        read_bars(&baseline.clickhouse).await,
    );
    live_bars.retain(|(_, _, start), _| *start as i64 >= BACKFILL_BEFORE_MS);
    let cutoff = frontier.min(newest(&mut base_bars.keys().map(|k| k.2)));
    let bars = compare_bars(&live_bars, &base_bars, cutoff);
    let (live_sent, base_sent) = (
        read_sentiment(&live).await,
        read_sentiment(&baseline.clickhouse).await,
    );
    let cutoff = frontier.min(newest(&mut base_sent.keys().map(|k| k.2)));
    let sentiment = compare_sentiment(&live_sent, &base_sent, cutoff);
    let live_rows = raw_rows(&live).await.saturating_sub(backfill.trades);
    Report {
        backfill,
        faults,
        rescales,
        acked_messages: acked.saturating_sub(duplicates),
        stream_messages,
        live_rows,
        baseline_rows: raw_rows(&baseline.clickhouse).await,
        bars,
        sentiment,
        total,
        load_average,
        memory: memory.into_iter().collect(),
        failures_at,
        faults_start,
        query_share,
        pipeline_share,
    }
}

/// Event time before which every row is the backfill's (the recorded
/// trades are of January 2026; the live feed's are of the run's day).
const BACKFILL_BEFORE_MS: i64 = 1_768_000_000_000;

/// Runs `insite backfill --trades` (the recorded trades of
/// `testkit/fixtures/pipeline/trades.csv`) into the cluster's empty
/// database through the load balancer, as an operator would with the
/// cluster's config, then counts the trades and bars before
/// [`BACKFILL_BEFORE_MS`] through the `Distributed` tables and on each
/// server's local tables. Into an empty database the backfill writes the
/// `Distributed` tables directly, with the insert quorum.
async fn backfill_into_cluster(
    insite: &std::path::Path,
    config_file: &std::path::Path,
    cluster: &ClusterConfig,
    live: &ClickHouseConfig,
) -> BackfillCheck {
    let mut command = Command::new(insite);
    command
        .arg("--config")
        .arg(config_file)
        .args(["--log", "warn", "backfill", "--quiet", "--trades"])
        .arg(crate::fixtures::file("pipeline/trades.csv"))
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("running insite backfill");
    assert!(
        output.status.success(),
        "insite backfill into the cluster failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let count = |client: clickhouse::Client, suffix: &'static str| async move {
        let mut total = (0, 0);
        for (table, column) in [("trades", "ts_ms"), ("bars", "window_start_ms")] {
            let rows = client
                .query(&format!(
                    "SELECT count() FROM {table}{suffix} WHERE {column} < {BACKFILL_BEFORE_MS}"
                ))
                .fetch_one::<u64>()
                .await
                .unwrap_or_else(|e| panic!("counting backfilled {table}{suffix}: {e}"));
            if table == "trades" {
                total.0 = rows;
            }
            total.1 += rows;
        }
        total
    };
    let mut per_server = Vec::new();
    for i in 0..layout::CLICKHOUSE_SHARDS * layout::CLICKHOUSE_REPLICAS {
        let node = ClickHouseConfig {
            url: cluster.clickhouse_node_url(i),
            ..live.clone()
        };
        let (_, rows) = count(insite_sinks::clickhouse::connect(&node), "_local").await;
        per_server.push((
            Node::new(NodeKind::ClickHouse, i),
            cluster.clickhouse_place(i),
            rows,
        ));
    }
    let (trades, rows) = count(insite_sinks::clickhouse::connect(live), "").await;
    BackfillCheck {
        rows,
        trades,
        per_server,
    }
}

/// Requests per query instance, and results per pipeline process.
type WorkShares = (Vec<(Node, u64)>, Vec<(Node, f64)>);

/// The work done so far: requests the load balancer sent to each query
/// instance, and results each pipeline process produced since its start.
fn work_done(cluster: &ClusterConfig) -> WorkShares {
    let query = (0..cluster.query_instances)
        .map(|i| {
            let node = Node::new(NodeKind::Query, i);
            let sessions = cluster::haproxy_sessions(cluster, &node.to_string());
            (node, sessions.unwrap_or(0))
        })
        .collect();
    let pipeline = (0..cluster.pipeline_processes)
        .map(|i| {
            let page = cluster::http_get(cluster.pipeline_metrics_port(i), "/metrics")
                .map(|(_, body)| body)
                .unwrap_or_default();
            (
                Node::new(NodeKind::Pipeline, i),
                metric_sum(&page, "insite_pipeline_results_out_total"),
            )
        })
        .collect();
    (query, pipeline)
}

/// How the work spreads over `window`: requests the load balancer sent to
/// each query instance, and results each pipeline process produced.
async fn work_shares(cluster: &ClusterConfig, window: Duration) -> WorkShares {
    let read = |cluster: ClusterConfig| tokio::task::spawn_blocking(move || work_done(&cluster));
    let (query_0, pipeline_0) = read(cluster.clone()).await.unwrap();
    tokio::time::sleep(window).await;
    let (query_1, pipeline_1) = read(cluster.clone()).await.unwrap();
    let query = query_1
        .iter()
        .zip(&query_0)
        .map(|((node, after), (_, before))| (*node, after.saturating_sub(*before)))
        .collect();
    let pipeline = pipeline_1
        .iter()
        .zip(&pipeline_0)
        .map(|((node, after), (_, before))| (*node, (after - before).max(0.0)))
        .collect();
    (query, pipeline)
}

/// Distinct trades, quotes and posts (FINAL) in `clickhouse`'s database.
async fn raw_rows(clickhouse: &ClickHouseConfig) -> u64 {
    let client = insite_sinks::clickhouse::connect(clickhouse);
    let mut total = 0;
    for table in ["trades", "quotes", "posts"] {
        total += client
            .query(&format!("SELECT count() FROM {table} FINAL"))
            .fetch_one::<u64>()
            .await
            .unwrap_or(0);
    }
    total
}

/// Keys of windows that end at or before `cutoff` (final in both runs).
fn closed<V: Clone>(
    table: &BTreeMap<(String, u32, u64), V>,
    cutoff: i64,
) -> BTreeMap<(String, u32, u64), V> {
    table
        .iter()
        .filter(|((_, interval_s, start), _)| {
            (*start as i64).saturating_add(i64::from(*interval_s) * 1_000) <= cutoff
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// (windows compared, windows that differ or are missing on either side).
fn compare_bars(live: &BarTable, baseline: &BarTable, cutoff: i64) -> (usize, usize) {
    let (live, baseline) = (closed(live, cutoff), closed(baseline, cutoff));
    let keys: std::collections::BTreeSet<_> = live.keys().chain(baseline.keys()).collect();
    let differ = keys
        .iter()
        .filter(|k| match (live.get(**k), baseline.get(**k)) {
            (Some(g), Some(w)) => {
                !(close(g.0, w.0)
                    && close(g.1, w.1)
                    && close(g.2, w.2)
                    && close(g.3, w.3)
                    && g.4 == w.4
                    && close(g.5, w.5)
                    && g.6 == w.6)
            }
            _ => true,
        })
        .count();
    (keys.len(), differ)
}

/// (windows compared, windows that differ or are missing on either side).
fn compare_sentiment(
    live: &SentimentTable,
    baseline: &SentimentTable,
    cutoff: i64,
) -> (usize, usize) {
    let (live, baseline) = (closed(live, cutoff), closed(baseline, cutoff));
    let keys: std::collections::BTreeSet<_> = live.keys().chain(baseline.keys()).collect();
    let differ = keys
        .iter()
        .filter(|k| match (live.get(**k), baseline.get(**k)) {
            (Some(g), Some(w)) => {
                !(g.0 == w.0
                    && close(g.1, w.1)
                    && g.2 == w.2
                    && g.3 == w.3
                    && g.4 == w.4
                    && close(g.5, w.5))
            }
            _ => true,
        })
        .count();
    (keys.len(), differ)
}
