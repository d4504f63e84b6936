//! Hostile input files through the `sg-host` binary: whatever a file holds, memory stays bounded,
//! what cannot be read is dead-lettered with the reason (a bounded prefix, its size and digest),
//! and every other event gives the output a clean run gives.

use std::io::Write;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::sg_host;

/// Peak resident memory allowed to a run over a few thousand events, whatever else the input
/// holds (a clean run of them peaks well below it; the hostile parts are 100 MiB and 1 GiB).
const PEAK_RSS_LIMIT: u64 = 256 << 20;

/// Writes `n` generated events to `path`; returns their lines.
fn events(dir: &Path, n: u64) -> Vec<String> {
    let file = dir.join("events.jsonl");
    let out = sg_host().args(["gen-events", &n.to_string(), "--seed", "3", "--out"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(&file).unwrap().lines().map(str::to_string).collect()
}

/// Runs over `input`; returns (report, dead letters, peak resident bytes).
fn run(input: &Path, out: &Path) -> (Value, Vec<Value>, u64) {
    let metrics = out.with_extension("prom");
    let o = sg_host().args(["run", "--quiet", "--input"]).arg(input).arg("--out").arg(out).arg("--metrics-out").arg(&metrics).output().unwrap();
    assert!(o.status.success(), "sg-host run failed: {}", String::from_utf8_lossy(&o.stderr));
    let report = serde_json::from_slice(&std::fs::read(out.join("_anomaly_report.json")).unwrap()).unwrap();
    let letters = std::fs::read_to_string(out.join("_dead_letters.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let metrics = std::fs::read_to_string(&metrics).unwrap();
    let peak = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sg_process_peak_resident_bytes "))
        .unwrap_or_else(|| panic!("no peak memory in\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    (report, letters, peak)
}

#[test]
fn a_100_mib_line_is_dead_lettered_as_a_prefix_with_its_digest_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let lines = events(dir.path(), 4_000);
    let huge = vec![b'A'; 100 << 20];
    let input = dir.path().join("hostile.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for line in &lines[..2_000] {
        writeln!(f, "{line}").unwrap();
    }
    f.write_all(&huge).unwrap();
    f.write_all(b"\n").unwrap();
    for line in &lines[2_000..] {
        writeln!(f, "{line}").unwrap();
    }
    drop(f);
    let (clean, ..) = run(&dir.path().join("events.jsonl"), &dir.path().join("clean"));
    let (report, letters, peak) = run(&input, &dir.path().join("out"));

    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["line"], 2_001);
    assert_eq!(letter["reason"], "line of 104857600 bytes exceeds the limit of 1048576");
    assert_eq!(letter["original_bytes"], 100u64 << 20);
    assert_eq!(letter["original_sha256"], hex::encode(Sha256::digest(&huge)));
    assert_eq!(letter["message"].as_str().unwrap().len(), 64 << 10, "a bounded prefix is kept");
    assert_eq!(report["lineage"]["events"], clean["lineage"]["events"], "every event around it is read");
    assert_eq!(report["top_anomalies"], clean["top_anomalies"], "and gives the clean run's findings");
    assert!(peak < PEAK_RSS_LIMIT, "peak resident memory {} MiB", peak >> 20);
}

#[test]
fn a_gzip_bomb_ends_the_input_with_the_reason_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let lines = events(dir.path(), 3_000);
    let input = dir.path().join("bomb.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&input).unwrap(), flate2::Compression::best());
    for line in &lines {
        writeln!(gz, "{line}").unwrap();
    }
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..1024 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap();
    let compressed = std::fs::metadata(&input).unwrap().len();
    assert!(compressed < 2 << 20, "{compressed} bytes that inflate past 1 GiB");
    let (clean, ..) = run(&dir.path().join("events.jsonl"), &dir.path().join("clean"));
    let (report, letters, peak) = run(&input, &dir.path().join("out"));

    assert_eq!(letters.len(), 1, "{letters:?}");
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(reason.contains("(a decompression bomb?): the rest of the input is not read"), "{reason}");
    assert_eq!(letters[0]["line"], 3_001);
    assert_eq!(report["lineage"]["events"], clean["lineage"]["events"], "every event before the bomb is read");
    assert_eq!(report["top_anomalies"], clean["top_anomalies"]);
    assert!(peak < PEAK_RSS_LIMIT, "peak resident memory {} MiB", peak >> 20);
}

#[test]
fn out_refuses_a_directory_that_is_not_an_sg_host_output() {
    let dir = tempfile::tempdir().unwrap();
    events(dir.path(), 500);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("notes.txt"), "years of work").unwrap();
    let run = |extra: &[&str]| {
        sg_host().args(["run", "--quiet", "--input"]).arg(dir.path().join("events.jsonl")).arg("--out").arg(&data).args(extra).output().unwrap()
    };
    let refused = run(&[]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("is not an sg-host output (no _SUCCESS): refusing to replace it"), "{err}");
    assert!(data.join("notes.txt").is_file());
    assert!(run(&["--force"]).status.success());
    assert!(data.join("_SUCCESS").is_file() && !data.join("notes.txt").exists());
    assert!(run(&[]).status.success(), "an earlier output is replaced");
}
