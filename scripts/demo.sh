#!/usr/bin/env bash
# The main job on its embedded default: generate 100k events (2 compromised users), run the
# anomaly pipeline with the built-in corrected features component, print the report.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain install >/dev/null 2>&1 || true   # the toolchain + wasm32-wasip2 of rust-toolchain.toml
cargo run --release --locked -p sg-host -- demo --dir target/demo "$@"
