//! What the sandbox costs.
//! - `instantiate`: a fresh sandboxed instance of the `streamguard` features component with its
//!   aggregation resource (what a stream does per window and per fault), with the pooling
//!   allocator against on-demand allocation, and with one push of a 1-event batch.
//! - `containment`: one push into a warm aggregation (1 event: the per-call overhead; 8,192
//!   events: a real batch) with every containment setting (pooling, call deadline compiled in as
//!   epoch checks, memory cap) against none (no epoch checks, no limiter, on demand).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sg_core::bundled::STREAMGUARD;
use sg_core::component::ComponentSource;
use sg_core::component::features::FeatureComponent;
use sg_model::events::{EventBatch, decode_chunk};
use sg_core::runtime::{Limits, Runtime};
use sg_model::Chunk;
use sg_host::synthetic::{GenSettings, generate};

fn batch_of(lines: &[u8]) -> Arc<EventBatch> {
    Arc::new(decode_chunk(Chunk::from_lines(lines.to_vec(), 1), 1 << 20).batch)
}

fn instantiate(c: &mut Criterion) {
    let event = br#"{"event_id":"e1","timestamp":1700000000000,"event_type":"login","user":"alice","source_ip":"10.0.0.1","status":"success","threat_score":0.1}"#;
    let batch = batch_of(event);
    let mut group = c.benchmark_group("instantiate");
    for (name, runtime) in [
        ("pooling", Runtime::new(Limits::default()).unwrap()),
        ("on-demand", Runtime::on_demand(Limits::default()).unwrap()),
    ] {
        let component = FeatureComponent::load(&runtime, &ComponentSource::Builtin(&STREAMGUARD)).unwrap();
        group.bench_function(name, |b| b.iter(|| component.aggregation(&runtime).unwrap()));
        group.bench_function(format!("{name}+push-1"), |b| {
            b.iter(|| {
                let mut a = component.aggregation(&runtime).unwrap();
                a.push(&batch).unwrap()
            })
        });
    }
    group.finish();
}

fn containment(c: &mut Criterion) {
    let one = batch_of(br#"{"event_id":"e1","timestamp":1700000000000,"event_type":"login","user":"alice","source_ip":"10.0.0.1","status":"success","threat_score":0.1}"#);
    let mut lines = Vec::new();
    generate(&GenSettings { events: 8192, ..GenSettings::default() }, &mut lines).unwrap();
    let full = batch_of(&lines);
    let mut group = c.benchmark_group("containment");
    for (name, runtime) in [
        ("contained", Runtime::new(Limits::default()).unwrap()),
        ("uncontained", Runtime::uncontained(Limits::default()).unwrap()),
    ] {
        let component = FeatureComponent::load(&runtime, &ComponentSource::Builtin(&STREAMGUARD)).unwrap();
        for (size, batch) in [("push-1", &one), ("push-8192", &full)] {
            group.bench_function(format!("{name}/{size}"), |b| {
                // A warm aggregation, emptied (untimed) every 64 pushes so its state stays small.
                let mut a = component.aggregation(&runtime).unwrap();
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for i in 0..iters {
                        let started = Instant::now();
                        std::hint::black_box(a.push(batch).unwrap());
                        spent += started.elapsed();
                        if i % 64 == 63 {
                            a.take().unwrap();
                        }
                    }
                    spent
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, instantiate, containment);
criterion_main!(benches);
