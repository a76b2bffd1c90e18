//! # insite-pipeline
//!
//! The dataflow job: durable JetStream consumers feed timely workers, whose
//! operators compute bars, sentiment, trending and alerts; results go to
//! ClickHouse, Redis and NATS, and input is acknowledged only once the
//! results depending on it are durable.
//!
//! ## Layout
//! - [`source`]: JetStream consumers, decoding, subject checks and the
//!   dead-letter subject.
//! - [`output`]: the output task: ClickHouse, Redis and NATS writes, and the
//!   durable frontier that drives acknowledgement.
//! - [`progress`]: which messages may be acknowledged ([`progress::AckTracker`])
//!   and until when each must be held ([`progress::WindowSpans`]).
//!
//! Not yet here: the timely dataflow, the bridge between it and the async
//! world, and `run`.

pub mod output;
pub mod progress;
pub mod source;
