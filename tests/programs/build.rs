//! Builds the test programs of `tests/guests/` for `wasm32-wasip2` (with the host's guest
//! builder) and exports their paths for `src/lib.rs`.

use std::path::PathBuf;

#[path = "../../crates/core/guests.rs"]
mod guests;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap().parent().unwrap().to_path_buf();
    println!("cargo:rerun-if-changed=../../crates/core/guests.rs");
    guests::build(
        &workspace,
        &[
            ("sg-test-guest-wrong-version", "SG_TEST_GUEST_WRONG_VERSION"),
            ("sg-test-guest-hostile", "SG_TEST_GUEST_HOSTILE"),
            ("sg-test-guest-features-next", "SG_TEST_GUEST_FEATURES_NEXT"),
            ("sg-test-guest-hostile-policy", "SG_TEST_GUEST_HOSTILE_POLICY"),
            ("sg-test-guest-hostile-detector", "SG_TEST_GUEST_HOSTILE_DETECTOR"),
            ("sg-test-guest-drain-next", "SG_TEST_GUEST_DRAIN_NEXT"),
        ],
    );
}
