#!/usr/bin/env bash
# Installs what the tests need, idempotently: the pinned Rust toolchain with the wasm32-wasip2
# target (from rust-toolchain.toml) and a Python venv with pyarrow (an independent Parquet reader).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup target add wasm32-wasip2 >/dev/null

if ! .venv/bin/python -c "import pyarrow" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "pyarrow>=15"
fi
