//! The event parser alone, on one core (issue 18: the bounded run's floor is reading and parsing
//! the JSON): 100k generated events, as `run` reads them, through
//! - `decode_event`: the schema-directed decoder the pipeline uses (a serde visitor over
//!   `serde_json` that borrows strings and skips unknown fields without allocating);
//! - `decode_chunk`: the same, plus splitting the chunk into lines and building the columnar batch;
//! - `serde_json::Value`: a generic parse of the same bytes, the usual way to read JSON lines.
//!
//! Throughput is printed per event and per byte (MB/s per core).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sg_host::synthetic::{GenSettings, generate};
use sg_model::Chunk;
use sg_model::events::decode::decode_event;
use sg_model::events::decode_chunk;

const EVENTS: u64 = 100_000;

fn parser(c: &mut Criterion) {
    let mut bytes = Vec::new();
    generate(&GenSettings { events: EVENTS, users: 1000, compromised: 5, ..GenSettings::default() }, &mut bytes).unwrap();
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len() as u64, EVENTS);
    let mut group = c.benchmark_group("parse");
    group.sample_size(20);
    for (unit, throughput) in [("events", Throughput::Elements(EVENTS)), ("bytes", Throughput::Bytes(bytes.len() as u64))] {
        group.throughput(throughput);
        group.bench_function(BenchmarkId::new("decode_event", unit), |b| {
            b.iter(|| lines.iter().map(|l| decode_event(l).unwrap().timestamp_ms).sum::<i64>())
        });
        group.bench_function(BenchmarkId::new("decode_chunk", unit), |b| {
            b.iter_batched(|| Chunk::from_lines(bytes.clone(), 1), |chunk| decode_chunk(chunk, 1 << 20).batch.len(), criterion::BatchSize::LargeInput)
        });
        group.bench_function(BenchmarkId::new("serde_json_value", unit), |b| {
            b.iter(|| lines.iter().map(|l| serde_json::from_slice::<serde_json::Value>(l).unwrap()["timestamp"].as_i64().unwrap()).sum::<i64>())
        });
    }
    group.finish();
}

criterion_group!(benches, parser);
criterion_main!(benches);
