//! `insite services install|up|down|status`: the local NATS, Redis and
//! ClickHouse. Ports and the data folder come from the `[local]` config
//! section (`INSITE_LOCAL__NATS_PORT`, `INSITE_LOCAL__ROOT`, ...). The
//! servers require users; the first `up` generates their passwords into
//! `<root>/secrets.toml` (see `insite_local::secrets`).

use std::os::unix::process::CommandExt;

use clap::{Args, Subcommand};
use insite_local::{Health, LocalConfig};

use crate::config::InsiteConfig;

/// Arguments of `insite services`.
#[derive(Debug, Args)]
pub struct ServicesArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Install whatever server binaries are missing, start nothing.
    Install,
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
    let local: LocalConfig = config.local.local_config();
    match args.action {
        Action::Install => {
            let binaries = insite_local::ensure_installed(&local.tools_dir)?;
            println!("nats-server       {}", binaries.nats.display());
            println!("redis-server      {}", binaries.redis.display());
            println!("clickhouse-server {}", binaries.clickhouse.display());
            Ok(())
        }
        Action::Up => {
            // Own process group: a Ctrl-C in this terminal later does not
            // reach the servers.
            let statuses = insite_local::up(&local, &mut |cmd| {
                cmd.process_group(0);
            })?;
            print_statuses(&statuses);
            println!("data and logs: {}", local.root.display());
            if local.security.is_secured() {
                println!(
                    "users' passwords: {} (owner only; every insite command reads it)",
                    local.secrets_path().display()
                );
            }
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
            all_healthy("servers", statuses.iter().map(|s| &s.health))
        }
    }
}

/// An error naming how many of `healths` (of the `what`) are not
/// healthy, if any: `status` exits non-zero then.
pub(crate) fn all_healthy<'a>(
    what: &str,
    healths: impl ExactSizeIterator<Item = &'a Health>,
) -> anyhow::Result<()> {
    let total = healths.len();
    let unhealthy = healths.filter(|h| **h != Health::Healthy).count();
    anyhow::ensure!(
        unhealthy == 0,
        "{unhealthy} of {total} {what} are not healthy"
    );
    Ok(())
}

fn print_statuses(statuses: &[insite_local::ServerStatus]) {
    for status in statuses {
        println!("{status}");
    }
}
