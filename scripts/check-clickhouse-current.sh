#!/usr/bin/env bash
# Every migration and every statement the sinks, the pipeline and the query
# service send (with sample values), rendered for and run against a current
# ClickHouse engine: chdb-core from PyPI (ClickHouse 26.x in-process), in a
# venv under target/. The
# registries carry only ClickHouse 18.16 as a server, which the rest of the
# suite runs against; this covers what production runs.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-target}")
VENV=$TARGET/chdb-venv
CHDB_VERSION=26.9.0
if ! "$VENV/bin/python" -c "import chdb, sys; sys.exit(chdb.__version__ != '$CHDB_VERSION')" 2>/dev/null; then
    echo "--- installing chdb-core==$CHDB_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "chdb-core==$CHDB_VERSION"
fi
cargo build --locked -q -p insite-testkit --bin clickhouse-statements
# The statements as insite renders them for this engine's version (the
# features of newer servers: LowCardinality, DateTime64 aliases, TTL).
VERSION=$("$VENV/bin/python" -c "import chdb; print(chdb.query('SELECT version()', 'CSV').data().strip().strip('\"'))")
"$TARGET/debug/clickhouse-statements" "$VERSION" >"$TARGET/clickhouse-statements.json"
"$VENV/bin/python" scripts/check-clickhouse-current.py "$TARGET/clickhouse-statements.json"
