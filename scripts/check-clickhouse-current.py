#!/usr/bin/env python3
"""Runs every statement insite sends to ClickHouse against a current
ClickHouse engine (chdb-core, ClickHouse 26.x in-process), in order, in a
fresh database: the migrations, a sample insert into every table, then
every read (the sinks' and the query service's), reading the statements
from `clickhouse-statements` (testkit). Each SELECT must answer, and the
reads of the sample rows must find them. Exits non-zero on the first
statement the engine refuses.

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
                     "query: alerts_of_symbol", "query: frontier"]:
            if not answers.get(name):
                print(f"  FAIL {name} found none of the sample rows", file=sys.stderr)
                sys.exit(1)
        print(f"  ok  {len(statements)} statements on ClickHouse {version}")


if __name__ == "__main__":
    main()
