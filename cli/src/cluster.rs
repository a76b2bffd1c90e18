//! `insite cluster up|status|down|kill`: the local cluster of every
//! component (`insite_local::cluster`). Data, logs and generated configs
//! live under `<local.root>/cluster/`; the pipeline processes and query
//! instances run this binary with `<local.root>/cluster/insite.toml`, the
//! loaded config pointed at the cluster (`InsiteConfig::for_cluster`).

use std::os::unix::process::CommandExt;

use anyhow::Context;
use clap::{Args, Subcommand};
use insite_local::cluster::{self, AppSpec, ClusterConfig, Node, NodeStatus};

use crate::config::InsiteConfig;

/// Arguments of `insite cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Install what is missing and start every node that is not running
    /// (idempotent); with other counts than the running cluster's, rescale
    /// the pipeline (stop-start) and the query instances.
    Up {
        /// Timely processes of the pipeline.
        #[arg(long)]
        pipeline_processes: Option<usize>,
        /// Query instances behind the load balancer.
        #[arg(long)]
        query_instances: Option<usize>,
        /// The servers only: no pipeline, no query instances.
        #[arg(long)]
        servers_only: bool,
    },
    /// Print every node with its role, memory and health; exits non-zero
    /// unless all are healthy.
    Status,
    /// Stop every node.
    Down,
    /// Kill one node with SIGKILL (`nats-1`, `redis-0`, `clickhouse-2`,
    /// `pipeline-1`, `query-0`, `zookeeper`, `haproxy`); `up` restarts it.
    Kill {
        /// The node.
        node: String,
    },
}

/// The cluster as the last `up` shaped it.
fn cluster_config(config: &InsiteConfig) -> anyhow::Result<ClusterConfig> {
    let mut cluster = config.local.cluster_config().with_recorded_shape();
    let file = InsiteConfig::cluster_config_file(&cluster);
    if file.is_file() {
        cluster.app = Some(AppSpec {
            insite: std::env::current_exe().context("finding the insite executable")?,
            config_file: file,
        });
    }
    Ok(cluster)
}

/// Runs `insite cluster`.
pub fn run(config: &InsiteConfig, args: ClusterArgs) -> anyhow::Result<()> {
    let mut cluster = cluster_config(config)?;
    match args.action {
        Action::Up {
            pipeline_processes,
            query_instances,
            servers_only,
        } => {
            if let Some(n) = pipeline_processes {
                cluster.pipeline_processes = n.clamp(1, cluster::layout::MAX_APP_NODES);
            }
            if let Some(n) = query_instances {
                cluster.query_instances = n.clamp(1, cluster::layout::MAX_APP_NODES);
            }
            cluster.app = if servers_only {
                None
            } else {
                let file = InsiteConfig::cluster_config_file(&cluster);
                std::fs::create_dir_all(&cluster.root)
                    .with_context(|| format!("creating {}", cluster.root.display()))?;
                config.for_cluster(&cluster).write_file(&file)?;
                Some(AppSpec {
                    insite: std::env::current_exe().context("finding the insite executable")?,
                    config_file: file,
                })
            };
            cluster
                .record_shape()
                .context("recording the cluster's shape")?;
            // Own process group: a Ctrl-C in this terminal later does not
            // reach the nodes.
            let statuses = cluster::up(&cluster, &mut |cmd| {
                cmd.process_group(0);
            })?;
            print_statuses(&statuses);
            println!("query:      {}", cluster.query_url());
            println!("clickhouse: {}", cluster.clickhouse_url());
            println!("nats:       {}", cluster.nats_urls());
            println!("data, logs: {}", cluster.root.display());
            Ok(())
        }
        Action::Status => {
            let statuses = cluster::status(&cluster);
            print_statuses(&statuses);
            crate::services::all_healthy("nodes", statuses.iter().map(|s| &s.health))
        }
        Action::Down => {
            for (node, pid) in cluster::down(&cluster)? {
                match pid {
                    Some(pid) => println!("{node:<13} stopped (pid {pid})"),
                    None => println!("{node:<13} not running"),
                }
            }
            Ok(())
        }
        Action::Kill { node } => {
            let node = Node::parse(&node).with_context(|| format!("no node named {node:?}"))?;
            match cluster::kill(&cluster, node) {
                Some(pid) => println!("{node} killed (pid {pid})"),
                None => println!("{node} was not running"),
            }
            Ok(())
        }
    }
}

fn print_statuses(statuses: &[NodeStatus]) {
    println!(
        "{:<13} {:<6} {:<8} {:>8}  {:<36} health",
        "node", "port", "pid", "rss", "role"
    );
    for status in statuses {
        println!("{status}");
    }
    let total: u64 = statuses.iter().filter_map(|s| s.rss_bytes).sum();
    println!("total resident memory: {} MiB", total >> 20);
}
