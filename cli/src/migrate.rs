//! `insite migrate`: create the ClickHouse database and apply the versioned
//! migrations (the pipeline also does this at start-up).

use crate::config::InsiteConfig;

/// Runs `insite migrate`.
pub fn run(config: &InsiteConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(insite_sinks::clickhouse::migrate(&config.clickhouse))?;
    println!(
        "ClickHouse {} at {}, database {}: applied {:?}, already applied {:?}",
        report.server_version,
        config.clickhouse.url,
        config.clickhouse.database,
        report.applied,
        report.already_applied
    );
    Ok(())
}
