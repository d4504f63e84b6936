//! Building guest components for `wasm32-wasip2` from a build script, shared by `crates/core/build.rs`
//! (the shipped components) and `tests/programs/build.rs` (the test programs): one nested
//! cargo invocation into `<target>/guests`, then each component's path exported as an env var.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `guests` (cargo package, env var) and exports `cargo:rustc-env=VAR=PATH` for each.
pub fn build(workspace: &Path, guests: &[(&str, &str)]) {
    for dir in ["guest-features", "guest-iforest", "guest-dedup", "tests/guests", "wit", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--locked", "--profile", "guest", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    for (package, _) in guests {
        cmd.args(["-p", package]);
    }
    // The outer build's flags and wrappers are for the host target, not for the guests.
    for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo to build the guest components");
    assert!(status.success(), "building the guest components failed (is the wasm32-wasip2 target installed? rust-toolchain.toml lists it)");
    for (package, var) in guests {
        let file = target_dir.join("wasm32-wasip2/guest").join(format!("{}.wasm", package.replace('-', "_")));
        assert!(file.exists(), "guest {package} was not built at {}", file.display());
        println!("cargo:rustc-env={var}={}", file.display());
    }
}
