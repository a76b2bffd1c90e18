#!/usr/bin/env bash
# The whole test suite, as CI runs it, on a fresh Debian machine with a Rust
# toolchain: formatting, lints, the server binaries (installed if missing),
# then every unit, property, integration and end-to-end test against real
# NATS, Redis and ClickHouse servers that the tests start and stop.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "deploy files"
./deploy/validate.sh

step "server binaries (NATS, Redis, ClickHouse; installed if missing)"
cargo build --locked -p insite
./target/debug/insite services install

step "cargo test (unit, property, integration, end-to-end)"
cargo test --workspace --locked
