//! Hostile components: a fault on some events dead-letters exactly those events with the reason,
//! the host stays up, and the rest of the output equals a clean run.

use std::path::Path;

use serde_json::Value;

use crate::support::{mark, python_json, sg_host};

const HOSTILE: &str = sg_test_programs::HOSTILE;

/// Generated events with `marks` (line index → hostile event type) written over some of them;
/// returns (marked file, the same file without the marked lines).
fn inputs(dir: &Path, n: u64, marks: &[(usize, &str)]) -> (std::path::PathBuf, std::path::PathBuf) {
    let plain = dir.join("plain.jsonl");
    assert!(sg_host().args(["gen-events", &n.to_string(), "--compromised", "1", "--out"]).arg(&plain).status().unwrap().success());
    let lines: Vec<String> = std::fs::read_to_string(&plain).unwrap().lines().map(String::from).collect();
    let (mut marked, mut clean) = (String::new(), String::new());
    for (i, line) in lines.iter().enumerate() {
        match marks.iter().find(|(at, _)| *at == i) {
            Some((_, kind)) => {
                marked.push_str(&mark(line, kind));
            }
            None => {
                marked.push_str(line);
                clean.push_str(line);
                clean.push('\n');
            }
        }
        marked.push('\n');
    }
    let (m, c) = (dir.join("marked.jsonl"), dir.join("clean.jsonl"));
    std::fs::write(&m, marked).unwrap();
    std::fs::write(&c, clean).unwrap();
    (m, c)
}

