//! The JetStream streams insite uses, created or checked from config.
//!
//! | stream (default name) | subjects | retention |
//! |---|---|---|
//! | `MARKET` | `md.>` | `raw_max_age_s`, `raw_max_bytes` |
//! | `SOCIAL` | `social.>` | `raw_max_age_s`, `raw_max_bytes` |
//! | `DERIVED` | `insite.bars.>`, `insite.sentiment.>`, `insite.trending.>`, `insite.alerts.>` | `derived_max_age_s` |
//! | `DLQ` | `insite.dlq.>` | `dlq_max_age_s` |
//!
//! Every stream uses file storage, the configured replicas and duplicate
//! window. [`ensure_streams`] creates a missing stream and brings an existing
//! one's limits and subjects in line with the config, so every stage can call
//! it at start-up.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use insite_schemas::config::StreamsConfig;

/// Errors creating or updating the streams.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamSetupError {
    /// JetStream refused to create or update a stream.
    #[error("creating or updating stream {stream}: {source}")]
    JetStream {
        /// The stream's name.
        stream: String,
        /// The client's error.
        #[source]
        source: async_nats::Error,
    },
}

/// The configuration of every insite stream, in the order they are created.
pub fn stream_configs(streams: &StreamsConfig) -> Vec<stream::Config> {
    let secs = Duration::from_secs;
    let base = |name: &str, subjects: &[&str], max_age_s: u64, max_bytes: i64| stream::Config {
        name: name.to_owned(),
        subjects: subjects.iter().map(|s| streams.subject(s)).collect(),
        storage: stream::StorageType::File,
        num_replicas: streams.replicas.max(1),
        max_age: secs(max_age_s),
        max_bytes,
        duplicate_window: secs(streams.duplicate_window_s),
        ..Default::default()
    };
    vec![
        base(
            &streams.market,
            &["md.>"],
            streams.raw_max_age_s,
            streams.raw_max_bytes,
        ),
        base(
            &streams.social,
            &["social.>"],
            streams.raw_max_age_s,
            streams.raw_max_bytes,
        ),
        base(
            &streams.derived,
            &[
                "insite.bars.>",
                "insite.sentiment.>",
                "insite.trending.>",
                "insite.alerts.>",
            ],
            streams.derived_max_age_s,
            -1,
        ),
        base(&streams.dlq, &["insite.dlq.>"], streams.dlq_max_age_s, -1),
    ]
}

/// Creates every insite stream that is missing and updates the limits and
/// subjects of those that exist.
pub async fn ensure_streams(
    js: &jetstream::Context,
    streams: &StreamsConfig,
) -> Result<(), StreamSetupError> {
    for config in stream_configs(streams) {
        let name = config.name.clone();
        let exists = js.get_stream(&name).await.is_ok();
        let result = if exists {
            js.update_stream(config).await.map(drop)
        } else {
            js.create_stream(config).await.map(drop)
        };
        result.map_err(|e| StreamSetupError::JetStream {
            stream: name,
            source: Box::new(e),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_follow_the_prefix_and_limits() {
        let streams = StreamsConfig {
            subject_prefix: "t1".into(),
            replicas: 3,
            ..StreamsConfig::default()
        };
        let configs = stream_configs(&streams);
        assert_eq!(configs.len(), 4);
        assert_eq!(configs[0].name, "MARKET");
        assert_eq!(configs[0].subjects, vec!["t1.md.>".to_owned()]);
        assert_eq!(configs[3].subjects, vec!["t1.insite.dlq.>".to_owned()]);
        assert!(configs.iter().all(|c| c.num_replicas == 3));
        assert_eq!(configs[2].max_age, Duration::from_secs(86_400));
    }
}
