//! Edge portability: bundles with precompiled code (verified, refused when they do not fit the
//! engine), and the aarch64 build under qemu giving the same results as the native one.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sg_core::bundle::signature::{SIGNATURE, keygen};
use sg_core::bundle::{Bundle, SigningKey};
use sg_core::component::Role;
use sg_core::bundled;
use sg_core::runtime::{CodeLayout, HOST_TARGET, Limits};

use crate::support::{HDFS_SAMPLE, fixture, python_json, sg_host, workspace};

fn events(dir: &Path, n: u64) -> PathBuf {
    let file = dir.join("events.jsonl");
    let o = sg_host().args(["gen-events", &n.to_string(), "--compromised", "2", "--out"]).arg(&file).output().unwrap();
    assert!(o.status.success());
    file
}

/// Runs the pipeline; returns (stderr, the report).
fn run(host: &mut Command, args: &[&str], input: &Path, out: &Path) -> (String, Value) {
    let o = host.args(["run", "-q"]).args(args).arg("--input").arg(input).arg("--out").arg(out).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "run {args:?}: {stderr}");
    (stderr, serde_json::from_slice(&std::fs::read(out.join("_anomaly_report.json")).unwrap()).unwrap())
}

/// A bundle signed by a key made for it; returns the arguments that run it (`--bundle B
/// --trust KEY.pub`) and its directory.
fn bundle(dir: &Path, targets: &[(&str, CodeLayout)]) -> (Vec<String>, PathBuf) {
    let out = dir.join("bundle");
    let components = [
        (Role::Features, PathBuf::from(bundled::STREAMGUARD.built_at)),
        (Role::Detector, PathBuf::from(bundled::IFOREST.built_at)),
    ];
    let targets: Vec<(String, CodeLayout)> = targets.iter().map(|(t, l)| (t.to_string(), *l)).collect();
    std::fs::create_dir_all(dir).unwrap();
    let (_, secret, public) = keygen(&dir.join("signer")).unwrap();
    Bundle::create(&out, &components, None, &targets, &Limits::default(), Some(&SigningKey::read(&secret).unwrap())).unwrap();
    let args = vec!["--bundle".into(), out.display().to_string(), "--trust".into(), public.display().to_string()];
    (args, out)
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Relabels every artefact of the manifest as made for this host (wide layout), and signs the
/// manifest again with the bundle's key.
fn relabel_as_native(bundle: &Path) {
    let path = bundle.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for c in manifest["components"].as_object_mut().unwrap().values_mut() {
        for a in c["precompiled"].as_array_mut().unwrap() {
            a["target"] = HOST_TARGET.into();
            a["layout"] = "wide".into();
        }
    }
    let text = serde_json::to_vec_pretty(&manifest).unwrap();
    std::fs::write(&path, &text).unwrap();
    let key = SigningKey::read(&bundle.parent().unwrap().join("signer.key")).unwrap();
    std::fs::write(bundle.join(SIGNATURE), key.sign(&text).unwrap()).unwrap();
}

#[test]
fn a_bundle_runs_from_its_precompiled_code() {
    let dir = tempfile::tempdir().unwrap();
    let input = events(dir.path(), 5000);
    let (b, _) = bundle(dir.path(), &[(HOST_TARGET, CodeLayout::Wide), ("aarch64-unknown-linux-gnu", CodeLayout::Wide)]);
    let (stderr, from_bundle) = run(&mut sg_host(), &strs(&b), &input, &dir.path().join("a"));
    assert!(!stderr.contains("compiling"), "the precompiled code fits: {stderr}");
    let (_, plain) = run(&mut sg_host(), &["--detector", "builtin:iforest"], &input, &dir.path().join("b"));
    assert_eq!(from_bundle["top_anomalies"], plain["top_anomalies"]);
    assert_eq!(from_bundle["lineage"]["features"]["sha256"], plain["lineage"]["features"]["sha256"]);
}

#[test]
fn precompiled_code_from_an_incompatible_engine_is_refused_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let input = events(dir.path(), 5000);
    let (_, plain) = run(&mut sg_host(), &["--detector", "builtin:iforest"], &input, &dir.path().join("plain"));
    // Code for another architecture, and code for another memory layout, each labelled as
    // this host's: wasmtime's own compatibility check must refuse them.
    for (i, (target, layout)) in [("aarch64-unknown-linux-gnu", CodeLayout::Wide), (HOST_TARGET, CodeLayout::Narrow)].into_iter().enumerate() {
        let sub = dir.path().join(i.to_string());
        let (b, path) = bundle(&sub, &[(target, layout)]);
        relabel_as_native(&path);
        let (stderr, report) = run(&mut sg_host(), &strs(&b), &input, &sub.join("out"));
        assert!(stderr.contains("refused by this engine") && stderr.contains("compiling"), "{target}/{layout:?}: {stderr}");
        assert_eq!(report["top_anomalies"], plain["top_anomalies"]);
    }
}

#[test]
fn a_bundle_with_a_wrong_digest_is_rejected_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = events(dir.path(), 1000);
    let (args, b) = bundle(dir.path(), &[(HOST_TARGET, CodeLayout::Wide)]);
    let artefact = b.join(format!("features.{HOST_TARGET}.wide.cwasm"));
    let mut code = std::fs::read(&artefact).unwrap();
    code[1000] ^= 0xff;
    std::fs::write(&artefact, code).unwrap();
    let out = dir.path().join("out");
    let o = sg_host().arg("run").args(&args).arg("--input").arg(&input).arg("--out").arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains(&format!("features.{HOST_TARGET}.wide.cwasm has sha256")) && stderr.contains("nothing was loaded"), "{stderr}");
    assert!(!out.exists(), "nothing ran");
    let v = sg_host().args(["bundle", "verify", "--allow-unsigned"]).arg(&b).output().unwrap();
    assert!(!v.status.success());
}

