-- insite ClickHouse schema, version 5: the results' tables partitioned by
-- month. Version 1 partitioned `bars` and `sentiment` by day, so a long
-- range (a year of daily aggregates) read with FINAL opened every part of
-- 365 partitions at once, two files per column each: about 9,000 file
-- descriptors a query, past ClickHouse's open-file limit with a few such
-- queries at once ("Too many open files"). A month holds at most 43,200
-- one-minute bars of a symbol, so monthly parts stay small, and a year is
-- 12 partitions. The raw tables keep their daily partitions (retention
-- drops whole days).
--
-- ClickHouse cannot change a table's partition key in place, so each table
-- is copied to a new one that then takes the old one's name, as version 3
-- did: every statement is safe to run again after a crash at any point
-- (the copy is de-duplicated by the table's key and version, and the old
-- table is dropped only after the swap).

DROP TABLE IF EXISTS bars_pre_v5;

CREATE TABLE IF NOT EXISTS bars_v5 (
    symbol String,  --@low_cardinality
    interval_s UInt32,
    window_start DateTime,
    window_start_ms UInt64,
    open Float64,
    high Float64,
    low Float64,
    close Float64,
    volume UInt64,
    vwap Float64,
    trades UInt64,
    version UInt64
    --@datetime64 , window_start64 DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(toInt64(window_start_ms), 'UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (symbol, interval_s, window_start_ms);

INSERT INTO bars_v5 (symbol, interval_s, window_start, window_start_ms, open, high, low, close, volume, vwap, trades, version)
SELECT symbol, interval_s, window_start, window_start_ms, open, high, low, close, volume, vwap, trades, version FROM bars;

RENAME TABLE bars TO bars_pre_v5, bars_v5 TO bars;

DROP TABLE IF EXISTS bars_pre_v5;

DROP TABLE IF EXISTS sentiment_pre_v5;

CREATE TABLE IF NOT EXISTS sentiment_v5 (
    symbol String,  --@low_cardinality
    interval_s UInt32,
    window_start DateTime,
    window_start_ms UInt64,
    posts UInt64,
    score Float64,
    positive UInt64,
    negative UInt64,
    neutral UInt64,
    weighted_score Float64,
    version UInt64
    --@datetime64 , window_start64 DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(toInt64(window_start_ms), 'UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (symbol, interval_s, window_start_ms);

INSERT INTO sentiment_v5 (symbol, interval_s, window_start, window_start_ms, posts, score, positive, negative, neutral, weighted_score, version)
SELECT symbol, interval_s, window_start, window_start_ms, posts, score, positive, negative, neutral, weighted_score, version FROM sentiment;

RENAME TABLE sentiment TO sentiment_pre_v5, sentiment_v5 TO sentiment;

DROP TABLE IF EXISTS sentiment_pre_v5;
