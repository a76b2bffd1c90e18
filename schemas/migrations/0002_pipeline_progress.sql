-- insite ClickHouse schema, version 2: how far each pipeline's results are
-- durable. One row per advance of a pipeline's durable frontier; the newest
-- (highest version) is the one in force. A restarted pipeline reads it to
-- know which windows are already complete in the result tables.

CREATE TABLE IF NOT EXISTS pipeline_progress (
    pipeline String,
    durable_ms Int64,
    updated_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY pipeline;
