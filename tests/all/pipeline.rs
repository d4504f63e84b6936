//! The anomaly pipeline end to end through the `sg-host` binary, output read back by pyarrow.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{python_json, sg_host};

/// Generates `n` events with `k` compromised users; returns (events file, compromised users).
fn generate(dir: &Path, n: u64, k: usize, seed: u64) -> (PathBuf, Vec<String>) {
    let file = dir.join("events.jsonl");
    let out = sg_host()
        .args(["gen-events", &n.to_string(), "--compromised", &k.to_string(), "--seed", &seed.to_string(), "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let truth: Value = serde_json::from_slice(&std::fs::read(format!("{}.truth.json", file.display())).unwrap()).unwrap();
    let users = truth["compromised"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_string()).collect();
    (file, users)
}

fn run(args: &[&str], input: &Path, out: &Path) -> std::process::Output {
    sg_host().args(["run", "--quiet", "--input"]).arg(input).arg("--out").arg(out).args(args).output().unwrap()
}

#[track_caller]
fn run_ok(args: &[&str], input: &Path, out: &Path) -> Value {
    run_ok_at(args, input, out, "_anomaly_report.json")
}

#[test]
fn compromised_users_rank_at_the_top() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, component) in [(7, "builtin:streamguard"), (11, "builtin:spark-compat")] {
        let (input, compromised) = generate(dir.path(), 60_000, 2, seed);
        let report = run_ok(&["--component", component], &input, &dir.path().join("out"));
        let mut top: Vec<String> =
            report["top_anomalies"].as_array().unwrap().iter().take(2).map(|a| a["user"].as_str().unwrap().into()).collect();
        top.sort();
        assert_eq!(top, compromised, "{component}: report {report}");
        assert_eq!(report["total_users"], 14);
        assert_eq!(report["anomalous_users"], 2, "contamination 0.1 of 14 users flags 2");
        assert_eq!(report["top_anomalies"][0]["anomaly_score"], 1.0);
    }
}

#[test]
#[ignore = "services: needs Python with pyarrow (scripts/test.sh runs it)"]
fn parquet_output_opens_in_pyarrow_with_partitions_columns_and_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = generate(dir.path(), 20_000, 2, 3);
    let out = dir.path().join("out");
    let report = run_ok(&["--component", "builtin:spark-compat"], &input, &out);
    assert!(out.join("_SUCCESS").exists());
    let p = python_json("inspect_parquet.py", &[out.to_str().unwrap()]);
    assert_eq!(p["partitions"]["0"], 12);
    assert_eq!(p["partitions"]["1"], 2);
    assert_eq!(p["compression"], "SNAPPY");
    let columns: Vec<&str> = p["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let features: Vec<&str> = sg_features_core::Flavor::SparkCompat
        .schema()
        .iter()
        .filter(|c| !matches!(c.name, "first_seen" | "last_seen"))
        .map(|c| c.name)
        .collect();
    let mut expected = features.clone();
    expected.extend(["anomaly_score", "anomaly_score_normalized", "is_alert", "explanation", "is_anomaly"]);
    assert_eq!(columns, expected);
    assert_eq!(p["types"]["total_events"], "int64");
    assert_eq!(p["types"]["avg_threat_score"], "double");
    let md = &p["metadata"];
    assert_eq!(md["streamguard.features.name"], "spark-compat");
    assert_eq!(md["streamguard.features.contract"], "streamguard:features@1.0.0");
    assert_eq!(md["streamguard.features.sha256"].as_str().unwrap().len(), 64);
    assert_eq!(md["streamguard.host.version"], env!("CARGO_PKG_VERSION"));
    assert!(md["streamguard.detector.params"].as_str().unwrap().contains("\"n_estimators\":100"));
    let lineage: Value = serde_json::from_str(md["streamguard.lineage"].as_str().unwrap()).unwrap();
    assert_eq!(lineage["events"], 20_000);

    // The report agrees with the rows.
    let rows = p["rows"].as_array().unwrap();
    let mut flagged: Vec<(f64, &str)> = rows
        .iter()
        .filter(|r| r["is_anomaly"] == 1)
        .map(|r| (r["anomaly_score_normalized"].as_f64().unwrap(), r["user"].as_str().unwrap()))
        .collect();
    flagged.sort_by(|a, b| b.0.total_cmp(&a.0));
    let top = report["top_anomalies"].as_array().unwrap();
    assert_eq!(top.len(), flagged.len());
    for (t, (score, user)) in top.iter().zip(&flagged) {
        assert_eq!(t["user"], *user);
        assert_eq!(t["anomaly_score"].as_f64().unwrap(), *score);
        let row = rows.iter().find(|r| r["user"] == *user).unwrap();
        assert_eq!(t["total_events"], row["total_events"]);
    }
    assert_eq!(report["lineage"]["features"]["sha256"], md["streamguard.features.sha256"]);
}

