//! The pipeline's settings (the `[pipeline]` section of insite's config).

use insite_operators::OperatorsConfig;
use insite_sinks::clickhouse::WriterConfig;
use insite_sinks::redis::RedisSinkConfig;
use serde::{Deserialize, Serialize};

use crate::bridge::InputSettings;
use crate::progress::WindowSpans;
use crate::source::ConsumerConfig;

/// Everything the pipeline job needs besides the server connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// The pipeline's name: its durable frontier is recorded under it in
    /// `pipeline_progress`. Two pipelines writing the same database need
    /// different names and different durable consumers.
    pub name: String,
    /// Timely worker threads per process.
    pub workers: usize,
    /// The durable consumers.
    pub consumer: ConsumerConfig,
    /// Windows, lateness, sentiment, trending and alert settings.
    pub operators: OperatorsConfig,
    /// Batching and retries of the ClickHouse tables.
    pub clickhouse_writer: WriterConfig,
    /// History kept in Redis.
    pub redis_sink: RedisSinkConfig,
    /// How often Redis and NATS are flushed, ms (the provisional cadence
    /// seen by readers is at most this plus the operators' own).
    pub hot_flush_ms: u64,
    /// Decoded messages buffered between the consumers and the dataflow.
    pub input_buffer: usize,
    /// Result batches buffered between the dataflow and the output task.
    pub output_buffer: usize,
    /// Unconfirmed publishes to DERIVED.
    pub derived_max_in_flight: usize,
    /// How soon the input operator looks again at an empty channel, ms.
    pub poll_ms: u64,
    /// Most messages the input operator takes in one activation.
    pub max_messages_per_activation: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            name: "insite".into(),
            workers: 2,
            consumer: ConsumerConfig::default(),
            operators: OperatorsConfig::default(),
            clickhouse_writer: WriterConfig::default(),
            redis_sink: RedisSinkConfig::default(),
            hot_flush_ms: 20,
            input_buffer: 4_096,
            output_buffer: 1_024,
            derived_max_in_flight: 4_096,
            poll_ms: 1,
            max_messages_per_activation: 1_024,
        }
    }
}

impl PipelineConfig {
    /// The input operator's settings.
    pub fn input_settings(&self, bounded: bool) -> InputSettings {
        let ops = &self.operators;
        let market = WindowSpans::new(ops.bar_intervals.clone(), Vec::new());
        let (_, sliding) = ops.window_spans();
        let social = WindowSpans::new(ops.sentiment_intervals.clone(), sliding);
        InputSettings {
            allowed_lateness_ms: ops.allowed_lateness_ms,
            market_spans: market,
            social_spans: social,
            bounded,
            max_messages_per_activation: self.max_messages_per_activation.max(1),
            poll: std::time::Duration::from_millis(self.poll_ms.max(1)),
        }
    }
}
