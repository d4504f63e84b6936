//! Loading components: a clear error naming what was expected for anything unusable.

use sg_core::bundled::{IFOREST, STREAMGUARD};
use sg_core::component::ComponentSource;
use sg_core::component::features::FeatureComponent;
use sg_core::runtime::{Limits, Runtime};

fn load_error(source: ComponentSource) -> String {
    let runtime = Runtime::new(Limits::default()).unwrap();
    match FeatureComponent::load(&runtime, &source) {
        Ok(_) => panic!("{source:?} loaded"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn missing_file_is_named() {
    let e = load_error(ComponentSource::File("/nonexistent/features.wasm".into()));
    assert!(e.contains("cannot read component file /nonexistent/features.wasm"), "{e}");
}

#[test]
fn garbage_and_core_modules_are_not_components() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"definitely not wasm").unwrap();
    let e = load_error(ComponentSource::File(garbage.clone()));
    assert!(e.contains("is not a valid WebAssembly component"), "{e}");

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let e = load_error(ComponentSource::File(core));
    assert!(e.contains("is a core WebAssembly module, not a component"), "{e}");
}

#[test]
fn another_contract_is_refused_naming_both() {
    // The detector component exports streamguard:detector, not streamguard:features.
    let e = load_error(ComponentSource::Builtin(&IFOREST));
    assert!(e.contains("does not export streamguard:features (it exports streamguard:detector@1.0.0)"), "{e}");
    assert!(e.contains("this host accepts streamguard:features@1.x or streamguard:features@2.x"), "{e}");
}

#[test]
fn an_unknown_major_is_refused_naming_both_versions() {
    let e = load_error(ComponentSource::File(sg_test_programs::WRONG_VERSION.into()));
    assert!(e.contains("exports streamguard:features@7.0.0, but this host accepts streamguard:features@1.x or streamguard:features@2.x"), "{e}");
}

#[test]
fn the_cli_reports_the_error_and_fails() {
    let out = crate::support::sg_host()
        .args(["describe", "--component", sg_test_programs::WRONG_VERSION])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("streamguard:features@7.0.0") && err.contains("streamguard:features@1.x"), "{err}");
}

#[test]
fn builtins_describe_themselves() {
    let runtime = Runtime::new(Limits::default()).unwrap();
    let c = FeatureComponent::load(&runtime, &ComponentSource::Builtin(&STREAMGUARD)).unwrap();
    assert_eq!(c.contract().to_string(), "streamguard:features@1.0.0");
    assert_eq!(c.descriptor().name, "streamguard");
    assert_eq!(c.descriptor().model_inputs().len(), 28);
    assert_eq!(c.digest().len(), 64);
}