fn run(component: &str, input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    sg_host()
        .args(["run", "-q", "--component", component, "--call-timeout", "500ms", "--memory-limit", "64MiB", "--input"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// As [`run`], reading `input` from stdin.
fn run_stdin(component: &str, input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    sg_host()
        .args(["run", "-q", "--component", component, "--call-timeout", "500ms", "--memory-limit", "64MiB", "--input", "-"])
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdin(std::fs::File::open(input).unwrap())
        .output()
        .unwrap()
}

/// A counter of the component `streamguard@0.1.0` in the metrics a run wrote (0 when absent).
fn counter(metrics: &Path, name: &str) -> u64 {
    crate::support::counter(&std::fs::read_to_string(metrics).unwrap(), name, "streamguard@0.1.0")
}

fn dead_letters(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("_dead_letters.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
#[ignore = "services: needs Python with pyarrow (scripts/test.sh runs it)"]
fn faulting_events_are_isolated_and_the_rest_is_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let marks = [
        (100, "hostile_trap"),
        (5_000, "hostile_loop"),
        (9_000, "hostile_bomb"),
        (15_000, "hostile_recurse"),
        (17_000, "hostile_snoop"),
        (17_001, "hostile_trap"),
    ];
    let (marked, clean) = inputs(dir.path(), 20_000, &marks);
    let clean_out = dir.path().join("clean");
    let o = sg_host().args(["run", "-q", "--input"]).arg(&clean).arg("--out").arg(&clean_out).output().unwrap();
    assert!(o.status.success());
    let clean_rows = python_json("inspect_parquet.py", &[clean_out.to_str().unwrap()])["rows"].clone();
    // Read from the file, the journal keeps where each chunk lies and a replay reads it again:
    // a journal limit too small for one chunk's events does not matter. Read from stdin, the
    // journal holds the events themselves.
    for (name, journal) in [("file", &["--batch-bytes", "256KiB", "--journal-limit", "16KiB"][..]), ("stdin", &[][..])] {
        let out = dir.path().join(name);
        let metrics = dir.path().join(format!("{name}.prom"));
        let mut args = vec!["--metrics-out", metrics.to_str().unwrap()];
        args.extend_from_slice(journal);
        let o = match name {
            "file" => run(HOSTILE, &marked, &out, &args),
            _ => run_stdin(HOSTILE, &marked, &out, &args),
        };
        assert!(o.status.success(), "{name}: the host must survive: {}", String::from_utf8_lossy(&o.stderr));
        // The metrics count it: calls that trapped or hit the deadline, records dead-lettered.
        assert!(counter(&metrics, "traps") >= 1 && counter(&metrics, "timeouts") >= 1);
        assert_eq!(counter(&metrics, "dead_lettered"), marks.len() as u64);
        let letters = dead_letters(&out);
        let lines: Vec<u64> = letters.iter().map(|l| l["line"].as_u64().unwrap()).collect();
        assert_eq!(lines, marks.iter().map(|(i, _)| *i as u64 + 1).collect::<Vec<_>>(), "{name}: exactly the marked events");
        let reasons: Vec<&str> = letters.iter().map(|l| l["reason"].as_str().unwrap()).collect();
        assert!(reasons[0].contains("hostile component: trap on a marked event"), "{}", reasons[0]);
        assert!(reasons[1].contains("call deadline exceeded"), "{}", reasons[1]);
        assert!(reasons[2].contains("memory cap exceeded"), "{}", reasons[2]);
        assert!(reasons[3].contains("wasm trap"), "{}", reasons[3]);
        // No capability was granted: no file, an empty environment, no network.
        assert!(reasons[4].contains(r#"file=Err("entity not found") env=[] net=Err("permission denied")"#), "{}", reasons[4]);
        for l in &letters {
            assert_eq!(l["stage"], "component:streamguard@0.1.0");
            assert!(l["message"].as_str().unwrap().contains("\"event_type\":\"hostile_"), "the original message is kept");
        }
        let rows = python_json("inspect_parquet.py", &[out.to_str().unwrap()])["rows"].clone();
        assert_eq!(rows, clean_rows, "{name}: the other events give exactly the clean run's output");
        let report: Value = serde_json::from_slice(&std::fs::read(out.join("_anomaly_report.json")).unwrap()).unwrap();
        assert_eq!(report["lineage"]["dead_lettered"], marks.len());
        assert_eq!(report["lineage"]["events"], 20_000 - marks.len() as u64);
    }
}

#[test]
fn a_component_failing_every_event_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let marks: Vec<(usize, &str)> = (0..400).map(|i| (i, "hostile_trap")).collect();
    let (marked, _) = inputs(dir.path(), 400, &marks);
    let out = dir.path().join("out");
    let metrics = dir.path().join("metrics.prom");
    let o = run(HOSTILE, &marked, &out, &["--batch-bytes", "8KiB", "--metrics-out", metrics.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(counter(&metrics, "traps") >= 3, "three batches failed");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("failed on every event of 3 consecutive batches; quarantined"), "{err}");
    assert!(!out.exists(), "nothing is written for a quarantined run");
}

#[test]
fn a_state_outgrowing_the_memory_cap_stops_the_run_saying_so_instead_of_dead_lettering_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    // 50,000 users: the builtin's per-user state passes 32 MiB part way through, while every
    // event (and every batch on a fresh instance) fits.
    assert!(sg_host().args(["gen-events", "100000", "--users", "50000", "--out"]).arg(&input).status().unwrap().success());
    // At 32 MiB a push is the first call to outgrow the cap; at 44 MiB every push fits (from
    // 42 MiB) and the take does not (46 MiB is enough).
    for (cap, mib, call) in [("32MiB", 32, "push"), ("44MiB", 44, "take")] {
        let out = dir.path().join(format!("out-{cap}"));
        let o = sg_host().args(["run", "-q", "--memory-limit", cap, "--input"]).arg(&input).arg("--out").arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains(&format!("no longer fits the memory cap of {mib} MiB")) && err.contains("raise --memory-limit"), "{err}");
        assert!(err.contains(&format!("{call} failed: memory cap exceeded")), "{err}");
        assert!(!out.exists(), "nothing is written");
    }
}

#[test]
fn a_component_timing_out_on_every_event_is_quarantined_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let marks: Vec<(usize, &str)> = (0..3000).map(|i| (i, "hostile_loop")).collect();
    let (marked, _) = inputs(dir.path(), 3000, &marks);
    let started = std::time::Instant::now();
    let o = run(HOSTILE, &marked, &dir.path().join("out"), &["--batch-bytes", "256KiB"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("quarantined"));
    // Three batches, each: one deadline, then a bisection bounded by four deadlines.
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
}

#[test]
#[ignore = "services: needs Python with pyarrow (scripts/test.sh runs it)"]
fn a_table_the_host_refuses_is_traced_to_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let marks = [(700, "hostile_nan"), (6_000, "hostile_short"), (12_000, "hostile_huge"), (12_001, "hostile_nan")];
    let (marked, clean) = inputs(dir.path(), 15_000, &marks);
    let out = dir.path().join("hostile");
    let metrics = dir.path().join("metrics.prom");
    // The events since the last take are journaled by position (a limit too small for one
    // chunk's events): each probe of the bisection reads its chunks again.
    let args = ["--metrics-out", metrics.to_str().unwrap(), "--batch-bytes", "256KiB", "--journal-limit", "16KiB"];
    let o = run(HOSTILE, &marked, &out, &args);
    assert!(o.status.success(), "the host must survive: {}", String::from_utf8_lossy(&o.stderr));
    assert!(counter(&metrics, "traps") >= 1, "the refused take counts as a fault");
    assert_eq!(counter(&metrics, "dead_lettered"), marks.len() as u64);
    let letters = dead_letters(&out);
    let mut lines: Vec<u64> = letters.iter().map(|l| l["line"].as_u64().unwrap()).collect();
    lines.sort_unstable();
    assert_eq!(lines, marks.iter().map(|(i, _)| *i as u64 + 1).collect::<Vec<_>>(), "exactly the marked events");
    let reason = |line: usize| {
        letters.iter().find(|l| l["line"] == line as u64 + 1).unwrap()["reason"].as_str().unwrap().to_string()
    };
    assert!(reason(700).contains("model input `avg_threat_score` is NaN"), "{}", reason(700));
    assert!(reason(6_000).contains("column `total_events` has"), "{}", reason(6_000));
    assert!(reason(12_000).contains("memory cap exceeded"), "{}", reason(12_000));
    for l in &letters {
        assert!(l["reason"].as_str().unwrap().ends_with("(at take)"));
        assert_eq!(l["stage"], "component:streamguard@0.1.0");
    }
    let clean_out = dir.path().join("clean");
    let o = sg_host().args(["run", "-q", "--input"]).arg(&clean).arg("--out").arg(&clean_out).output().unwrap();
    assert!(o.status.success());
    let a = python_json("inspect_parquet.py", &[out.to_str().unwrap()]);
    let b = python_json("inspect_parquet.py", &[clean_out.to_str().unwrap()]);
    assert_eq!(a["rows"], b["rows"], "the other events give exactly the clean run's output");
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("_anomaly_report.json")).unwrap()).unwrap();
    assert_eq!(report["lineage"]["dead_lettered"], marks.len());
    assert_eq!(report["lineage"]["events"], 15_000 - marks.len() as u64);
}

/// Calls made into `component` so far in this process.
fn calls(component: &str) -> u64 {
    let labels = sg_metrics::ComponentLabels { component: component.into() };
    sg_metrics::METRICS.calls.get_or_create(&labels).get()
}

#[test]
fn one_bisection_isolates_exactly_the_bad_records_of_every_component_kind() {
    use std::sync::Arc;

    use sg_core::component::contain::MAX_PROBES;
    use sg_core::component::{ComponentSource, detector::DetectorComponent, features::FeatureComponent, policy::PolicyComponent};
    use sg_core::runtime::{Limits, Runtime};

    let runtime = Runtime::new(Limits { call_deadline: std::time::Duration::from_secs(5), ..Limits::default() }).unwrap();
    let bad = [3usize, 517, 998];
    let n = 1000;

    // Features: events marked to trap.
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let line = crate::support::event(Some(&format!("u{}", i % 7)), 1_700_000_000_000 + i as i64 * 1000, "login", Some("10.0.0.1"), "success", 0.1);
            if bad.contains(&i) { mark(&line, "hostile_trap") } else { line }
        })
        .collect();
    let features = FeatureComponent::load(&runtime, &ComponentSource::File(HOSTILE.into())).unwrap();
    let decoded = sg_model::events::decode_chunk(sg_model::Chunk::from_lines(lines.join("\n").into_bytes(), 1), 1 << 20);
    let before = calls(&features.label());
    let failed = features.aggregation(&runtime).unwrap().push(&Arc::new(decoded.batch)).unwrap();
    assert_eq!(failed.iter().map(|f| f.index).collect::<Vec<_>>(), bad, "features: {failed:?}");
    assert!(failed.iter().all(|f| f.reason.contains("trap on a marked event")), "{failed:?}");
    let feature_calls = calls(&features.label()) - before;

    // Policy: lines marked to trap.
    let texts: Vec<String> = (0..n).map(|i| if bad.contains(&i) { format!("hostile_trap {i}") } else { format!("line {i}") }).collect();
    let mut line = sg_dedup_core::TextColumnBuf::default();
    let mut empty = sg_dedup_core::TextColumnBuf::default();
    for t in &texts {
        line.push(t);
        empty.push("");
    }
    let e = empty.view();
    let batch = sg_dedup_core::LogBatch {
        format: sg_dedup_core::InputFormat::Json,
        line: line.view(),
        original_text: e,
        timestamp: e,
        log_level: e,
        source: e,
        node_type: e,
    };
    let mut policy = PolicyComponent::load(&runtime, &ComponentSource::File(sg_test_programs::HOSTILE_POLICY.into())).unwrap();
    let before = calls(&policy.label());
    let (decisions, failed) = policy.decide(&runtime, &batch).unwrap();
    assert_eq!(failed.iter().map(|f| f.row).collect::<Vec<_>>(), bad, "policy: {failed:?}");
    assert!(failed.iter().all(|f| f.reason.contains("trap on a marked line")), "{failed:?}");
    for row in (0..n).filter(|r| !bad.contains(r)) {
        assert_eq!(decisions.key.get(row), texts[row], "row {row} decided as in a clean run");
    }
    let policy_calls = calls(&policy.label()) - before;

    // Detector: rows marked to trap, to answer NaN and to answer too few scores.
    let cols = 4;
    let clean: Vec<f32> = (0..n * cols).map(|i| ((i * 7919) % 1000) as f32 / 10.0).collect();
    let params = sg_iforest::Params { random_state: 7, ..sg_iforest::Params::default() };
    let names: Vec<String> = (0..cols).map(|c| format!("f{c}")).collect();
    let model = sg_iforest::fit(&sg_iforest::Matrix::new(&clean, n, cols).unwrap(), &names, &params).unwrap();
    let native = model.score_samples(&sg_iforest::Matrix::new(&clean, n, cols).unwrap()).unwrap();
    let detector = DetectorComponent::load(&runtime, &ComponentSource::File(sg_test_programs::HOSTILE_DETECTOR.into())).unwrap();
    for marker in [666.0, 667.0, 668.0] {
        let mut x = clean.clone();
        for &r in &bad {
            x[r * cols] = marker;
        }
        let before = calls(detector.origin());
        let scored = detector.score(&runtime, &model.to_bytes(), (&x, n, cols)).unwrap();
        assert_eq!(scored.failed.iter().map(|f| f.0).collect::<Vec<_>>(), bad, "detector, marker {marker}: {:?}", scored.failed);
        let marked = sg_iforest::Matrix::new(&x, n, cols).unwrap();
        let expected = model.score_samples(&marked).unwrap();
        for row in (0..n).filter(|r| !bad.contains(r)) {
            assert_eq!(scored.score_samples[row], expected[row], "row {row} scored as in a clean call");
            assert_eq!(expected[row], native[row]);
        }
        assert!(calls(detector.origin()) - before <= MAX_PROBES as u64 + 1);
    }
    // The host scores the rows a detector fails on natively: every score as a clean run.
    let mut x = clean.clone();
    x[bad[0] * cols] = 666.0;
    let engine = sg_core::detector::DetectorEngine::Component(Box::new(detector));
    let choice = sg_core::detector::ModelChoice::Train(params);
    let d = sg_core::detector::run(&runtime, &engine, &choice, &x, &names, Default::default()).unwrap();
    let marked = sg_iforest::Matrix::new(&x, n, cols).unwrap();
    let expected = sg_iforest::fit(&marked, &names, &params).unwrap().score_samples(&marked).unwrap();
    assert_eq!(d.score_samples, expected, "the failed row scored natively, the rest by the component: as a native run");

    // One budget for all three: the probes of each stay within it.
    for (kind, made) in [("features", feature_calls), ("policy", policy_calls)] {
        assert!(made <= MAX_PROBES as u64 + 2, "{kind}: {made} calls");
    }
}

