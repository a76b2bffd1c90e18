//! # insite-pipeline
//!
//! The dataflow job: each input stream is read in order by one durable
//! consumer and fed to timely workers, whose operators (`insite-operators`)
//! compute bars, sentiment, trending and alerts in the stream's own event
//! time; results go to ClickHouse, Redis and NATS, and each stream's
//! checkpoint moves past a message only once the results depending on it
//! are durable, so a pipeline killed at any moment and restarted ends with
//! exactly the tables (late events included) of an uninterrupted run.
//!
//! ## Layout
//! - [`run`](mod@run): [`run::run`] (the live job) and [`run::replay`] (a
//!   stream range, again): their start-up order and shutdown;
//!   [`run::Topology`] for timely's multi-process cluster mode.
//! - [`backfill`]: [`backfill::backfill`], the operators over a bounded
//!   input (history from files), staged and checked against the live
//!   tables before it is copied in.
//! - [`config`]: [`config::PipelineConfig`], the `[pipeline]` section.
//! - [`source`]: JetStream consumers (durable, recreated at the checkpoint;
//!   or ephemeral over a range), decoding, subject checks, the clock-skew
//!   bound, the dead-letter subject and the clock ticks of an idle stream.
//! - [`bridge`]: the one module where tokio and the timely workers meet:
//!   `bridge/workers.rs` (`timely::execute` from one `JobSpec`, the reader
//!   handed to the first worker, the step loop and the stop flag),
//!   `bridge/input_operator.rs` (per-message stamps from each stream's
//!   clock, deadlines) and
//!   `bridge/output_operator.rs` (results and frontiers to the output task).
//! - [`output`]: the output task, which routes every result:
//!   `output/durable.rs` (ClickHouse writes, and the durable frontier they
//!   make true, recorded and reported) and `output/hot.rs` (Redis and the
//!   DERIVED publisher).
//! - [`progress`]: which messages are finished with
//!   ([`progress::CheckpointTracker`], the checkpoint task) and their
//!   deadlines ([`progress::WindowSpans`]).
//! - [`resume`]: the durable frontiers and checkpoints recorded in ClickHouse,
//!   read back on restart ([`resume::ProgressStore`]).
//!
//! See `docs/pipeline.md` for the delivery argument in full.

pub mod backfill;
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
