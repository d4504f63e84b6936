#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz: libFuzzer with AddressSanitizer, on the nightly that
# fuzz/rust-toolchain.toml pins) of what reads attacker-written bytes: the event decoder, the
# log-record decoder, the model loader. Each target runs SECONDS (default 60) from the
# committed corpus (fuzz/corpus/TARGET); new inputs go to a scratch directory, so the corpus
# only changes by hand (`cargo fuzz cmin`). A crash stops the run, with the input under
# fuzz/artifacts/TARGET/ — make it a regression test in tests/all/properties.rs.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET…]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(event_decoder log_decoder model_loader)
# The pinned nightly (fuzz/rust-toolchain.toml) and cargo-fuzz, as scripts/test-env.sh installs them.
rustup toolchain install >/dev/null 2>&1
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --version 0.13.2 --locked
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sg-target}/fuzz"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    status=0
    cargo fuzz run --release "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$scratch/$target.log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$scratch/$target.log" >&2
        echo "fuzz: $target failed (exit $status); the input is under fuzz/artifacts/$target/" >&2
        exit "$status"
    fi
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$target.log")"
    rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$scratch/$target.log")"
    echo "fuzz: $target: ${runs:-?} inputs in ${seconds}s, no crash (peak RSS ${rss:-?} MB)"
done
