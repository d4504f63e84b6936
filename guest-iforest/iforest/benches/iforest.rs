//! Isolation Forest kernels: fit (100 trees, ψ = 256) and score_samples on 100k × 28 random rows.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use sg_iforest::{Contamination, Matrix, Params, fit};

const ROWS: usize = 100_000;
const COLS: usize = 28;

fn kernels(c: &mut Criterion) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let values: Vec<f32> = (0..ROWS * COLS).map(|_| rng.random::<f32>()).collect();
    let x = Matrix::new(&values, ROWS, COLS).unwrap();
    let names: Vec<String> = (0..COLS).map(|i| format!("f{i}")).collect();
    let params = Params { contamination: Contamination::Auto, ..Params::default() };
    let mut g = c.benchmark_group("iforest");
    g.sample_size(10);
    g.bench_function("fit/100k x 28, 100 trees", |b| b.iter(|| fit(&x, &names, &params).unwrap()));
    let model = fit(&x, &names, &params).unwrap();
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("score_samples/100k x 28, 100 trees", |b| b.iter(|| model.score_samples(&x).unwrap()));
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
