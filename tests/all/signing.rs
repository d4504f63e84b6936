//! Signed bundles: a bundle runs when a trusted key signed its manifest; a file changed and
//! the manifest re-hashed but not re-signed, a key not trusted, or precompiled code compiled
//! from another `.wasm` (even under a valid signature) is refused before anything runs;
//! `--allow-unsigned` runs an unsigned bundle with a warning. Through the CLI, as a user would.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use sg_core::bundle::signature::SIGNATURE;
use sg_core::bundle::{MANIFEST, SigningKey, sha256_hex};
use sg_core::bundled;
use sg_core::runtime::HOST_TARGET;

use crate::support::sg_host;

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn keygen(prefix: &Path) -> (PathBuf, PathBuf) {
    ok(sg_host().args(["bundle", "keygen", "--out"]).arg(prefix).output().unwrap());
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// `sg-host bundle create` of `features` with a model, signed with `key` when given.
fn create(out: &Path, features: &str, model: &Path, key: Option<&Path>) {
    let mut c = sg_host();
    c.args(["bundle", "create", "--out"]).arg(out).args(["--component", &format!("features={features}"), "--model"]).arg(model);
    if let Some(k) = key {
        c.arg("--sign").arg(k);
    }
    ok(c.output().unwrap());
}

/// `sg-host run` of `bundle` over `input` with `extra` trust arguments.
fn run(bundle: &Path, input: &Path, out: &Path, extra: &[&str]) -> Output {
    sg_host().args(["run", "--bundle"]).arg(bundle).args(extra).arg("--input").arg(input).arg("--out").arg(out).output().unwrap()
}

fn refused(o: &Output, out: &Path, says: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "must be refused: {stderr}");
    assert!(stderr.contains(says), "expected {says:?} in: {stderr}");
    assert!(!out.exists(), "nothing ran");
}

fn manifest(bundle: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(bundle.join(MANIFEST)).unwrap()).unwrap()
}

fn write_manifest(bundle: &Path, m: &Value) -> Vec<u8> {
    let text = serde_json::to_vec_pretty(m).unwrap();
    std::fs::write(bundle.join(MANIFEST), &text).unwrap();
    text
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn only_bundles_signed_by_a_trusted_key_run_and_precompiled_code_must_come_from_its_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("events.jsonl");
    ok(sg_host().args(["gen-events", "3000", "--compromised", "1", "--out"]).arg(&input).output().unwrap());
    let model = d.join("model.json");
    ok(sg_host().args(["run", "-q", "--input"]).arg(&input).arg("--out").arg(d.join("train")).arg("--save-model").arg(&model).output().unwrap());
    let (key, public) = keygen(&d.join("release"));
    let (_, stranger) = keygen(&d.join("stranger"));
    let trust = ["--trust", public.to_str().unwrap()];

    // Signed by a trusted key: runs from its precompiled code; lineage names both digests.
    let signed = d.join("signed");
    create(&signed, bundled::STREAMGUARD.built_at, &model, Some(&key));
    let out = d.join("out-signed");
    let o = ok(run(&signed, &input, &out, &trust));
    assert!(String::from_utf8_lossy(&o.stderr).contains("signature by trusted key"), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("_anomaly_report.json")).unwrap()).unwrap();
    let m = manifest(&signed);
    let features = &report["lineage"]["features"];
    assert_eq!(features["sha256"], m["components"]["features"]["wasm"]["sha256"], "{features}");
    let artefact = m["components"]["features"]["precompiled"].as_array().unwrap().iter().find(|a| a["target"] == HOST_TARGET).unwrap().clone();
    assert_eq!(features["precompiled_sha256"], artefact["file"]["sha256"], "{features}");
    assert_eq!(report["lineage"]["detector"]["model_sha256"], m["model"]["sha256"]);
    // minisign's own format: the public key file is what `minisign -V -p` reads.
    assert!(std::fs::read_to_string(&public).unwrap().starts_with("untrusted comment:"));
    ok(sg_host().args(["bundle", "verify"]).arg(&signed).args(trust).output().unwrap());

    // Without any --trust: refused at start, naming the fix.
    let out = d.join("out-no-trust");
    refused(&run(&signed, &input, &out, &[]), &out, "--trust");
    // Signed by a key this host does not trust.
    let out = d.join("out-stranger");
    refused(&run(&signed, &input, &out, &["--trust", stranger.to_str().unwrap()]), &out, "which is not trusted");

    // A file changed and its digest rewritten in the manifest, not re-signed.
    let rehashed = d.join("rehashed");
    copy_dir(&signed, &rehashed);
    let mut changed = std::fs::read(rehashed.join("model.json")).unwrap();
    changed.extend_from_slice(b"\n");
    std::fs::write(rehashed.join("model.json"), &changed).unwrap();
    let mut m = manifest(&rehashed);
    m["model"]["sha256"] = sha256_hex(&changed).into();
    write_manifest(&rehashed, &m);
    let out = d.join("out-rehashed");
    refused(&run(&rehashed, &input, &out, &trust), &out, "does not verify");
    // …and --allow-unsigned does not excuse a broken signature by a trusted key.
    refused(&run(&rehashed, &input, &out, &[trust[0], trust[1], "--allow-unsigned"]), &out, "does not verify");

    // A .cwasm swapped for one compiled from another .wasm, the manifest re-hashed and even
    // re-signed by the trusted key: the code's seal names its own .wasm, so it is refused.
    let other = d.join("other");
    create(&other, bundled::SPARK_COMPAT.built_at, &model, Some(&key));
    let swapped = d.join("swapped");
    copy_dir(&signed, &swapped);
    let name = artefact["file"]["path"].as_str().unwrap();
    let foreign = std::fs::read(other.join(name)).unwrap();
    std::fs::write(swapped.join(name), &foreign).unwrap();
    let mut m = manifest(&swapped);
    for a in m["components"]["features"]["precompiled"].as_array_mut().unwrap() {
        if a["file"]["path"] == name {
            a["file"]["sha256"] = sha256_hex(&foreign).into();
        }
    }
    let text = write_manifest(&swapped, &m);
    std::fs::write(swapped.join(SIGNATURE), SigningKey::read(&key).unwrap().sign(&text).unwrap()).unwrap();
    let out = d.join("out-swapped");
    refused(&run(&swapped, &input, &out, &trust), &out, "was compiled from a .wasm with sha256");

    // Unsigned: refused by default; with --allow-unsigned it runs, with a warning.
    let unsigned = d.join("unsigned");
    create(&unsigned, bundled::STREAMGUARD.built_at, &model, None);
    let out = d.join("out-unsigned");
    refused(&run(&unsigned, &input, &out, &trust), &out, "is not signed");
    let o = ok(run(&unsigned, &input, &out, &["--allow-unsigned"]));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("WARN") && stderr.contains("is not signed") && stderr.contains("--allow-unsigned"), "{stderr}");
}
