//! Builds the shipped components (features `spark-compat`, `streamguard` and `streamguard-v2`,
//! the `iforest` detector, dedup policies `exact`, `template` and `drain`) for `wasm32-wasip2` with the
//! pinned toolchain, and exports their paths as `SG_GUEST_*` so `sg-host` embeds them — nobody
//! copies files by hand. Test programs are built by the dev-only `sg-test-programs` crate.

use std::path::{Path, PathBuf};

#[path = "guests.rs"]
mod guests;

/// (cargo package, env var naming the built component).
const GUESTS: &[(&str, &str)] = &[
    ("sg-features-spark-compat", "SG_GUEST_SPARK_COMPAT"),
    ("sg-features-streamguard", "SG_GUEST_STREAMGUARD"),
    ("sg-features-streamguard-v2", "SG_GUEST_STREAMGUARD_V2"),
    ("sg-guest-iforest", "SG_GUEST_IFOREST"),
    ("sg-dedup-exact", "SG_GUEST_DEDUP_EXACT"),
    ("sg-dedup-template", "SG_GUEST_DEDUP_TEMPLATE"),
    ("sg-dedup-drain", "SG_GUEST_DEDUP_DRAIN"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap().parent().unwrap().to_path_buf();
    println!("cargo:rerun-if-changed=guests.rs");
    println!("cargo:rustc-env=SG_HOST_TARGET={}", std::env::var("TARGET").unwrap());
    println!("cargo:rustc-env=SG_WASMTIME_VERSION={}", locked_version(&workspace.join("Cargo.lock"), "wasmtime"));
    guests::build(&workspace, GUESTS);
}

/// The version of `package` in Cargo.lock.
fn locked_version(lock: &Path, package: &str) -> String {
    let text = std::fs::read_to_string(lock).expect("Cargo.lock");
    let marker = format!("name = \"{package}\"\nversion = \"");
    let at = text.find(&marker).unwrap_or_else(|| panic!("{package} is not in Cargo.lock")) + marker.len();
    text[at..].split('"').next().unwrap().to_string()
}
