//! # insite-pipeline
//!
//! The dataflow job: durable JetStream consumers feed timely workers, whose
//! operators (`insite-operators`) compute bars, sentiment, trending and
//! alerts; results go to ClickHouse, Redis and NATS, and input is
//! acknowledged only once the results depending on it are durable, so a
//! pipeline killed at any moment and restarted ends with exactly the tables
//! of an uninterrupted run.
//!
//! ## Layout
//! - [`run`](mod@run): [`run::run`] (the live job) and [`run::replay`] (a
//!   stream range, again): their start-up order and shutdown;
//!   [`run::Topology`] for timely's multi-process cluster mode.
//! - [`config`]: [`config::PipelineConfig`], the `[pipeline]` section.
//! - [`source`]: JetStream consumers (durable, resumed above their ack floor;
//!   or ephemeral over a range), decoding, subject checks and the
//!   dead-letter subject.
//! - [`bridge`]: the one module where tokio and the timely workers meet:
//!   `bridge/workers.rs` (`timely::execute` from one `JobSpec`, the reader
//!   handed to the first worker, the step loop and the stop flag),
//!   `bridge/input_operator.rs` (read-time watermarks, deadlines) and
//!   `bridge/output_operator.rs` (results and frontiers to the output task).
//! - [`output`]: the output task, which routes every result:
//!   `output/durable.rs` (ClickHouse writes, and the durable frontier they
//!   make true, recorded and reported) and `output/hot.rs` (Redis and the
//!   DERIVED publisher).
//! - [`acks`]: the ack task, which acknowledges what is durable.
//! - [`progress`]: the bookkeeping of held messages ([`progress::AckTracker`])
//!   and their deadlines ([`progress::WindowSpans`]).
//! - [`resume`]: the durable frontier recorded in ClickHouse, read back on
//!   restart ([`resume::ProgressStore`]).
//!
//! See `docs/pipeline.md` for the delivery argument in full.

pub mod acks;
pub mod bridge;
pub mod config;
pub mod output;
pub mod progress;
pub mod resume;
pub mod run;
pub mod source;

pub use config::PipelineConfig;
pub use run::{
    replay, run, Connections, PipelineError, ReplaySpec, RunConfig, RunReport, Topology,
};
