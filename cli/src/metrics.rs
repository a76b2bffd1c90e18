//! The Prometheus exporter of `insite pipeline run` and `insite ingest`.
//!
//! Latencies and sizes are exported as histograms (`_bucket` series with
//! fixed bounds) rather than summaries: a summary's quantiles are computed
//! inside one process and cannot be combined, while buckets add up across
//! every pipeline process and ingest feed, so dashboards and alerts take
//! `histogram_quantile` over `sum by (le)`. The query service sets its own
//! buckets (`insite_query::telemetry`).

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

/// Bounds (seconds) of the latency histograms: 1 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Bounds of the flush-size histogram (rows).
const ROW_BUCKETS: &[f64] = &[
    1.0, 10.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 50_000.0, 100_000.0, 500_000.0,
];

/// An exporter builder with the bucket bounds of every pipeline and ingest
/// histogram.
pub fn exporter() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("insite_pipeline_clickhouse_flush_seconds".into()),
            LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("insite_pipeline_event_to_redis_seconds".into()),
            LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("insite_pipeline_event_to_read_seconds".into()),
            LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("insite_ingest_publish_ack_seconds".into()),
            LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("insite_ingest_event_to_ack_seconds".into()),
            LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("insite_pipeline_clickhouse_flush_rows".into()),
            ROW_BUCKETS,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_and_ingest_latencies_are_histograms_with_buckets() {
        let recorder = exporter().unwrap().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("insite_pipeline_clickhouse_flush_seconds").record(0.3);
            metrics::histogram!("insite_ingest_publish_ack_seconds", "feed" => "files")
                .record(0.004);
            metrics::histogram!("insite_ingest_event_to_ack_seconds", "feed" => "synthetic")
                .record(0.02);
            metrics::histogram!("insite_pipeline_event_to_read_seconds", "source" => "market")
                .record(0.03);
            metrics::histogram!("insite_pipeline_event_to_redis_seconds").record(0.04);
        });
        let text = handle.render();
        assert!(
            text.contains("insite_pipeline_clickhouse_flush_seconds_bucket{le=\"0.5\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "insite_ingest_publish_ack_seconds_bucket{feed=\"files\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        for bucket in [
            "insite_ingest_event_to_ack_seconds_bucket{feed=\"synthetic\",le=\"0.025\"} 1",
            "insite_pipeline_event_to_read_seconds_bucket{source=\"market\",le=\"0.05\"} 1",
            "insite_pipeline_event_to_redis_seconds_bucket{le=\"0.05\"} 1",
        ] {
            assert!(text.contains(bucket), "{bucket} missing from {text}");
        }
        assert!(!text.contains("quantile="), "{text}");
    }
}
