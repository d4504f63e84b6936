#!/usr/bin/env bash
# Installs what the tests need, then runs them (release profile: one build shared with the
# binary and the benchmarks). Ends with a one-line total.
set -euo pipefail
cd "$(dirname "$0")/.."
df -h --output=avail,target . | tail -1 | awk '{ print "disk: " $1 " free on " $2 " before the build" }'
scripts/test-env.sh
export SG_PYTHON="$PWD/.venv/bin/python"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The workspace's default members: host (unit + tests/all), the feature logic, the forest.
status=0
cargo test --release --locked "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
du -sh target | awk '{ print "disk: target/ holds " $1 }'
exit "$status"
