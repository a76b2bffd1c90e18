#!/usr/bin/env bash
# The live demo on this machine: installs (if missing) and starts NATS,
# Redis and ClickHouse on their own loopback ports with data under .insite/,
# creates the streams and tables, then runs what insite has to show.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p insite
insite=./target/release/insite

$insite services up
exec ./scripts/demo-run.sh "$insite"
