#!/usr/bin/env bash
# Installs what the tests need, idempotently: the pinned Rust toolchain with the wasm32-wasip2
# target (from rust-toolchain.toml), a Python venv with pyarrow (an independent Parquet reader) and
# numpy + tokenizers + safetensors (the reference embedding service the dedup tests start),
# pydantic-ocsf (an independent OCSF validator for the alerts), pandas and DuckDB (readers the
# output layout is checked with), drain3 (the reference Drain the template policy is judged
# against), the all-MiniLM-L6-v2 weights (scripts/fetch-model.sh), and
# Debian's Chromium (the headless browser of the dashboard test), and the pinned nightly with
# cargo-fuzz for the fuzzers (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup toolchain install >/dev/null   # rust-toolchain.toml: the pinned toolchain + wasm32-wasip2

# A real Kafka-protocol broker for the Kafka tests: nisshi (Tansu's successor) from crates.io,
# built with storage (without a storage feature it silently drops every message). ~15 min once.
if [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/nisshi" ]; then
    cargo install nisshi --version 0.8.1 --locked --no-default-features --features dynostore,libsql
fi

if ! .venv/bin/python -c "import pyarrow, numpy, tokenizers, safetensors, ocsf.v1_4_0.events, pandas, duckdb, drain3" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "pyarrow>=15" "numpy>=1.26" "tokenizers>=0.20" "safetensors>=0.4" \
        "pydantic-ocsf==3.0.0" "pandas>=2" "duckdb>=1" "drain3==0.9.11"
fi

scripts/fetch-model.sh

# The fuzzers' toolchain (fuzz/rust-toolchain.toml pins a nightly) and cargo-fuzz.
(cd fuzz && rustup toolchain install >/dev/null)
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

# Debian's Chromium, the headless browser the dashboard test renders the page in, and the
# openssl CLI the TLS tests make their CA and certificates with.
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The aarch64 build of sg-host and qemu-user, for the test that runs it under emulation
# (cross linker and qemu from Debian; ~10 min of build the first time).
scripts/build-aarch64.sh >/dev/null
