//! `insite services up|down|status`: the local NATS, Redis and ClickHouse.

use std::os::unix::process::CommandExt;

use clap::{Args, Subcommand};
use insite_local::{Health, LocalConfig};

use crate::config::InsiteConfig;

/// Arguments of `insite services`.
#[derive(Debug, Args)]
pub struct ServicesArgs {
    #[command(subcommand)]
    action: Action,
    /// NATS port.
    #[arg(long, env = "INSITE_LOCAL_NATS_PORT", default_value_t = 14_222, global = true)]
    nats_port: u16,
    /// Redis port.
    #[arg(long, env = "INSITE_LOCAL_REDIS_PORT", default_value_t = 16_379, global = true)]
    redis_port: u16,
    /// ClickHouse HTTP port (native and interserver ports follow from
    /// --clickhouse-tcp-port).
    #[arg(long, env = "INSITE_LOCAL_CLICKHOUSE_HTTP_PORT", default_value_t = 18_123, global = true)]
    clickhouse_http_port: u16,
    /// ClickHouse native TCP port (the interserver port is this plus 9).
    #[arg(long, env = "INSITE_LOCAL_CLICKHOUSE_TCP_PORT", default_value_t = 19_000, global = true)]
    clickhouse_tcp_port: u16,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Install what is missing and start every server that is not running.
    Up,
    /// Stop the servers started by `up`.
    Down,
    /// Print each server's URL, pid and health; exits non-zero unless all
    /// three are healthy.
    Status,
}

/// Runs `insite services`.
pub fn run(config: &InsiteConfig, args: ServicesArgs) -> anyhow::Result<()> {
    let mut local = LocalConfig::new(&config.local.root);
    local.nats_port = args.nats_port;
    local.redis_port = args.redis_port;
    local.clickhouse_http_port = args.clickhouse_http_port;
    local.clickhouse_tcp_port = args.clickhouse_tcp_port;
    local.clickhouse_interserver_port = args.clickhouse_tcp_port.saturating_add(9);
    match args.action {
        Action::Up => {
            // Own process group: a Ctrl-C in this terminal later does not
            // reach the servers.
            let statuses = insite_local::up(&local, &mut |cmd| {
                cmd.process_group(0);
            })?;
            print_statuses(&statuses);
            println!("data and logs: {}", local.root.display());
            Ok(())
        }
        Action::Down => {
            for (kind, outcome) in insite_local::down(&local)? {
                println!("{kind:<10} {outcome}");
            }
            Ok(())
        }
        Action::Status => {
            let statuses = insite_local::status(&local);
            print_statuses(&statuses);
            let unhealthy = statuses.iter().filter(|s| s.health != Health::Healthy).count();
            anyhow::ensure!(unhealthy == 0, "{unhealthy} of {} servers are not healthy", statuses.len());
            Ok(())
        }
    }
}

fn print_statuses(statuses: &[insite_local::ServerStatus]) {
    for status in statuses {
        println!("{status}");
    }
}