#[test]
fn every_open_window_draws_on_one_journal_budget() {
    use std::sync::Arc;

    use sg_core::component::{ComponentSource, features::FeatureComponent};
    use sg_core::runtime::{Limits, Runtime};

    let batch = |first: usize, marked: Option<usize>| {
        let lines: Vec<String> = (first..first + 200)
            .map(|i| {
                let line = crate::support::event(Some(&format!("u{}", i % 7)), 1_700_000_000_000 + i as i64 * 1000, "login", Some("10.0.0.1"), "success", 0.1);
                if Some(i) == marked { mark(&line, "hostile_trap") } else { line }
            })
            .collect();
        Arc::new(sg_model::events::decode_chunk(sg_model::Chunk::from_lines(lines.join("\n").into_bytes(), 1), 1 << 20).batch)
    };
    let one = batch(0, None).heap_bytes();
    // Room for one window's batch and a half: each window's journal alone would fit.
    let runtime = Runtime::new(Limits { call_deadline: std::time::Duration::from_secs(5), journal_bytes: one * 3 / 2, ..Limits::default() }).unwrap();
    let features = FeatureComponent::load(&runtime, &ComponentSource::File(HOSTILE.into())).unwrap();
    let (mut a, mut b) = (features.aggregation(&runtime).unwrap(), features.aggregation(&runtime).unwrap());
    assert!(a.push(&batch(0, None)).unwrap().is_empty());
    assert!(b.push(&batch(1000, None)).unwrap().is_empty(), "b's batch is aggregated; only its journal does not fit");
    assert_eq!(runtime.journal_budget().used(), one, "b dropped its journal rather than overdraw the budget");
    // A fault in a: replayed from its journal, the marked event isolated.
    let failed = a.push(&batch(2000, Some(2005))).unwrap();
    assert_eq!(failed.iter().map(|f| f.index).collect::<Vec<_>>(), vec![5], "{failed:?}");
    // A fault in b: nothing to replay, and the error says why.
    let e = b.push(&batch(3000, Some(3007))).err().expect("b cannot recover without its journal");
    assert!(format!("{e:#}").contains("outgrew the journal budget") && format!("{e:#}").contains("over all open windows"), "{e:#}");
    drop((a, b));
    assert_eq!(runtime.journal_budget().used(), 0, "closed windows give their bytes back");
}
