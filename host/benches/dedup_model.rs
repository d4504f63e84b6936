//! The host's overhead on top of the model (goal < 10 %): the same 2,000 distinct HDFS lines
//! embedded by all-MiniLM-L6-v2 alone, and taken through the whole dedup step (decode, policy
//! component, ids, existence check, the same model, upsert into the embedded store). Each is
//! run three times alternately; the best times are compared. Run by scripts/bench-dedup.sh.

use std::time::Instant;

use sg_dedup_core::InputFormat;
use sg_core::bundled::DEDUP_EXACT;
use sg_core::component::ComponentSource;
use sg_core::component::policy::PolicyComponent;
use sg_dedup::{Deduper, Lineage, LogRecords};
use sg_dedup::embed::{DEFAULT_MODEL_DIR, Embedder, MiniLm};
use sg_core::runtime::{Limits, Runtime};
use sg_model::Chunk;
use sg_dedup::store::EdgeStore;

const LINES: usize = 2_000;

fn main() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let sample = std::fs::read_to_string(format!("{root}/../shared/data/hdfs-logs-10k-labelled.jsonl")).unwrap();
    let mut seen = std::collections::HashSet::new();
    let lines: Vec<&str> = sample
        .lines()
        .filter(|l| seen.insert(serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].clone()))
        .take(LINES)
        .collect();
    let texts: Vec<String> =
        lines.iter().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().into()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let model_dir = std::env::var("SG_MODEL_DIR").unwrap_or_else(|_| format!("{root}/{DEFAULT_MODEL_DIR}"));
    let mut model = MiniLm::load(std::path::Path::new(&model_dir)).unwrap();
    let runtime = Runtime::new(Limits::default()).unwrap();
    let mut policy = PolicyComponent::load(&runtime, &ComponentSource::Builtin(&DEDUP_EXACT)).unwrap();
    let lineage = Lineage { policy: policy.label(), policy_digest: policy.digest().into(), contract: policy.contract().to_string() };
    let bytes = lines.join("\n").into_bytes();

    let (mut model_best, mut full_best) = (f64::MAX, f64::MAX);
    for round in 0..3 {
        let t = Instant::now();
        let v = model.embed(&refs).unwrap();
        assert_eq!(v.len(), LINES);
        let model_s = t.elapsed().as_secs_f64();

        let dir = tempfile::tempdir().unwrap();
        let mut store = EdgeStore::open(dir.path(), "bench").unwrap();
        let mut deduper =
            Deduper { policy: &mut policy, store: &mut store, embedder: &mut model, lineage: lineage.clone() };
        let t = Instant::now();
        let chunk = Chunk::from_lines(bytes.clone(), 1);
        let records = LogRecords::decode(&chunk, InputFormat::Json, 1 << 20, &mut Vec::new());
        let (counts, _) = deduper.process(&runtime, &records).unwrap();
        deduper.store.sync().unwrap();
        let full_s = t.elapsed().as_secs_f64();
        assert_eq!(counts.embedded as usize, LINES);
        println!("round {round}: model alone {model_s:.2}s ({:.0} texts/s), whole dedup step {full_s:.2}s", LINES as f64 / model_s);
        model_best = model_best.min(model_s);
        full_best = full_best.min(full_s);
    }
    println!(
        "dedup_model: {LINES} new lines: model alone {model_best:.2}s, whole step {full_best:.2}s → host overhead {:+.1}% (goal < 10%)",
        (full_best / model_best - 1.0) * 100.0
    );
}
