#!/usr/bin/env bash
# Cross-builds sg-host for aarch64-unknown-linux-gnu (ARM64 edge boxes) on an x86-64 Debian
# machine, and installs qemu-user so it can run here under emulation:
#   qemu-aarch64 -L /usr/aarch64-linux-gnu target/aarch64-unknown-linux-gnu/release/sg-host …
# The cross linker and C/C++ compilers (for librdkafka, ring, zstd, qdrant's SIMD kernels) come
# from Debian's gcc/g++-aarch64-linux-gnu; .cargo/config.toml points cargo at them. The Rust target is
# listed in rust-toolchain.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"   # where cargo builds (a shared cache when set)
need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
rustup toolchain install >/dev/null   # the pinned toolchain with its targets (rust-toolchain.toml)
# librdkafka is built by its own configure script, which reads plain CC/CXX/AR: point those at
# the cross tools. The `cc` crate's builds for the host keep the host's (CC_x86_64_… in
# .cargo/config.toml, which the native build reads too).
export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar
cargo build --release --locked --target aarch64-unknown-linux-gnu -p sg-host "$@"
echo "built $target_dir/aarch64-unknown-linux-gnu/release/sg-host"
