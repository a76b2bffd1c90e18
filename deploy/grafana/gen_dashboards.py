#!/usr/bin/env python3
"""Writes the insite Grafana dashboards (dashboards/*.json).

The dashboards are generated so that every panel has the same shape; edit
this file and run it (`python3 deploy/grafana/gen_dashboards.py`) rather
than editing the JSON. deploy/validate.sh checks that every metric a
panel queries exists in the code.

Every latency and size histogram is exported with buckets (`_bucket`), so
panels aggregate it across processes with histogram_quantile over
`sum by (le)`; a summary's per-process quantiles could not be combined.
"""
import json
import pathlib

DS = {"type": "prometheus", "uid": "${datasource}"}


def panel(pid, title, exprs, x, y, unit="short", w=12, h=8, kind="timeseries"):
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": e, "legendFormat": l}
            for i, (e, l) in enumerate(exprs)
        ],
    }


def dashboard(uid, title, panels):
    return {
        "uid": uid,
        "title": title,
        "tags": ["insite"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"text": "Prometheus", "value": "prometheus"},
                }
            ]
        },
        "panels": [panel(i + 1, *p[0], **p[1]) for i, p in enumerate(panels)],
    }


def grid(specs):
    """Lays out (title, exprs, options) two per row."""
    out = []
    for i, (title, exprs, opts) in enumerate(specs):
        out.append(((title, exprs, (i % 2) * 12, (i // 2) * 8), opts))
    return out


pipeline = grid([
    ("Events in by source (/s)", [
        ('sum by (source) (rate(insite_pipeline_events_in_total[1m]))', "{{source}} events"),
        ('sum by (source) (rate(insite_pipeline_messages_in_total[1m]))', "{{source}} messages"),
    ], {"unit": "ops"}),
    ("Results out by kind (/s)", [
        ('sum by (kind) (rate(insite_pipeline_results_out_total[1m]))', "{{kind}}"),
    ], {"unit": "ops"}),
    ("Dead letters (/s)", [
        ('sum by (source, kind) (rate(insite_pipeline_dlq_total[5m]))', "{{source}} {{kind}}"),
    ], {"unit": "ops"}),
    ("Late events (/s)", [
        ('sum(rate(insite_pipeline_late_events_total[5m]))', "late"),
        ('sum(rate(insite_pipeline_settled_results_dropped_total[5m]))', "settled results dropped"),
    ], {"unit": "ops"}),
    ("Watermark lag", [
        ('max by (instance) (insite_pipeline_watermark_lag_seconds)', "{{instance}}"),
    ], {"unit": "s"}),
    ("Consumer pending (JetStream backlog)", [
        ('sum by (source) (insite_pipeline_consumer_pending)', "{{source}}"),
        ('sum(insite_pipeline_held_messages)', "held (awaiting durability)"),
    ], {}),
    ("ClickHouse flush latency", [
        ('histogram_quantile(0.5, sum by (le) (rate(insite_pipeline_clickhouse_flush_seconds_bucket[5m])))', "p50"),
        ('histogram_quantile(0.99, sum by (le) (rate(insite_pipeline_clickhouse_flush_seconds_bucket[5m])))', "p99"),
        ('histogram_quantile(0.99, sum by (le, instance) (rate(insite_pipeline_clickhouse_flush_seconds_bucket[5m])))', "p99 {{instance}}"),
    ], {"unit": "s"}),
    ("ClickHouse flush batch size (rows)", [
        ('histogram_quantile(0.5, sum by (le) (rate(insite_pipeline_clickhouse_flush_rows_bucket[5m])))', "p50"),
        ('sum(rate(insite_pipeline_clickhouse_flush_rows_sum[5m])) / clamp_min(sum(rate(insite_pipeline_clickhouse_flush_rows_count[5m])), 1e-9)', "mean"),
    ], {}),
    ("End-to-end latency (event time to Redis write)", [
        ('histogram_quantile(0.5, sum by (le) (rate(insite_pipeline_event_to_redis_seconds_bucket[5m])))', "p50"),
        ('histogram_quantile(0.95, sum by (le) (rate(insite_pipeline_event_to_redis_seconds_bucket[5m])))', "p95"),
        ('histogram_quantile(0.99, sum by (le) (rate(insite_pipeline_event_to_redis_seconds_bucket[5m])))', "p99"),
    ], {"unit": "s"}),
    ("Finished messages (/s, behind the checkpoints) and errors", [
        ('sum(rate(insite_pipeline_finished_messages_total[1m]))', "finished"),
        ('sum(rate(insite_pipeline_pull_errors_total[5m]))', "pull errors"),
        ('sum(rate(insite_pipeline_redis_errors_total[5m]))', "redis errors"),
        ('sum(rate(insite_pipeline_nats_publish_errors_total[5m]))', "nats publish errors"),
    ], {"unit": "ops"}),
])

Q = 'sum by (le, route) (rate(insite_query_request_duration_seconds_bucket{route!="/v1/stream"}[5m]))'
query = grid([
    ("Requests by route (/s)", [
        ('sum by (route) (rate(insite_query_requests_total[1m]))', "{{route}}"),
    ], {"unit": "reqps"}),
    ("Responses by status (/s)", [
        ('sum by (status) (rate(insite_query_requests_total[1m]))', "{{status}}"),
        ('sum by (reason) (rate(insite_query_refused_total[1m]))', "refused {{reason}}"),
    ], {"unit": "reqps"}),
    ("Latency p50 by route", [(f"histogram_quantile(0.50, {Q})", "{{route}}")], {"unit": "s"}),
    ("Latency p95 by route", [(f"histogram_quantile(0.95, {Q})", "{{route}}")], {"unit": "s"}),
    ("Latency p99 by route", [(f"histogram_quantile(0.99, {Q})", "{{route}}")], {"unit": "s"}),
    ("Cache hit ratio", [
        ('avg(insite_query_cache_hit_ratio)', "hit ratio (all replicas)"),
        ('sum by (source) (rate(insite_query_cache_total[5m]))', "answers from {{source}} (/s)"),
    ], {"unit": "percentunit"}),
    ("WebSocket clients", [
        ('sum(insite_query_ws_clients)', "clients"),
        ('sum by (instance) (insite_query_ws_clients)', "{{instance}}"),
    ], {}),
    ("Dropped slow clients and fan-out", [
        ('sum(increase(insite_query_ws_dropped_slow_total[5m]))', "dropped slow (5m)"),
        ('sum by (kind) (rate(insite_query_ws_messages_total[1m]))', "sent {{kind}} (/s)"),
        ('sum by (kind) (rate(insite_query_feed_messages_total[1m]))', "feed {{kind}} (/s)"),
        ('sum(rate(insite_query_feed_errors_total[5m]))', "feed errors (/s)"),
    ], {}),
])

ingest = grid([
    ("Published, acked, retried (messages/s)", [
        ('sum by (feed) (rate(insite_ingest_published_total[1m]))', "published {{feed}}"),
        ('sum by (feed) (rate(insite_ingest_acked_total[1m]))', "acked {{feed}}"),
        ('sum by (feed) (rate(insite_ingest_retried_total[1m]))', "retried {{feed}}"),
        ('sum by (feed) (rate(insite_ingest_duplicates_total[1m]))', "duplicates {{feed}}"),
    ], {"unit": "ops"}),
    ("Events acknowledged (/s) and rejected input", [
        ('sum by (feed) (rate(insite_ingest_events_total[1m]))', "events {{feed}}"),
        ('sum by (feed) (rate(insite_ingest_rejected_total[5m]))', "rejected {{feed}}"),
    ], {"unit": "ops"}),
    ("Publish ack latency", [
        ('histogram_quantile(0.5, sum by (le, feed) (rate(insite_ingest_publish_ack_seconds_bucket[5m])))', "p50 {{feed}}"),
        ('histogram_quantile(0.99, sum by (le, feed) (rate(insite_ingest_publish_ack_seconds_bucket[5m])))', "p99 {{feed}}"),
    ], {"unit": "s"}),
])

out = pathlib.Path(__file__).resolve().parent / "dashboards"
out.mkdir(exist_ok=True)
for uid, title, panels in [
    ("insite-pipeline", "insite / pipeline", pipeline),
    ("insite-query", "insite / query", query),
    ("insite-ingest", "insite / ingest", ingest),
]:
    path = out / f"{uid.removeprefix('insite-')}.json"
    path.write_text(json.dumps(dashboard(uid, title, panels), indent=2) + "\n")
    print(f"wrote {path}")
