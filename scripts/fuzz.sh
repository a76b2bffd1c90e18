#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time each (FUZZ_SECONDS,
# default 20), starting from the seed corpus in fuzz/seeds/<target>/ plus
# whatever earlier runs found (kept under target/fuzz-corpus/, not in the
# repository). A crash stops the run with the target's name and the input
# that crashed it under target/fuzz-artifacts/<target>/.
#
# cargo-fuzz is installed from crates.io when missing. libFuzzer needs a
# nightly compiler: the installed nightly toolchain when there is one,
# otherwise the machine's stable toolchain with RUSTC_BOOTSTRAP=1 (which
# allows the -Z sanitizer flags cargo-fuzz passes).
#
#   scripts/fuzz.sh                 # every target, 20 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh wire_inbound
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0
SECONDS_EACH=${FUZZ_SECONDS:-20}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
    FUZZ=(cargo +nightly fuzz)
else
    echo "no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
    FUZZ=(cargo fuzz)
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("${FUZZ[@]}" list)
fi

# One build for every target (they share their dependencies).
BUILD=(--debug-assertions --target-dir "$PWD/target/fuzz")
"${FUZZ[@]}" build "${BUILD[@]}"
for target in "${targets[@]}"; do
    corpus="target/fuzz-corpus/$target"
    artifacts="target/fuzz-artifacts/$target"
    log="target/fuzz-artifacts/$target.log"
    mkdir -p "$corpus" "$artifacts"
    echo "--> $target (${SECONDS_EACH} s)"
    if ! "${FUZZ[@]}" run "${BUILD[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz target $target failed; the crashing input is in $artifacts/" >&2
        exit 1
    fi
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::new_units_added)' "$log" | tr '\n' ' '
    echo
done
