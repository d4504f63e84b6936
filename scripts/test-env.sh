#!/usr/bin/env bash
# Installs what the tests need, idempotently: the pinned Rust toolchain with the wasm32-wasip2
# target (from rust-toolchain.toml) and a Python venv with pyarrow (an independent Parquet reader).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup toolchain install >/dev/null   # rust-toolchain.toml: the pinned toolchain + wasm32-wasip2

if ! .venv/bin/python -c "import pyarrow" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "pyarrow>=15"
fi