#[test]
#[ignore = "services: needs Python with pyarrow (scripts/test.sh runs it)"]
fn malformed_lines_are_dead_lettered_and_the_rest_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = generate(dir.path(), 5_000, 1, 5);
    let clean_out = dir.path().join("clean");
    run_ok(&[], &input, &clean_out);

    let good = std::fs::read_to_string(&input).unwrap();
    let bad: Vec<(&[u8], &str)> = vec![
        (b"{not json", "not valid JSON"),
        (br#"{"timestamp":1,"event_type":"auth_attempt","user":"alice"}"#, "missing required field `event_id`"),
        (br#"{"event_id":"e","event_type":"auth_attempt","user":"alice"}"#, "missing required field `timestamp`"),
        (br#"{"event_id":"e","timestamp":1,"user":"alice"}"#, "missing required field `event_type`"),
        (br#"{"event_id":"e","timestamp":"yesterday","event_type":"auth_attempt"}"#, "for `timestamp`"),
        (br#"{"event_id":"e","timestamp":1,"event_type":"x","threat_score":"high"}"#, "a number for `threat_score`"),
        (b"\xff\xfe binary \x00 junk", "not valid JSON"),
        (b"[1, 2, 3]", "a JSON object"),
    ];
    let oversized = format!(r#"{{"event_id":"big","timestamp":1,"event_type":"x","pad":"{}"}}"#, "x".repeat(3000));
    let dirty = dir.path().join("dirty.jsonl");
    let mut f = std::fs::File::create(&dirty).unwrap();
    let mut expected_lines = Vec::new();
    let mut line_no = 0u64;
    for (i, line) in good.lines().enumerate() {
        if i % 500 == 17 && !bad.is_empty() {
            let (b, _) = bad[(i / 500) % bad.len()];
            f.write_all(b).unwrap();
            f.write_all(b"\n").unwrap();
            line_no += 1;
            expected_lines.push((line_no, (i / 500) % bad.len()));
        }
        writeln!(f, "{line}").unwrap();
        line_no += 1;
    }
    writeln!(f, "{oversized}").unwrap();
    drop(f);

    let dirty_out = dir.path().join("dirty-out");
    let report = run_ok(&["--max-message-bytes", "2KiB"], &dirty, &dirty_out);
    assert_eq!(report["lineage"]["dead_lettered"], expected_lines.len() as u64 + 1);
    let letters: Vec<Value> = std::fs::read_to_string(dirty_out.join("_dead_letters.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), expected_lines.len() + 1);
    for (letter, (line, kind)) in letters.iter().zip(&expected_lines) {
        assert_eq!(letter["line"], *line);
        assert_eq!(letter["stage"], "decode");
        let reason = letter["reason"].as_str().unwrap();
        assert!(reason.contains(bad[*kind].1), "line {line}: {reason:?} should mention {:?}", bad[*kind].1);
        let original = letter.get("message").and_then(Value::as_str).map(|s| s.as_bytes().to_vec()).unwrap_or_else(|| {
            let hex = letter["message_hex"].as_str().unwrap();
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
        });
        assert_eq!(original, bad[*kind].0, "the original bytes are kept");
    }
    assert!(letters.last().unwrap()["reason"].as_str().unwrap().contains("exceeds the limit of 2048"));

    let clean = python_json("inspect_parquet.py", &[clean_out.to_str().unwrap()]);
    let dirty = python_json("inspect_parquet.py", &[dirty_out.to_str().unwrap()]);
    assert_eq!(clean["rows"], dirty["rows"], "the valid events give the same output as the clean run");
}

#[test]
fn a_failed_run_leaves_the_previous_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = generate(dir.path(), 3_000, 0, 9);
    let out = dir.path().join("out");
    run_ok(&[], &input, &out);
    let before = std::fs::read(out.join("_anomaly_report.json")).unwrap();
    let junk = dir.path().join("junk.jsonl");
    std::fs::write(&junk, "nope\nnot events either\n").unwrap();
    let o = run(&[], &junk, &out);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no valid events"));
    assert_eq!(std::fs::read(out.join("_anomaly_report.json")).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with(".out")).collect();
    assert!(leftovers.is_empty(), "staging directories left behind: {leftovers:?}");
}

#[test]
#[ignore = "services: needs Python with pyarrow (scripts/test.sh runs it)"]
fn equal_scores_do_not_produce_nan() {
    // Three users with identical behaviour: every score equal, normalized to 0, nobody flagged.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("same.jsonl");
    let mut lines = String::new();
    for u in ["a", "b", "c"] {
        for i in 0..10 {
            lines.push_str(&crate::support::event(Some(u), 1_704_067_200_000 + i * 1000, "auth_attempt", Some("10.0.0.1"), "success", 0.1));
            lines.push('\n');
        }
    }
    std::fs::write(&input, lines).unwrap();
    let report = run_ok(&[], &input, &dir.path().join("out"));
    assert_eq!(report["anomalous_users"], 0);
    let p = python_json("inspect_parquet.py", &[dir.path().join("out").to_str().unwrap()]);
    for r in p["rows"].as_array().unwrap() {
        assert_eq!(r["anomaly_score_normalized"], 0.0);
        assert!(r["anomaly_score"].as_f64().unwrap().is_finite());
    }
}

#[test]
fn gzip_and_stdin_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = generate(dir.path(), 4_000, 1, 21);
    let plain = run_ok(&[], &input, &dir.path().join("plain"));
    let gz = dir.path().join("events.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&std::fs::read(&input).unwrap()).unwrap();
    enc.finish().unwrap();
    let zipped = run_ok(&[], &gz, &dir.path().join("gz"));
    assert_eq!(plain["top_anomalies"], zipped["top_anomalies"]);

    let out = dir.path().join("stdin");
    let o = sg_host()
        .args(["run", "--quiet", "--input", "-", "--out"])
        .arg(&out)
        .stdin(std::fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let piped: Value = serde_json::from_slice(&std::fs::read(out.join("_anomaly_report.json")).unwrap()).unwrap();
    assert_eq!(plain["top_anomalies"], piped["top_anomalies"]);
    assert_eq!(piped["lineage"]["input"], "stdin");
}

#[test]
#[ignore = "services: needs Python with pyarrow, pandas and DuckDB (scripts/test.sh runs it)"]
fn output_opens_as_a_dataset_in_pyarrow_pandas_and_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let (input, compromised) = generate(dir.path(), 20_000, 2, 5);
    // A malformed line, so the dead letters sit beside the partitions too.
    let mut lines = std::fs::read_to_string(&input).unwrap();
    lines.push_str("{not json\n");
    std::fs::write(&input, lines).unwrap();
    let out = dir.path().join("out");
    let report = run_ok(&[], &input, &out);
    assert!(out.join("_dead_letters.jsonl").exists() && out.join("_anomaly_report.json").exists());
    let opened = python_json("open_dataset.py", &[out.to_str().unwrap()]);
    let mut flagged: Vec<&str> = report["top_anomalies"].as_array().unwrap().iter().map(|a| a["user"].as_str().unwrap()).collect();
    flagged.sort();
    assert_eq!(flagged, compromised);
    for reader in ["pyarrow", "pandas", "duckdb"] {
        let rows = opened[reader]["rows"].as_array().unwrap_or_else(|| panic!("{reader} cannot open {}: {}", out.display(), opened[reader]));
        assert_eq!(rows.len(), 14, "{reader}: {rows:?}");
        let anomalous: Vec<&str> = rows.iter().filter(|r| r[1] == 1).map(|r| r[0].as_str().unwrap()).collect();
        assert_eq!(anomalous, flagged, "{reader} reads is_anomaly from the partition directories");
        assert_eq!(rows, opened["pyarrow"]["rows"].as_array().unwrap(), "{reader} reads what pyarrow reads");
    }
    // The reference job's paths, on request: its report name, which dataset readers would take
    // for a Parquet file; DuckDB's glob still reads the partitions.
    let reference = dir.path().join("reference");
    run_ok_at(&["--reference-paths"], &input, &reference, "anomaly_report.json");
    assert!(!reference.join("_anomaly_report.json").exists());
    let opened = python_json("open_dataset.py", &[reference.to_str().unwrap()]);
    assert_eq!(opened["duckdb"]["rows"], python_json("open_dataset.py", &[out.to_str().unwrap()])["duckdb"]["rows"]);
}

/// Runs and reads the report from `report` (a file name inside `out`).
#[track_caller]
fn run_ok_at(args: &[&str], input: &Path, out: &Path, report: &str) -> Value {
    let o = run(args, input, out);
    assert!(o.status.success(), "sg-host run failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join(report)).unwrap()).unwrap()
}
