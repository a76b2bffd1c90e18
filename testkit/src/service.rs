//! The long-running parts of insite, started in the test process on a
//! test's servers: the query service ([`start_query`]) and the pipeline
//! ([`start_pipeline`]). Each handle stops its service and waits for it.

use std::net::SocketAddr;
use std::time::Duration;

use insite_pipeline::{Connections, PipelineConfig, PipelineError, RunConfig, RunReport};
use insite_query::{QueryConfig, QueryError, ServeConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::wait::eventually;
use crate::TestEnv;

/// How long a service may take to become ready, or to stop.
const PATIENCE: Duration = Duration::from_secs(30);

/// A query service on a free loopback port, from [`start_query`].
#[derive(Debug)]
pub struct QueryService {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<Result<(), QueryError>>,
}

impl QueryService {
    /// The URL of `path` (`/v1/...`) on the service.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the service and waits for it.
    ///
    /// # Panics
    /// If it does not stop in time or ends with an error.
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the query service stops in time")
            .expect("the query service task")
            .expect("the query service ends without an error");
    }
}

/// Starts the query service with `query` on the test's servers and waits
/// until `/readyz` says it is ready (Redis, ClickHouse and the NATS feed).
///
/// # Panics
/// If it is not ready in time.
pub async fn start_query(env: &TestEnv, query: QueryConfig) -> QueryService {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a free port");
    let addr = listener.local_addr().expect("the listener's address");
    let stop = CancellationToken::new();
    let config = ServeConfig {
        query,
        connections: env.connections_as(insite_local::Role::Query),
    };
    let task = tokio::spawn(insite_query::serve(config, listener, stop.clone()));
    let service = QueryService { addr, stop, task };
    let http = reqwest::Client::new();
    let ready = service.url("/readyz");
    eventually(PATIENCE, async || {
        http.get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await
    .unwrap_or_else(|e| panic!("query service at {addr} never became ready: {e}"));
    service
}

/// The pipeline running in the test process, from [`start_pipeline`].
#[derive(Debug)]
pub struct PipelineService {
    stop: CancellationToken,
    task: JoinHandle<Result<RunReport, PipelineError>>,
}

impl PipelineService {
    /// Whether the run has ended (it should not before [`Self::stop`]).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the run the way a shutdown signal does and returns its report.
    ///
    /// # Panics
    /// If the run ended with an error.
    pub async fn stop(self) -> RunReport {
        self.stop.cancel();
        self.task
            .await
            .expect("the pipeline task")
            .expect("the pipeline run ends without an error")
    }
}

/// Starts `insite_pipeline::run` with `config` on `connections`.
pub fn start_pipeline(connections: &Connections, config: &PipelineConfig) -> PipelineService {
    let stop = CancellationToken::new();
    let run = RunConfig::new(
        crate::as_role(connections, insite_local::Role::Pipeline),
        config.clone(),
    );
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move { insite_pipeline::run(&run, stop).await })
    };
    PipelineService { stop, task }
}
