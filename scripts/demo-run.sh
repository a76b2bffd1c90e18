#!/usr/bin/env bash
# What the demo runs once the local servers are up (called by demo.sh with
# the path of the insite binary).
set -euo pipefail
insite=${1:-./target/release/insite}

$insite migrate
$insite services status
cat <<'TXT'

insite's local servers are up:
  NATS        nats://127.0.0.1:14222   (JetStream, data in .insite/nats)
  Redis       redis://127.0.0.1:16379
  ClickHouse  http://127.0.0.1:18123   (database `insite`)
Try:  curl 'http://127.0.0.1:18123/?query=SHOW+TABLES+FROM+insite'
Stop: ./target/release/insite services down
TXT
