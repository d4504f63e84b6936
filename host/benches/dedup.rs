//! Dedup throughput with the embedder excluded (goal ≥ 200k lines/s with the embedded store):
//! 10k real HDFS lines per batch through decode → policy component → ids → existence check →
//! upsert. `known`: every key already stored (the steady state of a running pipeline);
//! `new`: every key new (so every point is upserted), with a fixed unit vector per text in
//! place of the model, whose cost is measured separately by scripts/bench-dedup.sh.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sg_dedup_core::InputFormat;
use sg_core::bundled::{DEDUP_DRAIN, DEDUP_EXACT, DEDUP_TEMPLATE};
use sg_core::component::ComponentSource;
use sg_core::component::policy::PolicyComponent;
use sg_dedup::{Deduper, Lineage, LogRecords};
use sg_dedup::embed::Embedder;
use sg_core::runtime::{Limits, Runtime};
use sg_model::Chunk;
use sg_dedup::store::EdgeStore;

/// A unit vector derived from the text's length: no model, constant cost.
struct FixedVectors;

impl Embedder for FixedVectors {
    fn describe(&self) -> String {
        "fixed vectors (benchmark)".into()
    }

    fn embed(&mut self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0f32; 384];
                v[t.len() % 384] = 1.0;
                v
            })
            .collect())
    }
}

fn sample() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/hdfs-logs-10k-labelled.jsonl");
    std::fs::read(path).expect("../shared/data beside the checkout")
}

fn dedup(c: &mut Criterion) {
    let bytes = sample();
    let chunk = Chunk::from_lines(bytes.clone(), 1);
    let lines = chunk.len() as u64;
    let runtime = Runtime::new(Limits::default()).unwrap();
    let mut group = c.benchmark_group("dedup");
    group.sample_size(20).throughput(Throughput::Elements(lines));
    for builtin in [&DEDUP_EXACT, &DEDUP_TEMPLATE, &DEDUP_DRAIN] {
        let mut policy = PolicyComponent::load(&runtime, &ComponentSource::Builtin(builtin)).unwrap();
        let lineage = Lineage { policy: policy.label(), policy_digest: policy.digest().into(), contract: policy.contract().to_string() };
        let dir = tempfile::tempdir().unwrap();
        let mut store = EdgeStore::open(dir.path(), "bench").unwrap();
        let mut embedder = FixedVectors;
        let mut deduper = Deduper { policy: &mut policy, store: &mut store, embedder: &mut embedder, lineage };
        let decode = |chunk: &Chunk| LogRecords::decode(chunk, InputFormat::Json, 1 << 20, &mut Vec::new());
        // Fill the store once: the `known` case sees only stored keys.
        deduper.process(&runtime, &decode(&chunk)).unwrap();
        group.bench_function(BenchmarkId::new("known", builtin.name), |b| {
            b.iter(|| {
                let (counts, _) = deduper.process(&runtime, &decode(&chunk)).unwrap();
                assert_eq!(counts.inserted, 0);
            })
        });
        if builtin.name == "exact" {
            // Every line made new by a run number in front (same length and shape).
            let mut round = 0u64;
            group.bench_function(BenchmarkId::new("new", builtin.name), |b| {
                b.iter_batched(
                    || {
                        round += 1;
                        let text = String::from_utf8_lossy(&bytes).replace("{\"text\": \"", &format!("{{\"text\": \"{round:08} "));
                        Chunk::from_lines(text.into_bytes(), 1)
                    },
                    |chunk| {
                        let (counts, _) = deduper.process(&runtime, &decode(&chunk)).unwrap();
                        assert!(counts.inserted > 9_000);
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        deduper.store.sync().unwrap();
    }
    group.finish();
}

/// The `drain` policy alone (goal ≥ 1M lines/s, 15× drain3): the component deciding 10k HDFS
/// lines whose templates it learned (the steady state; its state exported after each call, as
/// the host does), and the same miner natively.
fn drain_policy(c: &mut Criterion) {
    let bytes = sample();
    let chunk = Chunk::from_lines(bytes, 1);
    let records = LogRecords::decode(&chunk, InputFormat::Json, 1 << 20, &mut Vec::new());
    let runtime = Runtime::new(Limits::default()).unwrap();
    let mut group = c.benchmark_group("drain");
    group.sample_size(20).throughput(Throughput::Elements(records.len() as u64));
    // `SG_BENCH_DRAIN=FILE.wasm` measures that build instead (one keeping its function names,
    // for `SG_WASM_PERFMAP=1 perf record`; see BENCHMARKS.md, "The `drain` policy").
    let source = std::env::var_os("SG_BENCH_DRAIN").map_or(ComponentSource::Builtin(&DEDUP_DRAIN), |p| ComponentSource::File(p.into()));
    let mut policy = PolicyComponent::load(&runtime, &source).unwrap();
    policy.decide(&runtime, &records.batch()).unwrap();
    group.bench_function("component", |b| b.iter(|| policy.decide(&runtime, &records.batch()).unwrap()));
    let lines: Vec<String> = (0..records.len()).map(|i| records.batch().line.get(i).unwrap().to_string()).collect();
    let mut miner = sg_dedup_core::drain::Drain::new(sg_dedup_core::drain::Config::default()).unwrap();
    group.bench_function("native", |b| b.iter(|| lines.iter().map(|l| miner.add(l).key.len()).sum::<usize>()));
    // The component's work without the sandbox: the miner and the decision columns.
    group.bench_function("native-decide", |b| b.iter(|| sg_dedup_core::decide_learning(&mut miner, &records.batch()).unwrap()));
    group.finish();
}

criterion_group!(benches, dedup, drain_policy);
criterion_main!(benches);
