//! `insite query serve`: the query service (HTTP API, WebSocket push, live
//! chart page) on the `[query]` listen address.

use anyhow::Context;
use clap::{Args, Subcommand};
use insite_query::ServeConfig;

use crate::config::InsiteConfig;

/// Arguments of `insite query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Serve until SIGINT or SIGTERM.
    Serve {
        /// Listen here instead of `[query] listen`.
        #[arg(long)]
        listen: Option<String>,
    },
}

/// Runs `insite query`.
pub fn run(config: &InsiteConfig, args: QueryArgs) -> anyhow::Result<()> {
    let Action::Serve { listen } = args.action;
    let mut serve = ServeConfig {
        query: config.query.clone(),
        connections: config.connections(),
    };
    if let Some(listen) = listen {
        serve.query.listen = listen;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&serve.query.listen)
            .await
            .with_context(|| format!("binding {}", serve.query.listen))?;
        eprintln!(
            "insite query service on http://{}/ (API under /v1, OpenAPI at /v1/openapi.json)",
            listener.local_addr()?
        );
        insite_query::serve(serve, listener, crate::signal::shutdown_on_signal()).await?;
        Ok(())
    })
}
