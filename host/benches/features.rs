//! Features in WASM against the same feature code compiled natively (goal: ≤ 1.3× native),
//! on 200k generated events pre-decoded into batches, so only the feature step is timed.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sg_features_core::{Aggregator, Flavor};
use sg_core::bundled::{SPARK_COMPAT, STREAMGUARD};
use sg_core::component::ComponentSource;
use sg_core::component::features::FeatureComponent;
use sg_model::events::{EventBatch, decode_chunk};
use sg_core::runtime::{Limits, Runtime};
use sg_model::Chunk;
use sg_host::synthetic::{GenSettings, generate};

const EVENTS: u64 = 200_000;

fn batches() -> Vec<std::sync::Arc<EventBatch>> {
    let mut bytes = Vec::new();
    generate(&GenSettings { events: EVENTS, compromised: 2, ..GenSettings::default() }, &mut bytes).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(8192)
        .enumerate()
        .map(|(i, c)| std::sync::Arc::new(decode_chunk(Chunk::from_lines(c.join("\n").into_bytes(), (i * 8192) as u64 + 1), 1 << 20).batch))
        .collect()
}

fn features(c: &mut Criterion) {
    let batches = batches();
    let runtime = Runtime::new(Limits::default()).unwrap();
    // No deadline checks compiled in: what the call deadline costs (never used by pipelines).
    let uncontained = Runtime::uncontained(Limits::default()).unwrap();
    let mut group = c.benchmark_group("features");
    group.sample_size(20).throughput(Throughput::Elements(EVENTS));
    for (flavor, builtin) in [(Flavor::Streamguard, &STREAMGUARD), (Flavor::SparkCompat, &SPARK_COMPAT)] {
        group.bench_function(BenchmarkId::new("native", flavor.name()), |b| {
            b.iter(|| {
                let mut agg = Aggregator::new(flavor);
                for batch in &batches {
                    agg.push(&batch.columns()).unwrap();
                }
                agg.take()
            })
        });
        let component = FeatureComponent::load(&runtime, &ComponentSource::Builtin(builtin)).unwrap();
        // A fresh instance per run: instantiation and linear-memory growth included.
        group.bench_function(BenchmarkId::new("wasm-fresh-instance", flavor.name()), |b| {
            b.iter(|| {
                let mut agg = component.aggregation(&runtime).unwrap();
                for batch in &batches {
                    agg.push(batch).unwrap();
                }
                agg.take().unwrap().table
            })
        });
        // One instance reused (as consecutive windows of a stream use it): `take` resets the
        // aggregation, the guest's memory stays grown. Also on an engine without the call
        // deadline's epoch checks: what the deadline costs.
        let loose = FeatureComponent::load(&uncontained, &ComponentSource::Builtin(builtin)).unwrap();
        for (name, component, runtime) in
            [("wasm-warm-instance", &component, &runtime), ("wasm-warm-instance-no-deadline", &loose, &uncontained)]
        {
            let mut warm = component.aggregation(runtime).unwrap();
            group.bench_function(BenchmarkId::new(name, flavor.name()), |b| {
                b.iter(|| {
                    for batch in &batches {
                        warm.push(batch).unwrap();
                    }
                    warm.take().unwrap().table
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, features);
criterion_main!(benches);
