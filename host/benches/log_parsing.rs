//! The dedup policies as log parsers (`scripts/bench-templates.sh`): on the shared HDFS sample
//! and the labelled sets of `tests/fixtures/log-templates/`, each policy's grouping accuracy (a
//! line is right when the lines keyed with it are exactly those of its true template) and its
//! lines/s through the component, as `dedup` runs it — `drain` learning from nothing each pass —
//! beside drain3 (PyPI, `SG_PYTHON`) on the same lines. Best of 7 passes each.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sg_core::bundled::{Builtin, DEDUP_DRAIN, DEDUP_EXACT, DEDUP_TEMPLATE};
use sg_core::component::ComponentSource;
use sg_core::component::policy::{Learned, PolicyComponent};
use sg_core::runtime::{Limits, Runtime};
use sg_dedup::LogRecords;
use sg_dedup_core::InputFormat;
use sg_model::Chunk;

#[path = "../../tests/all/log_sets.rs"]
mod log_sets;

const PASSES: usize = 7;

/// Each line's key from `builtin`, and the fastest pass.
fn ours(runtime: &Runtime, builtin: &'static Builtin, lines: &[String]) -> (Vec<String>, Duration) {
    let text: String = lines.iter().map(|l| format!("{}\n", serde_json::json!({ "text": l }))).collect();
    let records = LogRecords::decode(&Chunk::from_lines(text.into_bytes(), 1), InputFormat::Json, 1 << 20, &mut Vec::new());
    assert_eq!(records.len(), lines.len());
    let mut policy = PolicyComponent::load(runtime, &ComponentSource::Builtin(builtin)).unwrap();
    let fresh = policy.learned().map(|l| Learned { config: l.config.clone(), state: None });
    let (mut keys, mut best) = (Vec::new(), Duration::MAX);
    for _ in 0..PASSES {
        if let Some(fresh) = &fresh {
            policy.start_from(runtime, fresh.clone()).unwrap();
        }
        let started = Instant::now();
        let (decisions, failed) = policy.decide(runtime, &records.batch()).unwrap();
        best = best.min(started.elapsed());
        assert!(failed.is_empty());
        keys = (0..lines.len()).map(|i| decisions.key.get(i).to_string()).collect();
    }
    (keys, best)
}

/// drain3's cluster of each line, and its fastest pass.
fn drain3(workspace: &Path, lines: &[String]) -> (Vec<u64>, Duration) {
    let python = Command::new(std::env::var("SG_PYTHON").unwrap_or_else(|_| "python3".into()));
    let out = log_sets::drain3(python, workspace, lines, &["--repeat", &PASSES.to_string()]);
    #[derive(serde::Deserialize)]
    struct Answer {
        ids: Vec<u64>,
        seconds: f64,
    }
    let answer: Answer = serde_json::from_slice(&out).unwrap();
    (answer.ids, Duration::from_secs_f64(answer.seconds))
}

fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut sets = vec![("HDFS sample", log_sets::hdfs(&workspace.join("../shared/data/hdfs-logs-10k-labelled.jsonl")))];
    for name in log_sets::LABELLED {
        sets.push((name.trim_end_matches(".tsv"), log_sets::labelled(&workspace.join("tests/fixtures/log-templates").join(name))));
    }
    let runtime = Runtime::new(Limits::default()).unwrap();
    println!("| set | lines | true templates | policy | groups | grouping accuracy | lines/s |");
    println!("|---|---|---|---|---|---|---|");
    for (name, (lines, truth)) in &sets {
        let templates = truth.iter().collect::<std::collections::HashSet<_>>().len();
        let row = |policy: &str, groups: usize, accuracy: f64, took: Duration| {
            let rate = lines.len() as f64 / took.as_secs_f64();
            println!("| {name} | {} | {templates} | {policy} | {groups} | {accuracy:.3} | {rate:.0} |", lines.len());
        };
        for builtin in [&DEDUP_DRAIN, &DEDUP_TEMPLATE, &DEDUP_EXACT] {
            let (keys, took) = ours(&runtime, builtin, lines);
            let groups = keys.iter().collect::<std::collections::HashSet<_>>().len();
            row(builtin.name, groups, log_sets::grouping_accuracy(&keys, truth), took);
        }
        let (ids, took) = drain3(&workspace, lines);
        let groups = ids.iter().collect::<std::collections::HashSet<_>>().len();
        row("drain3", groups, log_sets::grouping_accuracy(&ids, truth), took);
    }
}
