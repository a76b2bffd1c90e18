//! The ingest metrics, one name each, all labelled with the feed
//! (`synthetic`, `files`, `ws`, `rss`, ...).
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `insite_ingest_published_total` | counter | messages sent (first attempts) |
//! | `insite_ingest_acked_total` | counter | messages acknowledged by JetStream (duplicates included) |
//! | `insite_ingest_duplicates_total` | counter | acknowledgements that JetStream marked duplicate |
//! | `insite_ingest_retried_total` | counter | re-sends after an ack timeout or a lost connection |
//! | `insite_ingest_rejected_total` | counter | input lines or frames rejected (and dead-lettered) |
//! | `insite_ingest_events_total` | counter | events inside acknowledged messages |
//! | `insite_ingest_publish_ack_seconds` | histogram | time from first send to acknowledgement |
//! | `insite_ingest_event_to_ack_seconds` | histogram | event time of a message's oldest event to its acknowledgement (batching included; a feed of history gives old ages) |
//!
//! The recorder (a Prometheus endpoint, say) is installed by the binary;
//! without one, these are no-ops.

use metrics::{Counter, Histogram};

/// Name of the published-messages counter.
pub const PUBLISHED: &str = "insite_ingest_published_total";
/// Name of the acknowledged-messages counter.
pub const ACKED: &str = "insite_ingest_acked_total";
/// Name of the duplicate-acknowledgements counter.
pub const DUPLICATES: &str = "insite_ingest_duplicates_total";
/// Name of the retries counter.
pub const RETRIED: &str = "insite_ingest_retried_total";
/// Name of the rejected-input counter.
pub const REJECTED: &str = "insite_ingest_rejected_total";
/// Name of the acknowledged-events counter.
pub const EVENTS: &str = "insite_ingest_events_total";
/// Name of the publish-to-ack latency histogram, in seconds.
pub const ACK_SECONDS: &str = "insite_ingest_publish_ack_seconds";
/// Name of the event-time-to-ack latency histogram, in seconds.
pub const EVENT_TO_ACK_SECONDS: &str = "insite_ingest_event_to_ack_seconds";

/// Handles on every ingest metric for one feed, registered once so the hot
/// path only increments.
#[derive(Clone)]
pub struct IngestMetrics {
    /// Messages sent.
    pub published: Counter,
    /// Messages acknowledged.
    pub acked: Counter,
    /// Duplicate acknowledgements.
    pub duplicates: Counter,
    /// Re-sends.
    pub retried: Counter,
    /// Rejected input.
    pub rejected: Counter,
    /// Events in acknowledged messages.
    pub events: Counter,
    /// Publish-to-ack latency.
    pub ack_seconds: Histogram,
    /// Event time (of a message's oldest event) to ack.
    pub event_to_ack_seconds: Histogram,
}

impl IngestMetrics {
    /// The metrics of `feed`.
    pub fn new(feed: &str) -> Self {
        let feed = feed.to_owned();
        Self {
            published: metrics::counter!(PUBLISHED, "feed" => feed.clone()),
            acked: metrics::counter!(ACKED, "feed" => feed.clone()),
            duplicates: metrics::counter!(DUPLICATES, "feed" => feed.clone()),
            retried: metrics::counter!(RETRIED, "feed" => feed.clone()),
            rejected: metrics::counter!(REJECTED, "feed" => feed.clone()),
            events: metrics::counter!(EVENTS, "feed" => feed.clone()),
            ack_seconds: metrics::histogram!(ACK_SECONDS, "feed" => feed.clone()),
            event_to_ack_seconds: metrics::histogram!(EVENT_TO_ACK_SECONDS, "feed" => feed),
        }
    }

    /// Describes every metric to the installed recorder (units and help).
    pub fn describe() {
        metrics::describe_counter!(PUBLISHED, "Messages sent to JetStream (first attempts).");
        metrics::describe_counter!(ACKED, "Messages acknowledged by JetStream.");
        metrics::describe_counter!(
            DUPLICATES,
            "Acknowledgements marked duplicate by JetStream."
        );
        metrics::describe_counter!(RETRIED, "Re-sends with the same Nats-Msg-Id.");
        metrics::describe_counter!(REJECTED, "Input lines or frames rejected to the DLQ.");
        metrics::describe_counter!(EVENTS, "Events inside acknowledged messages.");
        metrics::describe_histogram!(
            ACK_SECONDS,
            metrics::Unit::Seconds,
            "Time from first send to JetStream acknowledgement."
        );
        metrics::describe_histogram!(
            EVENT_TO_ACK_SECONDS,
            metrics::Unit::Seconds,
            "Event time of a message's oldest event to its JetStream acknowledgement."
        );
    }
}

impl std::fmt::Debug for IngestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestMetrics").finish_non_exhaustive()
    }
}
