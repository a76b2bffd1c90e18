-- insite ClickHouse schema, version 1.
-- As written, this is what ClickHouse 18.16 runs: plain DateTime plus a
-- millisecond UInt64 column (no DateTime64), no TTL clause, no LowCardinality.
-- Two markers, comments read by `insite_schemas::migrations` (and
-- plain comments to anyone else), render the newer servers' features (see
-- `insite_schemas::server`): `@low_cardinality` after a column makes its
-- `String` a `LowCardinality(String)`, and a line starting `@datetime64` adds
-- what follows it (a `DateTime64(3, 'UTC')` ALIAS over a millisecond column:
-- not stored, so inserts and the rows they send are the same on every
-- server).
-- Every table is a ReplacingMergeTree keyed so that a re-delivered or
-- recomputed row replaces the earlier one; read with FINAL or argMax.

CREATE TABLE IF NOT EXISTS trades (
    symbol String,  --@low_cardinality
    ts DateTime,
    ts_ms UInt64,
    price Float64,
    size UInt64,
    exchange String,  --@low_cardinality
    trade_id String,
    conditions Array(String)
    --@datetime64 , ts64 DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(toInt64(ts_ms), 'UTC')
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (symbol, ts_ms, exchange, trade_id);

CREATE TABLE IF NOT EXISTS quotes (
    symbol String,  --@low_cardinality
    ts DateTime,
    ts_ms UInt64,
    bid Float64,
    bid_size UInt64,
    ask Float64,
    ask_size UInt64
    --@datetime64 , ts64 DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(toInt64(ts_ms), 'UTC')
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (symbol, ts_ms, bid, ask, bid_size, ask_size);

CREATE TABLE IF NOT EXISTS posts (
    source String,  --@low_cardinality
    id String,
    author String,
    ts DateTime,
    ts_ms UInt64,
    text String,
    cashtags Array(String),
    author_followers UInt64,
    score Float64
    --@datetime64 , ts64 DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(toInt64(ts_ms), 'UTC')
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (ts_ms, source, id);

CREATE TABLE IF NOT EXISTS bars (
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
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (symbol, interval_s, window_start_ms);

CREATE TABLE IF NOT EXISTS sentiment (
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
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (symbol, interval_s, window_start_ms);

CREATE TABLE IF NOT EXISTS trending (
    interval_s UInt32,
    window_start DateTime,
    window_start_ms UInt64,
    rank UInt32,
    symbol String,  --@low_cardinality
    mentions UInt64,
    zscore Float64,
    version UInt64
    --@datetime64 , window_start64 DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(toInt64(window_start_ms), 'UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (interval_s, window_start_ms, symbol);

CREATE TABLE IF NOT EXISTS alerts (
    symbol String,  --@low_cardinality
    kind String,  --@low_cardinality
    interval_s UInt32,
    window_start DateTime,
    window_start_ms UInt64,
    value Float64,
    threshold Float64,
    message String,
    version UInt64
    --@datetime64 , window_start64 DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(toInt64(window_start_ms), 'UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (symbol, kind, interval_s, window_start_ms);

CREATE TABLE IF NOT EXISTS late_events (
    kind String,  --@low_cardinality
    symbol String,  --@low_cardinality
    ts DateTime,
    ts_ms UInt64,
    watermark_ms UInt64,
    event_id String,
    received_at DateTime
    --@datetime64 , ts64 DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(toInt64(ts_ms), 'UTC')
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (symbol, kind, ts_ms, event_id);