/// The aarch64 build of sg-host run under qemu-aarch64.
fn emulated_host() -> Option<Command> {
    let Ok(qemu) = which("qemu-aarch64") else {
        eprintln!("SKIPPED: qemu-aarch64 is not installed (scripts/build-aarch64.sh installs it with apt-get)");
        return None;
    };
    let binary = std::env::var("SG_AARCH64_HOST")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("target/aarch64-unknown-linux-gnu/release/sg-host"));
    assert!(binary.exists(), "{} not built: run scripts/build-aarch64.sh (scripts/test.sh does)", binary.display());
    let mut c = Command::new(qemu);
    c.args(["-L", "/usr/aarch64-linux-gnu"]).arg(binary);
    Some(c)
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| p.exists()))
        .ok_or(())
}

#[test]
#[ignore = "services: needs Python with pyarrow and qemu-aarch64 and the aarch64 build (scripts/test.sh runs it)"]
fn the_aarch64_build_under_emulation_gives_identical_results() {
    let Some(_) = emulated_host() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = events(dir.path(), 20_000);
    for (name, args) in [
        ("streamguard-native", vec!["--component", "builtin:streamguard"]),
        ("spark-compat-native", vec!["--component", "builtin:spark-compat"]),
        ("streamguard-wasm-detector", vec!["--component", "builtin:streamguard", "--detector", "builtin:iforest"]),
    ] {
        let native_out = dir.path().join(format!("{name}-x86"));
        let arm_out = dir.path().join(format!("{name}-arm"));
        let (_, native) = run(&mut sg_host(), &args, &input, &native_out);
        let (_, arm) = run(&mut emulated_host().unwrap(), &args, &input, &arm_out);
        assert_eq!(native["top_anomalies"], arm["top_anomalies"], "{name}: scores");
        assert_eq!(native["anomalous_users"], arm["anomalous_users"], "{name}");
        let a = python_json("inspect_parquet.py", &[native_out.to_str().unwrap()]);
        let b = python_json("inspect_parquet.py", &[arm_out.to_str().unwrap()]);
        assert_eq!(a, b, "{name}: Parquet content");
    }
    // Dedup point ids of the shared HDFS sample, both policies.
    let sample = fixture(HDFS_SAMPLE);
    for policy in ["builtin:exact", "builtin:template"] {
        let plan = |host: &mut Command| {
            let o = host.args(["dedup", "--dry-run", "--policy", policy, "--input"]).arg(&sample).output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            o.stdout
        };
        let native = plan(&mut sg_host());
        let arm = plan(&mut emulated_host().unwrap());
        assert_eq!(native.iter().filter(|&&b| b == b'\n').count(), 10_000);
        assert!(native == arm, "{policy}: point ids differ between x86-64 and aarch64");
    }
}

#[test]
fn a_small_address_space_gets_narrow_reservations_and_their_precompiled_code() {
    let dir = tempfile::tempdir().unwrap();
    let input = events(dir.path(), 5000);
    let (_, plain) = run(&mut sg_host(), &[], &input, &dir.path().join("plain"));
    let (b, _) = bundle(dir.path(), &[(HOST_TARGET, CodeLayout::Wide), (HOST_TARGET, CodeLayout::Narrow)]);
    // 48 GiB of address space: the 4 GiB-per-instance pool cannot be reserved, one sized to the
    // memory cap can (as on an ARM board with a 39-bit VA).
    let mut limited = Command::new("bash");
    limited.args(["-c", "ulimit -v 50331648 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_sg-host")]);
    let (stderr, report) = run(&mut limited, &strs(&b), &input, &dir.path().join("small"));
    assert!(stderr.contains("pooling with 4 GiB reservations unavailable"), "{stderr}");
    assert!(!stderr.contains("compiling"), "the narrow artefact fits the narrow engine: {stderr}");
    assert_eq!(report["top_anomalies"], plain["top_anomalies"]);
}

#[test]
fn a_component_compiles_once_and_later_runs_load_its_code_from_the_code_cache() {
    let dir = tempfile::tempdir().unwrap();
    let input = events(dir.path(), 2000);
    let cache = dir.path().join("code");
    let run_cached = |out: &str| run(sg_host().env("SG_CODE_CACHE", &cache), &["--detector", "builtin:iforest"], &input, &dir.path().join(out));
    let cached = || -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files
    };
    let (_, first) = run_cached("a");
    let files = cached();
    assert_eq!(files.len(), 2, "the features component and the detector: {files:?}");
    let written: Vec<_> = files.iter().map(|f| std::fs::metadata(f).unwrap().modified().unwrap()).collect();
    let (stderr, second) = run_cached("b");
    assert_eq!(first["top_anomalies"], second["top_anomalies"]);
    assert_eq!(first["lineage"]["features"]["sha256"], second["lineage"]["features"]["sha256"]);
    let again: Vec<_> = cached().iter().map(|f| std::fs::metadata(f).unwrap().modified().unwrap()).collect();
    assert_eq!(written, again, "the second run loaded the code and wrote nothing: {stderr}");

    // Code someone else could have written is not loaded: compiled again, and replaced.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&files[0], std::fs::Permissions::from_mode(0o666)).unwrap();
    let (stderr, third) = run_cached("c");
    assert!(stderr.contains("may be written by others") && stderr.contains("compiling it"), "{stderr}");
    assert_eq!(first["top_anomalies"], third["top_anomalies"]);
    assert_eq!(std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);
}
