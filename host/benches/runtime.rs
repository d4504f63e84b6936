//! Instantiation with the pooling allocator against on-demand allocation: a fresh sandboxed
//! instance of the `streamguard` features component with its aggregation resource (what a
//! stream does per window and per fault), and one push of a 1-event batch into it.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use sg_host::bundled::STREAMGUARD;
use sg_host::component::ComponentSource;
use sg_host::component::features::FeatureComponent;
use sg_host::events::decode_chunk;
use sg_host::runtime::{Limits, Runtime};
use sg_host::source::Chunk;

fn runtime(c: &mut Criterion) {
    let event = br#"{"event_id":"e1","timestamp":1700000000000,"event_type":"login","user":"alice","source_ip":"10.0.0.1","status":"success","threat_score":0.1}"#;
    let batch = Arc::new(decode_chunk(Chunk::from_lines(event.to_vec(), 1), 1 << 20).batch);
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

criterion_group!(benches, runtime);
criterion_main!(benches);
