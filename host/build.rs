//! Builds the shipped components (features `spark-compat` and `streamguard`, the `iforest`
//! detector, dedup policies `exact` and `template`) for `wasm32-wasip2` with the pinned toolchain, and exports their paths as
//! `SG_GUEST_*` so `sg-host` embeds them and tests find them — nobody copies files by hand.
//! The test programs of `tests/guests/` are built in the same cargo invocation.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (cargo package, env var naming the built component). The `SG_TEST_GUEST_*` ones are test
/// programs (tests/guests/): built here so the tests find them, never embedded.
const GUESTS: &[(&str, &str)] = &[
    ("sg-features-spark-compat", "SG_GUEST_SPARK_COMPAT"),
    ("sg-features-streamguard", "SG_GUEST_STREAMGUARD"),
    ("sg-features-streamguard-v2", "SG_GUEST_STREAMGUARD_V2"),
    ("sg-guest-iforest", "SG_GUEST_IFOREST"),
    ("sg-dedup-exact", "SG_GUEST_DEDUP_EXACT"),
    ("sg-dedup-template", "SG_GUEST_DEDUP_TEMPLATE"),
    ("sg-test-guest-wrong-version", "SG_TEST_GUEST_WRONG_VERSION"),
    ("sg-test-guest-hostile", "SG_TEST_GUEST_HOSTILE"),
    ("sg-test-guest-features-next", "SG_TEST_GUEST_FEATURES_NEXT"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap().to_path_buf();
    for dir in ["guest-features", "guest-iforest", "guest-dedup", "tests/guests", "wit", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!("cargo:rustc-env=SG_HOST_TARGET={}", std::env::var("TARGET").unwrap());
    println!("cargo:rustc-env=SG_WASMTIME_VERSION={}", locked_version(&workspace.join("Cargo.lock"), "wasmtime"));
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guests");
    build_guests(&workspace, &target_dir);
    for (package, var) in GUESTS {
        let file = target_dir.join("wasm32-wasip2/guest").join(format!("{}.wasm", package.replace('-', "_")));
        assert!(file.exists(), "guest {package} was not built at {}", file.display());
        println!("cargo:rustc-env={var}={}", file.display());
    }
}

/// The version of `package` in Cargo.lock.
fn locked_version(lock: &Path, package: &str) -> String {
    let text = std::fs::read_to_string(lock).expect("Cargo.lock");
    let marker = format!("name = \"{package}\"\nversion = \"");
    let at = text.find(&marker).unwrap_or_else(|| panic!("{package} is not in Cargo.lock")) + marker.len();
    text[at..].split('"').next().unwrap().to_string()
}

fn build_guests(workspace: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--locked", "--profile", "guest", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(target_dir);
    for (package, _) in GUESTS {
        cmd.args(["-p", package]);
    }
    // The outer build's flags and wrappers are for the host target, not for the guests.
    for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo to build the guest components");
    assert!(status.success(), "building the guest components failed (is the wasm32-wasip2 target installed? rust-toolchain.toml lists it)");
}
