-- insite ClickHouse schema, version 3: distinct trades never merge.
-- Version 1 keyed `trades` on (symbol, ts_ms, exchange, trade_id), so two
-- trades without a venue id in the same millisecond (Finnhub frames, CSVs
-- without ids) became one row even at different prices or sizes. The key
-- now ends in price and size. Trades that agree in every field carry
-- distinct ids from ingest (a frame's repeated prints are numbered), and a
-- re-delivered trade still replaces itself.
--
-- ClickHouse cannot change a table's sorting key in place, so the rows move
-- to a new table that then takes the old one's name. Every statement is
-- safe to run again after a crash at any point: the copy is deduplicated by
-- the new key, and the old table is dropped only after the swap.

DROP TABLE IF EXISTS trades_pre_v3;

CREATE TABLE IF NOT EXISTS trades_v3 (
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
ORDER BY (symbol, ts_ms, exchange, trade_id, price, size);

INSERT INTO trades_v3 (symbol, ts, ts_ms, price, size, exchange, trade_id, conditions)
SELECT symbol, ts, ts_ms, price, size, exchange, trade_id, conditions FROM trades;

RENAME TABLE trades TO trades_pre_v3, trades_v3 TO trades;

DROP TABLE IF EXISTS trades_pre_v3
