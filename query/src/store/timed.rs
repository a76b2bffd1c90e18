//! Timing of every ClickHouse query the service sends: its duration by
//! route (`insite_query_clickhouse_seconds`), and for one slower than the
//! configured threshold (`[query] slow_query_ms`) a count by route
//! (`insite_query_clickhouse_slow_total`) and a warning with the
//! statement's shape: the SQL text as written, with its `?` placeholders
//! and collapsed whitespace, never a bound value.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::telemetry;

/// The statement's shape: whitespace collapsed, placeholders kept (the
/// text holds no bound value, as every value goes through `.bind()`).
pub fn statement_shape(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs one ClickHouse query, timing it against `threshold`.
pub async fn timed<T, E: std::fmt::Display>(
    threshold: Duration,
    sql: &str,
    query: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let start = Instant::now();
    let result = query.await;
    let elapsed = start.elapsed();
    let route = telemetry::current_route();
    metrics::histogram!("insite_query_clickhouse_seconds", "route" => route.clone())
        .record(elapsed.as_secs_f64());
    if elapsed >= threshold {
        metrics::counter!("insite_query_clickhouse_slow_total", "route" => route.clone())
            .increment(1);
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        tracing::warn!(
            route = %route,
            elapsed_ms = elapsed.as_millis() as u64,
            threshold_ms = threshold.as_millis() as u64,
            statement = %statement_shape(sql),
            outcome = %outcome,
            "slow ClickHouse query"
        );
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_collapses_whitespace_and_keeps_placeholders() {
        assert_eq!(
            statement_shape("SELECT ?fields FROM bars FINAL \n   WHERE symbol = ?  LIMIT ?"),
            "SELECT ?fields FROM bars FINAL WHERE symbol = ? LIMIT ?"
        );
    }

    #[test]
    fn only_queries_over_the_threshold_count_as_slow_by_route() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let (fast, slow) = metrics::with_local_recorder(&recorder, || {
            futures::executor::block_on(async {
                let fast: Result<u8, String> = telemetry::with_route(
                    telemetry::RouteMetrics::of("/v1/fast"),
                    timed(Duration::from_secs(60), "SELECT 1", async { Ok(1) }),
                )
                .await;
                let slow: Result<u8, String> = telemetry::with_route(
                    telemetry::RouteMetrics::of("/v1/slow"),
                    timed(Duration::ZERO, "SELECT ?", async {
                        Err("refused".to_owned())
                    }),
                )
                .await;
                (fast, slow)
            })
        });
        assert_eq!(fast, Ok(1));
        assert_eq!(slow, Err("refused".to_owned()));
        let text = handle.render();
        assert!(
            text.contains(r#"insite_query_clickhouse_slow_total{route="/v1/slow"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"insite_query_clickhouse_slow_total{route="/v1/fast"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"insite_query_clickhouse_seconds_count{route="/v1/fast"} 1"#),
            "{text}"
        );
    }
}
