#!/usr/bin/env bash
# A real Prometheus (Debian's `prometheus`, installed when missing) for the
# local demo: deploy/prometheus/local.yml (the deployment's jobs on the
# demo's loopback ports) with the repo's alert rules, data under
# .insite/prometheus, UI on http://127.0.0.1:${INSITE_PROMETHEUS_PORT:-19090}.
#   deploy/prometheus/run-local.sh install   # only install
#   deploy/prometheus/run-local.sh start     # install if needed, start, wait until ready
#   deploy/prometheus/run-local.sh stop
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${INSITE_PROMETHEUS_PORT:-19090}
DATA=.insite/prometheus
PIDFILE=.insite/prometheus.pid
LOG=.insite/logs/prometheus.log

install() {
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
        return
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "prometheus is not installed: sudo apt-get install -y --no-install-recommends prometheus" >&2
        exit 1
    fi
    echo "installing Debian's prometheus"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}

case "${1:-start}" in
install) install ;;
start)
    install
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "prometheus already running (pid $(cat "$PIDFILE"))"
        exit 0
    fi
    mkdir -p "$DATA" "$(dirname "$LOG")"
    promtool check config deploy/prometheus/local.yml >/dev/null
    prometheus --config.file=deploy/prometheus/local.yml --storage.tsdb.path="$DATA" \
        --storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$PORT" \
        >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 100); do
        if curl -fsS "http://127.0.0.1:$PORT/-/ready" >/dev/null 2>&1; then
            echo "prometheus on http://127.0.0.1:$PORT (alerts: /alerts, log: $LOG)"
            exit 0
        fi
        sleep 0.2
    done
    echo "prometheus did not become ready; see $LOG" >&2
    exit 1
    ;;
stop)
    if [ -f "$PIDFILE" ]; then
        kill "$(cat "$PIDFILE")" 2>/dev/null || true
        rm -f "$PIDFILE"
    fi
    ;;
*) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
