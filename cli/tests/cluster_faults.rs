//! The local cluster (`insite cluster`) under the node-loss fault suite:
//! one fault of each kind (a query instance, a Redis master, the NATS
//! node leading MARKET, a ClickHouse replica, a pipeline process), each
//! killed with SIGKILL under a steady feed and query load and restarted.
//! Nothing acknowledged is lost, `bars` and `sentiment` equal a replay of
//! the same input without faults, and queries through the load balancer
//! stay available across the query, Redis and NATS losses. Then, under the
//! same load, a third query instance joins and leaves, the pipeline goes
//! from 2 processes to 1, and one query instance is left: queries stay
//! available, every instance and process takes a share of the work, and
//! the tables still equal the replay. Last, a backfill into the cluster is
//! on both replicas of every shard when it returns (the insert quorum).
//!
//! CI's bound: the pipeline's 2 → 3 → 1 rescale runs in
//! `insite-bench faults` (a restart of three processes on two cores re-reads
//! up to five minutes of input, minutes of CI), and in CI on one server
//! with a gone topology's frontier record left behind
//! (`pipeline_process.rs`).
//!
//! Its own test binary: it runs a whole cluster (on ports from 22000,
//! apart from `insite cluster up` and `insite-bench faults`), stopped at the
//! end, also when the test fails.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::time::Duration;

use insite_config::InsiteConfig;
use insite_local::cluster::ClusterConfig;
use insite_testkit::faults::{self, FaultKind, FaultSuite, Shape};

/// The rescales CI runs: a third query instance in and out, the pipeline
/// 2 → 1, one query instance.
const RESCALES: [Shape; 4] = [
    Shape::new(3, 2),
    Shape::new(2, 2),
    Shape::new(2, 1),
    Shape::new(1, 1),
];

#[test]
fn every_kind_of_node_loss_loses_nothing() {
    let root = insite_testkit::workspace_root()
        .join("target")
        .join("insite-test")
        .join("cluster");
    let mut cluster = ClusterConfig::new(&root, root.join("tools"));
    cluster.base_port = 22_000;
    let suite = FaultSuite {
        insite: env!("CARGO_BIN_EXE_insite").into(),
        cluster,
        config: InsiteConfig::default(),
        rate: 2_000.0,
        query_clients: 2,
        faults: FaultKind::ALL.to_vec(),
        down_for: Duration::from_secs(3),
        settle: Duration::from_secs(5),
        rescales: RESCALES.to_vec(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data = root.clone();
    let report = runtime.block_on(faults::run(suite));
    println!("{report}");
    assert_eq!(report.faults.len(), FaultKind::ALL.len());
    assert_eq!(report.lost(), 0, "{report}");
    assert!(report.identical(), "{report}");
    for outcome in &report.faults {
        if matches!(
            outcome.kind,
            FaultKind::QueryInstance | FaultKind::RedisMaster | FaultKind::NatsLeader
        ) {
            assert!(
                outcome.availability() >= 99.9,
                "{:?}: {:.3} % ({report})",
                outcome.kind,
                outcome.availability()
            );
        }
    }
    // Rescaling under load: queries stay available, and the work spreads
    // over every query instance and pipeline process of each shape.
    assert_eq!(report.rescales.len(), RESCALES.len());
    for rescale in &report.rescales {
        assert!(
            rescale.availability() >= 99.9,
            "{} -> {}: {:.3} % ({report})",
            rescale.from,
            rescale.to,
            rescale.availability()
        );
        for (node, requests) in &rescale.query_share {
            assert!(
                *requests > 0,
                "{node} got no requests at {} ({report})",
                rescale.to
            );
        }
        for (node, results) in &rescale.pipeline_share {
            assert!(
                *results > 0.0,
                "{node} produced nothing at {} ({report})",
                rescale.to
            );
        }
    }
    assert!(report.backfill.on_every_replica(), "{report}");
    // The cluster is stopped; its data (some 500 MB) goes too, the logs of
    // a failed run stay for a look.
    std::fs::remove_dir_all(&data).unwrap();
}
