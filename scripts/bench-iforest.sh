#!/usr/bin/env bash
# Isolation Forest vs scikit-learn (installed here into .venv-bench), same data, same run.
# Usage: scripts/bench-iforest.sh [ROWS ...]   (default: 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo builds (a shared cache when set)
if ! .venv-bench/bin/python -c "import sklearn, pyarrow" 2>/dev/null; then
    python3 -m venv .venv-bench
    .venv-bench/bin/pip install --quiet --disable-pip-version-check scikit-learn pyarrow
fi
cargo build --release --locked -p sg-host
.venv-bench/bin/python -c "import sklearn; print('scikit-learn', sklearn.__version__)"
.venv-bench/bin/python scripts/bench_iforest.py $target_dir/release/sg-host "$@"
