//! The JetStream streams insite uses, created or checked from config.
//!
//! | stream (default name) | subjects | age limit | byte limit |
//! |---|---|---|---|
//! | `MARKET` | `md.>` | `raw_max_age_s` (7 d) | `raw_max_bytes` (1 GiB) |
//! | `SOCIAL` | `social.>` | `raw_max_age_s` (7 d) | `raw_max_bytes` (1 GiB) |
//! | `DERIVED` | `insite.bars.>`, `insite.sentiment.>`, `insite.trending.>`, `insite.alerts.>` | `derived_max_age_s` (1 d) | `derived_max_bytes` (512 MiB) |
//! | `DLQ` | `insite.dlq.>` | `dlq_max_age_s` (30 d) | `dlq_max_bytes` (128 MiB) |
//!
//! Provisional results go on `insite.live.>`, which no stream captures
//! (DERIVED lists its four final trees rather than `insite.>`).
//!
//! Every stream uses file storage, the configured replicas and duplicate
//! window, and the `limits` retention with `discard: old`: once a stream
//! reaches its age or byte limit, its oldest messages are dropped, so a
//! stream never refuses a publish for being full. [`ensure_streams`] creates
//! a missing stream and brings an existing one's subjects, limits, discard
//! policy, duplicate window and replicas in line with the config (JetStream
//! allows updating all of them; a stream over its new byte limit drops its
//! oldest messages at once), leaving every other setting as it is; every
//! stage calls it at start-up.
//!
//! JetStream reserves each stream's `max_bytes` against the server's
//! `max_file_store` when the stream is created or updated and refuses one
//! that does not fit: [`StreamSetupError::NoRoom`] then says which limits to
//! lower.

use std::time::Duration;

use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::{self, stream, ErrorCode};
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
    /// The server cannot reserve the stream's byte limit.
    #[error(
        "stream {stream}: NATS has no room to reserve max_bytes = {max_bytes} (JetStream reserves \
         every stream's byte limit up front): lower nats.streams.*_max_bytes (these streams \
         reserve {reserved} bytes in all) or raise the server's jetstream max_file_store"
    )]
    NoRoom {
        /// The stream's name.
        stream: String,
        /// Its byte limit.
        max_bytes: i64,
        /// The byte limits of all the configured streams, added up.
        reserved: i64,
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
        discard: stream::DiscardPolicy::Old,
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
            // Not `insite.>`: that would also store `insite.live.>`
            // (provisional results) and `insite.dlq.>` (the DLQ's).
            &[
                "insite.bars.>",
                "insite.sentiment.>",
                "insite.trending.>",
                "insite.alerts.>",
            ],
            streams.derived_max_age_s,
            streams.derived_max_bytes,
        ),
        base(
            &streams.dlq,
            &["insite.dlq.>"],
            streams.dlq_max_age_s,
            streams.dlq_max_bytes,
        ),
    ]
}

/// `existing` with the settings insite manages taken from `wanted`
/// (subjects, limits, discard policy, duplicate window, replicas); every
/// other setting (storage, compression, metadata, ...) is left as it is.
pub fn reconciled(existing: &stream::Config, wanted: &stream::Config) -> stream::Config {
    stream::Config {
        subjects: wanted.subjects.clone(),
        max_age: wanted.max_age,
        max_bytes: wanted.max_bytes,
        discard: wanted.discard,
        duplicate_window: wanted.duplicate_window,
        num_replicas: wanted.num_replicas,
        ..existing.clone()
    }
}

/// What [`ensure_streams`] did to one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// It did not exist and was created.
    Created,
    /// It existed with other settings and was updated.
    Updated,
    /// It existed with the configured settings.
    Unchanged,
}

