-- insite ClickHouse schema, version 1.
-- Runs on ClickHouse 18.16 and on current releases: plain DateTime plus a
-- millisecond UInt64 column (no DateTime64), no TTL clause, no LowCardinality.
-- Every table is a ReplacingMergeTree keyed so that a re-delivered or
-- recomputed row replaces the earlier one; read with FINAL or argMax.

CREATE TABLE IF NOT EXISTS trades (
    symbol String,
    ts DateTime,
    ts_ms UInt64,
    price Float64,
    size UInt64,
    exchange String,
    trade_id String,
    conditions Array(String)
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (symbol, ts_ms, exchange, trade_id);

CREATE TABLE IF NOT EXISTS quotes (
    symbol String,
    ts DateTime,
    ts_ms UInt64,
    bid Float64,
    bid_size UInt64,
    ask Float64,
    ask_size UInt64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (symbol, ts_ms, bid, ask, bid_size, ask_size);

CREATE TABLE IF NOT EXISTS posts (
    source String,
    id String,
    author String,
    ts DateTime,
    ts_ms UInt64,
    text String,
    cashtags Array(String),
    author_followers UInt64,
    score Float64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (ts_ms, source, id);

CREATE TABLE IF NOT EXISTS bars (
    symbol String,
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
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (symbol, interval_s, window_start_ms);

CREATE TABLE IF NOT EXISTS sentiment (
    symbol String,
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
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (symbol, interval_s, window_start_ms);

CREATE TABLE IF NOT EXISTS trending (
    interval_s UInt32,
    window_start DateTime,
    window_start_ms UInt64,
    rank UInt32,
    symbol String,
    mentions UInt64,
    zscore Float64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (interval_s, window_start_ms, symbol);

CREATE TABLE IF NOT EXISTS alerts (
    symbol String,
    kind String,
    interval_s UInt32,
    window_start DateTime,
    window_start_ms UInt64,
    value Float64,
    threshold Float64,
    message String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (symbol, kind, interval_s, window_start_ms);

CREATE TABLE IF NOT EXISTS late_events (
    kind String,
    symbol String,
    ts DateTime,
    ts_ms UInt64,
    watermark_ms UInt64,
    event_id String,
    received_at DateTime
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (symbol, kind, ts_ms, event_id);
