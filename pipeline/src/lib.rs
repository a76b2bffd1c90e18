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
//! - [`run`]: [`run::run`] (the live job) and [`run::replay`] (a stream
//!   range, again), over one machinery; [`run::Topology`] for timely's
//!   multi-process cluster mode.
//! - [`config`]: [`config::PipelineConfig`], the `[pipeline]` section.
//! - [`source`]: JetStream consumers (durable, resumed above their ack floor;
//!   or ephemeral over a range), decoding, subject checks and the
//!   dead-letter subject.
//! - [`bridge`]: the one module where tokio and the timely workers meet:
//!   the input operator (read-time watermarks, deadlines) and the output
//!   operator (results and frontiers to the output task).
//! - [`output`]: the output task: ClickHouse, Redis and NATS writes, and the
//!   durable frontier.
//! - [`acks`]: the ack task, which acknowledges what is durable.
//! - [`progress`]: the bookkeeping of held messages ([`progress::AckTracker`])
//!   and their deadlines ([`progress::WindowSpans`]).
//! - [`resume`]: the durable frontier recorded in ClickHouse, read back on
//!   restart.
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