/// Creates every insite stream that is missing and updates the subjects and
/// limits of those that differ from the config. Returns what was done to
/// each stream, in [`stream_configs`] order.
pub async fn ensure_streams(
    js: &jetstream::Context,
    streams: &StreamsConfig,
) -> Result<Vec<(String, Ensured)>, StreamSetupError> {
    let mut done = Vec::new();
    for wanted in stream_configs(streams) {
        let name = wanted.name.clone();
        let max_bytes = wanted.max_bytes;
        let refused = |e: jetstream::context::CreateStreamError| match e.kind() {
            CreateStreamErrorKind::JetStream(js_error)
                if js_error.error_code() == ErrorCode::STORAGE_RESOURCES_EXCEEDED =>
            {
                StreamSetupError::NoRoom {
                    stream: name.clone(),
                    max_bytes,
                    reserved: streams.reserved_bytes(),
                }
            }
            _ => StreamSetupError::JetStream {
                stream: name.clone(),
                source: Box::new(e),
            },
        };
        let ensured = match js.get_stream(&name).await {
            Ok(existing) => {
                let current = &existing.cached_info().config;
                let target = reconciled(current, &wanted);
                if &target == current {
                    Ensured::Unchanged
                } else {
                    tracing::info!(
                        stream = %name,
                        max_bytes = target.max_bytes,
                        max_age_s = target.max_age.as_secs(),
                        "updating the stream's subjects and limits"
                    );
                    js.update_stream(target).await.map_err(refused)?;
                    Ensured::Updated
                }
            }
            Err(e) if is_not_found(e.kind()) => {
                js.create_stream(wanted).await.map_err(refused)?;
                Ensured::Created
            }
            Err(e) => {
                return Err(StreamSetupError::JetStream {
                    stream: name,
                    source: Box::new(e),
                })
            }
        };
        done.push((name, ensured));
    }
    Ok(done)
}

fn is_not_found(kind: GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
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

    #[test]
    fn every_stream_is_bounded_and_drops_its_oldest() {
        let streams = StreamsConfig {
            raw_max_bytes: 1_000,
            derived_max_bytes: 200,
            dlq_max_bytes: 30,
            ..StreamsConfig::default()
        };
        let configs = stream_configs(&streams);
        let limits: Vec<i64> = configs.iter().map(|c| c.max_bytes).collect();
        assert_eq!(limits, [1_000, 1_000, 200, 30]);
        for c in &configs {
            assert_eq!(c.discard, stream::DiscardPolicy::Old, "{}", c.name);
            assert!(c.max_age > Duration::ZERO, "{}", c.name);
        }
    }

    #[test]
    fn derived_stores_no_live_or_dead_letter_subject() {
        let configs = stream_configs(&StreamsConfig::default());
        let derived = &configs[2].subjects;
        for subject in derived {
            assert!(!subject.starts_with("insite.live"), "{subject}");
            assert!(!subject.starts_with("insite.dlq"), "{subject}");
            assert_ne!(subject, "insite.>");
        }
        // Each final tree is captured, none of the live tree.
        let captures = |s: &str| {
            derived
                .iter()
                .any(|f| s.starts_with(f.trim_end_matches('>')))
        };
        assert!(captures("insite.bars.1m.AAPL"));
        assert!(captures("insite.alerts.AAPL"));
        assert!(!captures("insite.live.bars.1m.AAPL"));
        assert!(!captures("insite.dlq.pipeline"));
    }

    #[test]
    fn reconciling_changes_only_what_insite_manages() {
        let wanted = &stream_configs(&StreamsConfig::default())[0];
        let existing = stream::Config {
            name: wanted.name.clone(),
            subjects: vec!["md.trades.>".into()],
            storage: stream::StorageType::Memory,
            max_bytes: -1,
            max_messages: 10,
            description: Some("kept".into()),
            ..Default::default()
        };
        let target = reconciled(&existing, wanted);
        assert_eq!(target.subjects, wanted.subjects);
        assert_eq!(target.max_bytes, wanted.max_bytes);
        assert_eq!(target.max_age, wanted.max_age);
        assert_eq!(target.discard, stream::DiscardPolicy::Old);
        assert_eq!(target.storage, stream::StorageType::Memory);
        assert_eq!(target.max_messages, 10);
        assert_eq!(target.description.as_deref(), Some("kept"));
        assert_eq!(reconciled(&target, wanted), target);
    }
}
