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
        "ClickHouse {} at {} (features: {}), database {}: applied {:?}, already applied {:?}",
        report.server_version,
        config.clickhouse.url,
        report.features.names(),
        config.clickhouse.database,
        report.applied,
        report.already_applied
    );
    for statement in &report.retention {
        println!("retention: {statement}");
    }
    Ok(())
}
