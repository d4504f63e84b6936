#!/usr/bin/env bash
# Cross-builds sg-host for aarch64-unknown-linux-gnu (ARM64 edge boxes) on an x86-64 Debian
# machine, and installs qemu-user so it can run here under emulation:
#   qemu-aarch64 -L /usr/aarch64-linux-gnu target/aarch64-unknown-linux-gnu/release/sg-host …
# The cross linker and C compiler (for librdkafka, ring, zstd, qdrant's SIMD kernels) come from
# Debian's gcc-aarch64-linux-gnu; .cargo/config.toml points cargo at them. The Rust target is
# listed in rust-toolchain.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
rustup toolchain install >/dev/null   # the pinned toolchain with its targets (rust-toolchain.toml)
cargo build --release --locked --target aarch64-unknown-linux-gnu -p sg-host "$@"
echo "built target/aarch64-unknown-linux-gnu/release/sg-host"
