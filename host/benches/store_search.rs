//! Nearest-neighbour search in the embedded store, the embedding excluded (issue 17's goal:
//! `/api/logs/search` p99 ≤ 5 ms on 100k stored points): 100k random 384-d unit vectors with
//! log-like payloads, k = 10, as the shard holds them after `dedup` (appendable segments) and
//! after its index is built (`PointStore::build_index`, which `dedup` runs at the end of its input and `serve` on opening a store). Besides criterion's figures, prints p50
//! and p99 over 2,000 queries of each.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;
use sg_dedup::store::{EdgeStore, PayloadFilter, Point, PointStore};

const POINTS: usize = 100_000;
const DIM: usize = 384;

/// A deterministic unit vector (xorshift).
fn unit(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.iter_mut().for_each(|a| *a /= n);
    v
}

fn fill(store: &mut EdgeStore) {
    for start in (0..POINTS).step_by(5_000) {
        let points = (start..start + 5_000)
            .map(|i| Point {
                id: i as u64 + 1,
                vector: unit(i as u64),
                payload: json!({"text": format!("line {i}"), "label": (i % 10 == 0) as i64, "log_level": "INFO"}).as_object().unwrap().clone(),
            })
            .collect();
        store.upsert(points).unwrap();
    }
    store.sync().unwrap();
}

fn percentiles(store: &mut EdgeStore, label: &str) {
    let mut times: Vec<f64> = (0..2_000u64)
        .map(|q| {
            let v = unit(1_000_000 + q);
            let t = Instant::now();
            let hits = store.nearest(&v, 10, &PayloadFilter::default()).unwrap();
            assert_eq!(hits.len(), 10);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("store_search {label}: {POINTS} points, k=10: p50 {:.3} ms, p99 {:.3} ms", times[1_000], times[1_980]);
}

fn search(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EdgeStore::open(dir.path(), "bench").unwrap();
    fill(&mut store);
    let mut group = c.benchmark_group("store_search");
    group.sample_size(30);
    for stage in ["as-written", "optimized"] {
        if stage == "optimized" {
            let t = Instant::now();
            store.build_index().unwrap();
            println!("store_search: index built in {:.1} s", t.elapsed().as_secs_f64());
        }
        percentiles(&mut store, stage);
        let v = unit(42_000_000);
        group.bench_function(BenchmarkId::new("nearest-10", stage), |b| b.iter(|| store.nearest(&v, 10, &PayloadFilter::default()).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
