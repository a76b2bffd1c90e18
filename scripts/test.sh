#!/usr/bin/env bash
# The whole test suite, as CI runs it, on a fresh Debian machine with a Rust
# toolchain: formatting, lints, docs and the MSRV, the server binaries
# (installed if missing), the deploy files, then every unit, property,
# integration and end-to-end test against real NATS, Redis and ClickHouse
# servers that the tests start and stop. Each stage prints its wall time.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE_START=$SECONDS
STAGE_NAME=""
STAGE_START=$SECONDS
TIMES=()
finish_stage() {
    if [ -n "$STAGE_NAME" ]; then
        local took=$((SECONDS - STAGE_START))
        printf '<== %s: %d s\n' "$STAGE_NAME" "$took"
        TIMES+=("$(printf '%5d s  %s' "$took" "$STAGE_NAME")")
    fi
}
step() {
    finish_stage
    STAGE_NAME="$*"
    STAGE_START=$SECONDS
    printf '\n==> %s\n' "$*"
}
# Servers the test harness started live under target/insite-test/<pid>/
# and die with their test process; anything still running from there once
# the suite ends is a leak: reported, then stopped.
sweep_servers() {
    local leftover
    leftover=$(pgrep -f "$PWD/target/insite-test/" || true)
    if [ -n "$leftover" ]; then
        printf '\n==> test servers left running (stopping them): %s\n' "$(echo $leftover)"
        pkill -f "$PWD/target/insite-test/" || true
    fi
}
summary() {
    local status=$?
    sweep_servers
    finish_stage
    printf '\n==> stage times\n'
    printf '%s\n' "${TIMES[@]}"
    printf '%5d s  total (exit %d)\n' "$((SECONDS - SUITE_START))" "$status"
}
trap summary EXIT
# A stage that hangs fails on its own deadline, with the stage named,
# instead of eating the whole CI budget; `timeout` signals the stage's
# whole process group (cargo, the test binaries and their servers).
bounded() {
    local seconds=$1
    shift
    local status=0
    timeout --kill-after=30 "$seconds" "$@" || status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        printf '\n==> %s: still running after %d s, stopped\n' "$STAGE_NAME" "$seconds"
    fi
    return "$status"
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors; MSRV lints from rust-version)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "MSRV (declared rust-version against the dependency graph and the toolchain)"
python3 scripts/check-msrv.py

step "server binaries (NATS, Redis, ClickHouse; installed if missing)"
cargo build --locked -p insite
./target/debug/insite services install

step "deploy files (after the install, so that no check is skipped)"
./deploy/validate.sh

step "current ClickHouse (every migration and statement on chdb-core, ClickHouse 26.x)"
./scripts/check-clickhouse-current.sh

step "API clients from PyPI (polygon-api-client, schemathesis; venv under target/)"
./scripts/api-clients.sh venv

step "cargo test (unit, property, integration, end-to-end)"
bounded 2400 cargo test --workspace --locked

step "schemathesis --checks all against a live query service (/v1 and the vendor routes)"
bounded 900 cargo test --locked -p insite-testkit --test it query_schemathesis -- --ignored

step "fuzzing (every target in fuzz/, ${FUZZ_SECONDS:-20} s each)"
bounded 1500 ./scripts/fuzz.sh
