#!/usr/bin/env bash
# Dedup benchmarks on the shared 10k HDFS sample:
#  1. criterion `dedup`: lines/s through decode → policy component → ids → existence check →
#     upsert into the embedded store, embedder excluded (goal ≥ 200k lines/s);
#  2. `dedup_model`: the same dedup step with the real in-process model against the model
#     alone on the same 2,000 new lines — the host's overhead (goal < 10 %).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh
cargo bench --locked -p sg-host --bench dedup -- --noplot 2>&1 | grep -E "^dedup/|thrpt"
cargo bench --locked -p sg-host --bench dedup_model 2>&1 | grep -E "^(round|dedup_model)"
