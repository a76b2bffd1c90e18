//! `insite-bench faults`: the node-loss fault suite on a local cluster of
//! its own (`insite_testkit::faults`), printed as the report table of
//! `docs/benchmarks.md`.
//!
//! The cluster lives under `<local.root>/cluster-faults/` on ports from
//! `--base-port` (21000), apart from a developer's `insite cluster up`
//! (20000), and is stopped at the end, also when the suite fails.

use std::time::Duration;

use clap::Args;
use insite_config::InsiteConfig;
use insite_testkit::faults::{self, FaultKind, FaultSuite, Shape};

use crate::child::InsiteBinaryArgs;

/// Arguments of `insite-bench faults`.
#[derive(Debug, Args)]
pub struct BenchFaultsArgs {
    #[command(flatten)]
    insite: InsiteBinaryArgs,
    /// Market events per second of the feed.
    #[arg(long, default_value_t = 3_000.0)]
    rate: f64,
    /// Concurrent query clients through the load balancer.
    #[arg(long, default_value_t = 4)]
    query_clients: usize,
    /// Seconds a killed node stays down before it is restarted.
    #[arg(long, default_value_t = 5)]
    down_s: u64,
    /// Seconds of steady running before the first fault and after each.
    #[arg(long, default_value_t = 15)]
    settle_s: u64,
    /// Pipeline processes.
    #[arg(long, default_value_t = 2)]
    pipeline_processes: usize,
    /// Skip the rescales after the faults (a third query instance in and
    /// out, the pipeline 2 → 3 → 1, then one query instance).
    #[arg(long)]
    no_rescales: bool,
    /// The cluster's first port.
    #[arg(long, default_value_t = 21_000)]
    base_port: u16,
}

/// Runs `insite-bench faults`.
pub fn run(config: &InsiteConfig, args: BenchFaultsArgs) -> anyhow::Result<()> {
    let mut cluster = config.local.cluster_config();
    cluster.root = config.local.root.join("cluster-faults");
    cluster.base_port = args.base_port;
    cluster.pipeline_processes = args.pipeline_processes;
    let suite = FaultSuite {
        insite: args.insite.binary()?,
        cluster,
        config: config.clone(),
        rate: args.rate,
        query_clients: args.query_clients,
        faults: FaultKind::ALL.to_vec(),
        down_for: Duration::from_secs(args.down_s),
        settle: Duration::from_secs(args.settle_s),
        rescales: if args.no_rescales {
            Vec::new()
        } else {
            Shape::RESCALES.to_vec()
        },
    };
    let report = crate::runtime()?.block_on(faults::run(suite));
    println!("{report}");
    Ok(())
}
