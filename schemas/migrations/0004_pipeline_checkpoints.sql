-- insite ClickHouse schema, version 4: where each input stream's results
-- are durable, and where a restarted pipeline resumes reading it.
--
-- One row per (pipeline, source) and advance; the highest version is the
-- one in force (read with argMax or FINAL). `pipeline` is the pipeline's
-- name for the row a whole pipeline (every process of a timely cluster)
-- resumes from, and `<name>/<process>` for each process's own frontier.
--
-- durable_ms  every result of this source's windows ending before it is in
--             the result tables (a window [s, e) is final and durable once
--             e < durable_ms), and so are the raw rows of every message at
--             or below resume_seq;
-- resume_seq  every message of the stream at or below it is finished with:
--             a restart reads from resume_seq + 1 (0: from the start);
-- max_ts_ms   the stream's event-time clock after resume_seq (the largest
--             event or clock-tick time at or below it; the minimum Int64:
--             none yet), so a restart resumes the watermark, not from zero.

CREATE TABLE IF NOT EXISTS pipeline_checkpoints (
    pipeline String,
    source String,  --@low_cardinality
    durable_ms Int64,
    resume_seq UInt64,
    max_ts_ms Int64,
    updated_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (pipeline, source)
