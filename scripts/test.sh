#!/usr/bin/env bash
# Installs what the tests need, then runs every tier: the fast tier (unit tests, in-process
# pipelines, the window bookkeeping, hostile guests) and the tests marked `#[ignore = "services:
# …"]` that need the real services (the nisshi broker, Python with pyarrow, the embedding
# model, qemu and the aarch64 build) or the reference data in ../shared/data. Release profile:
# one build shared with the binary and the benchmarks. Extra arguments go to `cargo test`.
# Ends with a one-line total.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
df -h --output=avail,target . | tail -1 | awk '{ print "disk: " $1 " free on " $2 " before the build" }'
scripts/test-env.sh
export SG_PYTHON="$PWD/.venv/bin/python"
export SG_AARCH64_HOST="$target_dir/aarch64-unknown-linux-gnu/release/sg-host"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The workspace's default members: host (unit + tests/all), the feature logic, the forest.
status=0
cargo test --release --locked --no-fail-fast "$@" -- --include-ignored 2>&1 | tee "$log" || status=$?
# Coverage-guided fuzzing of the decoders and the model loader, a minute each.
if [ $# -eq 0 ]; then
    scripts/fuzz.sh "${SG_FUZZ_SECONDS:-60}" 2>&1 | tee -a "$log" || status=$?
fi
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
     END { printf "summary: %d passed, %d failed, %d ignored\n", p, f, g }' "$log"
du -sh "$target_dir" | awk '{ print "disk: the target directory holds " $1 }'
exit "$status"
