#!/usr/bin/env python3
"""Runs every statement insite sends to ClickHouse against a current
ClickHouse engine (chdb-core, ClickHouse 26.x in-process), in order, in a
fresh database: the migrations (rendered for this engine's version), the
raw tables' retention, a sample insert into every table, then every read
(the sinks', the pipeline's checkpoint reads, the query service's /v1 and
vendor routes'), reading the statements from `clickhouse-statements`
(testkit). Each SELECT must answer, and the reads of the sample rows must
find them. Then the features of newer servers the DDL was rendered with are
checked in the tables (LowCardinality columns, DateTime64 aliases, TTL).
Exits non-zero on the first statement the engine refuses or check that
fails.

    python3 scripts/check-clickhouse-current.py statements.json
"""
import json
import sys
import tempfile

import chdb
from chdb import session


def main():
    statements = json.load(open(sys.argv[1]))
    with tempfile.TemporaryDirectory(prefix="insite-chdb-") as path:
        s = session.Session(path)
        version = s.query("SELECT version()", "CSV").data().strip().strip('"')
        print(f"  ..  chdb {chdb.__version__}, ClickHouse {version}")
        s.query("CREATE DATABASE IF NOT EXISTS insite")
        s.query("USE insite")
        answers = {}
        for st in statements:
            try:
                result = s.query(st["sql"], "JSONCompact")
            except Exception as e:  # chdb raises a plain RuntimeError
                print(f"  FAIL {st['name']}: {e}\n{st['sql']}", file=sys.stderr)
                sys.exit(1)
            rows = None
            text = result.data() if result is not None else ""
            if text.strip():
                rows = json.loads(text).get("data", [])
                answers[st["name"]] = rows
            print(f"  ok  {st['name']}" + ("" if rows is None else f" ({len(rows)} rows)"))
        # The sample rows are read back by the reads that should find them.
        for name in ["query: latest_bar", "query: latest_quote", "query: latest_trade",
                     "query: range_bars", "query: range_sentiment", "query: trending_latest",
                     "query: alerts_of_symbol", "query: frontier",
                     "query: vendor_granules_of_symbol",
                     "query: vendor_granules_of_symbol_newest_first",
                     "query: vendor_granules_of_symbols",
                     "query: vendor_granules_of_every_symbol",
                     "pipeline: checkpoints", "pipeline: backfill live_frontiers"]:
            if not answers.get(name):
                fail(f"{name} found none of the sample rows")
        for name in ["query: vendor_newest_bar_before_of_symbol", "query: vendor_newest_bar_before"]:
            rows = answers.get(name) or [[0, 0]]
            if int(rows[0][1]) == 0:
                fail(f"{name} found none of the sample bars")
        check_features(s, statements)
        print(f"  ok  {len(statements)} statements on ClickHouse {version}")


def fail(message):
    print(f"  FAIL {message}", file=sys.stderr)
    sys.exit(1)


def rows(s, sql):
    text = s.query(sql, "JSONCompact").data()
    return json.loads(text).get("data", []) if text.strip() else []


def check_features(s, statements):
    """The features of newer servers the statements were rendered with are
    in the tables: LowCardinality columns, DateTime64 aliases that read the
    millisecond columns exactly, and a TTL that expires rows."""
    ddl = "\n".join(st["sql"] for st in statements)
    if "LowCardinality(String)" in ddl:
        found = rows(s, "SELECT table, name, type FROM system.columns WHERE database = 'insite' "
                        "AND name IN ('symbol', 'source', 'kind', 'exchange') "
                        "AND table IN ('trades', 'quotes', 'posts', 'bars', 'alerts', 'late_events')")
        plain = [r for r in found if r[2] != "LowCardinality(String)"]
        if not found or plain:
            fail(f"LowCardinality: columns not LowCardinality(String): {plain or 'none found'}")
        print(f"  ok  LowCardinality(String): {len(found)} columns")
    if "DateTime64" in ddl:
        for table, alias, ms in [("trades", "ts64", "ts_ms"), ("quotes", "ts64", "ts_ms"),
                                 ("posts", "ts64", "ts_ms"), ("late_events", "ts64", "ts_ms"),
                                 ("bars", "window_start64", "window_start_ms"),
                                 ("sentiment", "window_start64", "window_start_ms"),
                                 ("trending", "window_start64", "window_start_ms"),
                                 ("alerts", "window_start64", "window_start_ms")]:
            got = rows(s, f"SELECT count(), countIf(toUnixTimestamp64Milli({alias}) = {ms}), "
                          f"toTypeName(any({alias})) FROM insite.{table}")
            n, exact, typ = int(got[0][0]), int(got[0][1]), got[0][2]
            if n == 0 or exact != n or typ != "DateTime64(3, 'UTC')":
                fail(f"DateTime64: {table}.{alias} is {typ}, {exact} of {n} rows equal {ms}")
        print("  ok  DateTime64(3, 'UTC') aliases read the millisecond columns exactly")
    # The TTL each raw table was last set to.
    retention = {}
    for st in statements:
        if st["name"].startswith("retention: ") and " MODIFY TTL " in st["sql"]:
            table, expr = st["sql"].removeprefix("ALTER TABLE ").split(" MODIFY TTL ", 1)
            retention[table] = expr
    if retention:
        for table, expr in retention.items():
            full = rows(s, f"SELECT engine_full FROM system.tables WHERE database = 'insite' AND name = '{table}'")
            if f"TTL {expr}" not in full[0][0]:
                fail(f"TTL: {table}'s engine is {full[0][0]!r}, without TTL {expr}")
        # A retention shorter than the sample rows' age expires them.
        s.query("ALTER TABLE late_events MODIFY TTL ts + toIntervalDay(1)")
        s.query("OPTIMIZE TABLE late_events FINAL")
        left = int(rows(s, "SELECT count() FROM late_events")[0][0])
        if left != 0:
            fail(f"TTL: {left} late events older than a day are left after a merge")
        print(f"  ok  TTL on {len(retention)} raw tables; a one-day TTL expires older rows")


if __name__ == "__main__":
    main()
