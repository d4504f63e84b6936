#!/usr/bin/env bash
# Installs what the tests need, then runs them (release profile: one build shared with the
# binary and the benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-env.sh
export SG_PYTHON="$PWD/.venv/bin/python"
# The workspace's default members: host (unit + tests/all), the feature logic, the forest.
cargo test --release --locked "$@"
