//! Paths of the test programs (guest components of `tests/guests/`), built for
//! `wasm32-wasip2` by this crate's build script — a dev-dependency, so production builds never
//! build them (the model is wasmtime's `crates/test-programs`).

/// Exports `streamguard:features@9.0.0`, which no host accepts.
pub const WRONG_VERSION: &str = env!("SG_TEST_GUEST_WRONG_VERSION");
/// The streamguard features, hostile on marked events (trap, loop, memory bomb, recursion,
/// snooping, NaN, short and huge outputs).
pub const HOSTILE: &str = env!("SG_TEST_GUEST_HOSTILE");
/// A next version of the streamguard features, for upgrades.
pub const FEATURES_NEXT: &str = env!("SG_TEST_GUEST_FEATURES_NEXT");
/// The exact dedup policy, trapping on lines that contain `hostile_trap`.
pub const HOSTILE_POLICY: &str = env!("SG_TEST_GUEST_HOSTILE_POLICY");
/// The Isolation Forest detector, hostile on rows marked by their first value (666 trap, 667
/// NaN scores, 668 one score short).
pub const HOSTILE_DETECTOR: &str = env!("SG_TEST_GUEST_HOSTILE_DETECTOR");
/// The `drain` dedup policy under another version (0.2.0), same state format.
pub const DRAIN_NEXT: &str = env!("SG_TEST_GUEST_DRAIN_NEXT");
