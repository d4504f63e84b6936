#!/usr/bin/env bash
# The dedup policies as log parsers, in one run: grouping accuracy and lines/s of `drain`,
# `template` and `exact` (through their components, as `dedup` runs them) and of drain3 (PyPI,
# the reference Drain) on the same files — the shared 2,000-line HDFS sample and the labelled
# sets of tests/fixtures/log-templates/. Best of 7 passes each; a learning policy starts from
# nothing in every pass. Needs the test venv (scripts/test-env.sh) for drain3.
set -euo pipefail
cd "$(dirname "$0")/.."
export SG_PYTHON="${SG_PYTHON:-$PWD/.venv/bin/python}"
"$SG_PYTHON" -c "import drain3" 2>/dev/null || { echo "drain3 is missing: run scripts/test-env.sh" >&2; exit 1; }
cargo bench --locked -p sg-host --bench log_parsing
