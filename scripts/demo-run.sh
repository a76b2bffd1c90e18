#!/usr/bin/env bash
# The live demo, once the local servers are up (called by demo.sh with the
# path of the insite binary): a synthetic market and social feed, the
# pipeline and the query service, all on loopback, until Ctrl-C.
set -euo pipefail
insite=${1:-./target/release/insite}
rate=${INSITE_DEMO_RATE:-2000}
logs=.insite/logs
mkdir -p "$logs"

$insite migrate
# History first, so that a first visitor sees a full chart with sentiment
# and trending, not a single candle. A later run finds the live pipeline's
# own windows in the way, and the backfill is refused: it goes live on what
# is there.
history=${INSITE_DEMO_HISTORY:-3h}
echo "backfilling ${history} of synthetic history..."
if $insite --log warn backfill --synthetic "$history" --quiet >"$logs/backfill.log" 2>&1; then
  cat "$logs/backfill.log"
elif grep -q "refused" "$logs/backfill.log"; then
  echo "history is already there (an earlier demo run); going live on it"
else
  cat "$logs/backfill.log"
  exit 1
fi
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping the feed, the pipeline and the query service..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  ./deploy/prometheus/run-local.sh stop
  echo "stopped. The servers keep running: $insite services down"
}
trap stop INT TERM EXIT

$insite pipeline run --metrics-addr 127.0.0.1:9465 >"$logs/pipeline.log" 2>&1 &
pids+=($!)
$insite query serve --listen 127.0.0.1:8080 >"$logs/query.log" 2>&1 &
pids+=($!)
sleep 2
$insite ingest synthetic --rate "$rate" --posts-per-s 20 --metrics-addr 127.0.0.1:9464 \
  >"$logs/ingest.log" 2>&1 &
pids+=($!)

# Prometheus with the repo's scrape config and alert rules (Debian's
# package, installed when missing).
./deploy/prometheus/run-local.sh start || echo "(Prometheus not started; the demo goes on without it)"
$insite services status
cat <<TXT

insite is running on this machine (${rate} market events/s of live synthetic data):
  Live chart     http://127.0.0.1:8080/
  API            http://127.0.0.1:8080/v1/openapi.json
                 curl 'http://127.0.0.1:8080/v1/symbols/AAPL/bar?interval=1m'
  WebSocket      ws://127.0.0.1:8080/v1/stream
  Metrics        http://127.0.0.1:9464/metrics (ingest)  http://127.0.0.1:9465/metrics (pipeline)
                 http://127.0.0.1:8080/metrics (query)
  Prometheus     http://127.0.0.1:${INSITE_PROMETHEUS_PORT:-19090}/alerts (the repo's scrape config and alert rules)
  Passwords      .insite/secrets.toml (owner only; each insite command reads its own)
  ClickHouse     curl -u 'insite_analyst:<[clickhouse] analyst>' 'http://127.0.0.1:18123/?query=SELECT+*+FROM+insite.bars+FINAL+ORDER+BY+window_start_ms+DESC+LIMIT+5'
  Redis          redis-cli -p 16379 --user analyst --pass '<[redis] analyst>' --scan --pattern 'insite:*'
  NATS           nats://127.0.0.1:14222, user subscriber, password [nats] subscriber (results on insite.>)
  Logs           $logs/{ingest,pipeline,query,prometheus}.log
Ctrl-C stops the feed, the pipeline and the query service; the servers stay up
(./target/release/insite services down stops them).
TXT
wait "${pids[@]}"
