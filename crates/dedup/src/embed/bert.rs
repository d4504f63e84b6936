//! The BERT encoder of all-MiniLM-L6-v2 (6 layers, 384 wide, 12 heads), read from its
//! safetensors, with sentence-transformers' mean pooling and L2 normalization.
//!
//! A batch's token sequences are concatenated, not padded: the linear layers (nearly all the
//! work) run as one matrix product over every token of the batch, attention runs per sequence.
//! The products are rten-gemm's, with its kernels chosen at run time (AVX-512/AVX2 on x86-64,
//! NEON on aarch64). In [`Precision::Int8`] the linear layers take int8 weights (symmetric, per
//! output channel) and u8 activations (asymmetric, per token), on the int8 dot-product
//! instructions (AVX-512 VNNI where the CPU has them).

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use rten_gemm::{BiasVector, GemmExecutor, GemmInputA, GemmInputB, GemmOptions, PackedBMatrix};
use rten_tensor::NdTensorView;
use safetensors::SafeTensors;

const HIDDEN: usize = 384;
const HEADS: usize = 12;
const HEAD_DIM: usize = HIDDEN / HEADS;
const LAYER_NORM_EPS: f32 = 1e-12;

/// What `config.json` says of the shape the encoder is built for.
#[derive(serde::Deserialize)]
struct Config {
    hidden_size: usize,
    num_attention_heads: usize,
    hidden_act: String,
}

/// The arithmetic of the linear layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// 32-bit floats: the model's own vectors (sentence-transformers' to 1e-4).
    #[default]
    Fp32,
    /// 8-bit integer products: faster, vectors within cosine ~0.998 of fp32's.
    Int8,
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "int8" => Ok(Precision::Int8),
            _ => Err(format!("`{s}`: expected `fp32` or `int8`")),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        })
    }
}

/// A linear layer, `x · Wᵀ + b`, its weights packed for the product.
enum Linear {
    Fp32 { weights: PackedBMatrix<f32>, bias: Vec<f32> },
    Int8(QuantizedLinear),
}

/// Int8 weights with a scale per output channel, and what dequantizing needs.
struct QuantizedLinear {
    weights: PackedBMatrix<i8>,
    /// Per output channel: real weight = quantized × scale.
    scales: Vec<f32>,
    /// Per output channel: the sum of its quantized weights (for the activations' zero points).
    sums: Vec<i32>,
    bias: Vec<f32>,
}

/// The products, one executor per element type. An executor is not `Send` (it boxes its kernel
/// as a plain trait object), so each call makes its own: choosing the kernel is a CPU-feature
/// check, and it chooses the same kernel that packed the weights.
struct Gemm {
    fp32: GemmExecutor<f32>,
    int8: GemmExecutor<u8, i8, i32>,
}

impl Gemm {
    fn new() -> Gemm {
        Gemm { fp32: GemmExecutor::default(), int8: GemmExecutor::default() }
    }
}

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    up: Linear,
    down: Linear,
    out_norm: Norm,
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// The encoder, its weights in memory.
pub struct Encoder {
    words: Vec<f32>,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    precision: Precision,
}

impl Encoder {
    /// Reads a BERT's `config.json` (which must describe all-MiniLM-L6-v2's shape: 384 wide, 12
    /// heads, erf GELU) and its weights (`embeddings.*`, `encoder.layer.N.*`) from a safetensors
    /// file's bytes; every tensor's type and shape is checked.
    pub fn load(config: &[u8], bytes: &[u8], precision: Precision) -> Result<Encoder> {
        let config: Config = serde_json::from_slice(config).context("config.json")?;
        if (config.hidden_size, config.num_attention_heads, config.hidden_act.as_str()) != (HIDDEN, HEADS, "gelu") {
            bail!(
                "config.json describes a BERT {} wide with {} heads and `{}`; this encoder runs {HIDDEN} wide, {HEADS} heads, `gelu` (all-MiniLM-L6-v2)",
                config.hidden_size,
                config.num_attention_heads,
                config.hidden_act
            );
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow!("not a safetensors file: {e}"))?;
        let gemm = Gemm::new();
        let vocabulary = rows(&st, "embeddings.word_embeddings.weight")?;
        let max_positions = rows(&st, "embeddings.position_embeddings.weight")?;
        let norm = |name: &str| -> Result<Norm> {
            Ok(Norm { gamma: tensor(&st, &format!("{name}.weight"), &[HIDDEN])?, beta: tensor(&st, &format!("{name}.bias"), &[HIDDEN])? })
        };
        let mut layers = Vec::new();
        while st.tensor(&format!("encoder.layer.{}.attention.self.query.weight", layers.len())).is_ok() {
            let name = |part: &str| format!("encoder.layer.{}.{part}", layers.len());
            let linear = |parts: &[&str], inputs: usize| {
                Linear::load(&gemm, &st, &parts.iter().map(|p| name(p)).collect::<Vec<_>>(), inputs, precision)
            };
            let intermediate = rows(&st, &name("intermediate.dense.bias"))?;
            let layer = Layer {
                qkv: linear(&["attention.self.query", "attention.self.key", "attention.self.value"], HIDDEN)?,
                attention_out: linear(&["attention.output.dense"], HIDDEN)?,
                attention_norm: norm(&name("attention.output.LayerNorm"))?,
                up: linear(&["intermediate.dense"], HIDDEN)?,
                down: linear(&["output.dense"], intermediate)?,
                out_norm: norm(&name("output.LayerNorm"))?,
            };
            // The inputs were checked against their tensors; the outputs must be what the next
            // step reads.
            if (layer.qkv.outputs(), layer.attention_out.outputs(), layer.down.outputs()) != (3 * HIDDEN, HIDDEN, HIDDEN) {
                bail!("{}: attention or output projections of the wrong size", name("*"));
            }
            layers.push(layer);
        }
        if layers.is_empty() {
            bail!("no encoder layers (`encoder.layer.0.*`)");
        }
        Ok(Encoder {
            words: tensor(&st, "embeddings.word_embeddings.weight", &[vocabulary, HIDDEN])?,
            positions: tensor(&st, "embeddings.position_embeddings.weight", &[max_positions, HIDDEN])?,
            token_type: tensor(&st, "embeddings.token_type_embeddings.weight", &[2, HIDDEN])?[..HIDDEN].to_vec(),
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
            precision,
        })
    }

    /// The arithmetic of its linear layers.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The longest sequence it takes (its position embeddings).
    pub fn max_tokens(&self) -> usize {
        self.positions.len() / HIDDEN
    }

    /// One mean-pooled, unit-length vector per token sequence (each at most
    /// [`max_tokens`](Self::max_tokens) long, every id within the vocabulary).
    pub fn embed(&self, sequences: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let mut starts = Vec::with_capacity(sequences.len() + 1);
        starts.push(0);
        for s in sequences {
            if s.len() > self.max_tokens() {
                bail!("a sequence of {} tokens (at most {})", s.len(), self.max_tokens());
            }
            starts.push(starts.last().copied().unwrap_or(0) + s.len());
        }
        let tokens = starts.last().copied().unwrap_or(0);
        let mut x = vec![0f32; tokens * HIDDEN];
        let rows = x.chunks_exact_mut(HIDDEN);
        for (row, (position, &id)) in rows.zip(sequences.iter().flat_map(|s| s.iter().enumerate())) {
            let word = self
                .words
                .get(id as usize * HIDDEN..(id as usize + 1) * HIDDEN)
                .with_context(|| format!("token id {id} outside the vocabulary"))?;
            let position = &self.positions[position * HIDDEN..(position + 1) * HIDDEN];
            for (((v, &w), &p), &t) in row.iter_mut().zip(word).zip(position).zip(&self.token_type) {
                *v = w + p + t;
            }
        }
        self.embedding_norm.apply(&mut x);
        let gemm = Gemm::new();
        let mut scratch = Activations::default();
        for layer in &self.layers {
            let qkv = layer.qkv.apply(&gemm, &x, &mut scratch);
            let context = attention(&qkv, &starts);
            let mut attended = layer.attention_out.apply(&gemm, &context, &mut scratch);
            add(&mut attended, &x);
            layer.attention_norm.apply(&mut attended);
            let mut hidden = layer.up.apply(&gemm, &attended, &mut scratch);
            hidden.par_chunks_mut(4096).for_each(gelu);
            x = layer.down.apply(&gemm, &hidden, &mut scratch);
            add(&mut x, &attended);
            layer.out_norm.apply(&mut x);
        }
        Ok(starts
            .windows(2)
            .map(|w| {
                let mut mean = vec![0f32; HIDDEN];
                for row in x[w[0] * HIDDEN..w[1] * HIDDEN].chunks_exact(HIDDEN) {
                    mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
                }
                let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                mean.iter_mut().for_each(|v| *v /= norm);
                mean
            })
            .collect())
    }
}

/// A tensor by name, or an error naming it.
fn named<'a>(st: &SafeTensors<'a>, name: &str) -> Result<safetensors::tensor::TensorView<'a>> {
    st.tensor(name).with_context(|| format!("`{name}` missing"))
}

/// The first dimension of a tensor that has one (the rest is checked by [`tensor`]).
fn rows(st: &SafeTensors, name: &str) -> Result<usize> {
    let t = named(st, name)?;
    t.shape().first().copied().with_context(|| format!("`{name}` is a scalar"))
}

/// An f32 tensor of this shape, checked.
fn tensor(st: &SafeTensors, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let t = named(st, name)?;
    if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
        bail!("`{name}`: expected F32 {shape:?}, found {:?} {:?}", t.dtype(), t.shape());
    }
    Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

impl Linear {
    /// The layers `names` (PyTorch's `[outputs, inputs]` weights and `[outputs]` biases) side by
    /// side, as one layer.
    fn load(gemm: &Gemm, st: &SafeTensors, names: &[String], inputs: usize, precision: Precision) -> Result<Linear> {
        let (mut weight, mut bias) = (Vec::new(), Vec::new());
        for name in names {
            let outputs = rows(st, &format!("{name}.bias"))?;
            weight.extend(tensor(st, &format!("{name}.weight"), &[outputs, inputs])?);
            bias.extend(tensor(st, &format!("{name}.bias"), &[outputs])?);
        }
        Ok(Linear::new(gemm, &weight, bias, inputs, precision))
    }

    fn new(gemm: &Gemm, weight: &[f32], bias: Vec<f32>, inputs: usize, precision: Precision) -> Linear {
        let outputs = bias.len();
        match precision {
            Precision::Fp32 => {
                let mut transposed = vec![0f32; inputs * outputs];
                for (o, row) in weight.chunks_exact(inputs).enumerate() {
                    for (i, &w) in row.iter().enumerate() {
                        transposed[i * outputs + o] = w;
                    }
                }
                Linear::Fp32 { weights: gemm.fp32.prepack_b(NdTensorView::from_data([inputs, outputs], &transposed[..])), bias }
            }
            Precision::Int8 => {
                // Where the kernel sums pairs of u8×i8 products in 16 bits (x86 without VNNI),
                // 7-bit weights keep the sums from saturating.
                let limit = if gemm.int8.may_saturate() { 63.0 } else { 127.0 };
                let (mut scales, mut sums) = (Vec::with_capacity(outputs), vec![0i32; outputs]);
                let mut quantized = vec![0i8; inputs * outputs];
                for (o, row) in weight.chunks_exact(inputs).enumerate() {
                    let max = row.iter().fold(0f32, |m, w| m.max(w.abs()));
                    let scale = if max > 0.0 { max / limit } else { 1.0 };
                    scales.push(scale);
                    for (i, &w) in row.iter().enumerate() {
                        let q = (w / scale).round().clamp(-limit, limit) as i8;
                        quantized[i * outputs + o] = q;
                        sums[o] += i32::from(q);
                    }
                }
                let weights = gemm.int8.prepack_b(NdTensorView::from_data([inputs, outputs], &quantized[..]));
                Linear::Int8(QuantizedLinear { weights, scales, sums, bias })
            }
        }
    }

    fn outputs(&self) -> usize {
        match self {
            Linear::Fp32 { bias, .. } => bias.len(),
            Linear::Int8(q) => q.bias.len(),
        }
    }

    /// `x` (`[rows, inputs]`) → `[rows, outputs]`.
    fn apply(&self, gemm: &Gemm, x: &[f32], scratch: &mut Activations) -> Vec<f32> {
        let outputs = self.outputs();
        match self {
            Linear::Fp32 { weights, bias } => {
                let rows = x.len() / weights.rows();
                let mut out = vec![0f32; rows * outputs];
                let a = NdTensorView::from_data([rows, weights.rows()], x);
                let options = GemmOptions { bias: Some(BiasVector::Row(bias)), ..Default::default() };
                gemm.fp32.gemm(&mut out, GemmInputA::Unpacked(a), GemmInputB::Packed(weights), options).expect("shapes agree");
                out
            }
            Linear::Int8(q) => {
                let inputs = q.weights.rows();
                let rows = x.len() / inputs;
                scratch.quantize(x, inputs);
                let mut products = vec![0i32; rows * outputs];
                // Without zero points: rten-gemm 0.27 applies per-row zero points of A wrongly
                // past its first tile of rows (a test below pins this). Each row's zero point
                // is taken off here instead: Σ(a−z)·w = Σa·w − z·Σw.
                let a = NdTensorView::from_data([rows, inputs], &scratch.values[..]);
                gemm.int8
                    .gemm(&mut products, GemmInputA::Unpacked(a), GemmInputB::Packed(&q.weights), GemmOptions::default())
                    .expect("shapes agree");
                let mut out = vec![0f32; rows * outputs];
                out.par_chunks_mut(outputs).zip(products.par_chunks(outputs)).zip(scratch.rows.par_iter()).for_each(
                    |((out, products), &(zero, scale))| {
                        let zero = i32::from(zero);
                        for ((((o, &p), &sum), &weight_scale), &bias) in
                            out.iter_mut().zip(products).zip(&q.sums).zip(&q.scales).zip(&q.bias)
                        {
                            *o = (p - zero * sum) as f32 * (scale * weight_scale) + bias;
                        }
                    },
                );
                out
            }
        }
    }
}

/// Activations quantized to u8, each row with its own zero point and scale.
#[derive(Default)]
struct Activations {
    values: Vec<u8>,
    /// Per row: (zero point, scale): real value = (quantized − zero point) × scale.
    rows: Vec<(u8, f32)>,
}

impl Activations {
    fn quantize(&mut self, x: &[f32], cols: usize) {
        self.values.resize(x.len(), 0);
        self.rows.resize(x.len() / cols, (0, 0.0));
        self.values.par_chunks_mut(cols).zip(x.par_chunks(cols)).zip(self.rows.par_iter_mut()).for_each(|((q, row), params)| {
            // The range includes 0, so zero is exact.
            let (min, max) = row.iter().fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let scale = if max > min { (max - min) / 255.0 } else { 1.0 };
            let zero = (-min / scale + 0.5).clamp(0.0, 255.0) as u8;
            let (inverse, offset) = (1.0 / scale, f32::from(zero) + 0.5);
            for (q, &v) in q.iter_mut().zip(row) {
                // In range after the clamp, so a plain conversion (which vectorizes, where a
                // saturating `as` does not).
                *q = unsafe { (v * inverse + offset).clamp(0.0, 255.0).to_int_unchecked::<i32>() } as u8;
            }
            *params = (zero, scale);
        });
    }
}

impl Norm {
    /// Layer normalization of each row, in place.
    fn apply(&self, x: &mut [f32]) {
        x.par_chunks_mut(HIDDEN).for_each(|row| {
            let mean = row.iter().sum::<f32>() / HIDDEN as f32;
            let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / HIDDEN as f32;
            let inverse = 1.0 / (variance + LAYER_NORM_EPS).sqrt();
            for ((v, &g), &b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *v = (*v - mean) * inverse * g + b;
            }
        });
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// Self-attention within each sequence (`starts` bounds them); `qkv` rows are `[q | k | v]`.
fn attention(qkv: &[f32], starts: &[usize]) -> Vec<f32> {
    let mut context = vec![0f32; starts.last().copied().unwrap_or(0) * HIDDEN];
    let mut parts = Vec::with_capacity(starts.len());
    let mut rest = &mut context[..];
    for w in starts.windows(2) {
        let (part, tail) = rest.split_at_mut((w[1] - w[0]) * HIDDEN);
        parts.push(part);
        rest = tail;
    }
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    parts.into_par_iter().zip(starts.par_windows(2)).for_each(|(out, w)| {
        let len = w[1] - w[0];
        let rows = &qkv[w[0] * 3 * HIDDEN..w[1] * 3 * HIDDEN];
        // Keys transposed per head (scaled), so a query's scores are sums of whole rows.
        let mut keys = vec![0f32; HEAD_DIM * len];
        let mut p = vec![0f32; len];
        for head in 0..HEADS {
            let d = head * HEAD_DIM;
            for (j, row) in rows.chunks_exact(3 * HIDDEN).enumerate() {
                for (t, &k) in row[HIDDEN + d..HIDDEN + d + HEAD_DIM].iter().enumerate() {
                    keys[t * len + j] = k * scale;
                }
            }
            for (i, row) in rows.chunks_exact(3 * HIDDEN).enumerate() {
                p.fill(0.0);
                for (&q, keys) in row[d..d + HEAD_DIM].iter().zip(keys.chunks_exact(len)) {
                    p.iter_mut().zip(keys).for_each(|(p, &k)| *p += q * k);
                }
                let max = p.iter().fold(f32::MIN, |m, &v| m.max(v));
                p.iter_mut().for_each(|v| *v = exp(*v - max));
                let inverse = 1.0 / p.iter().sum::<f32>();
                let o = &mut out[i * HIDDEN + d..i * HIDDEN + d + HEAD_DIM];
                for (&weight, values) in p.iter().zip(rows.chunks_exact(3 * HIDDEN)) {
                    let weight = weight * inverse;
                    o.iter_mut().zip(&values[2 * HIDDEN + d..2 * HIDDEN + d + HEAD_DIM]).for_each(|(o, &v)| *o += weight * v);
                }
            }
        }
    });
    context
}

/// e^x without a libm call (so loops over it vectorize); relative error ~2e-7 on [-87, 88].
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Rounded to the nearest integer by adding and taking away 1.5·2²³.
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    // n is within [-126, 127] after the clamp.
    p * f32::from_bits(((unsafe { n.to_int_unchecked::<i32>() } + 127) as u32) << 23)
}

/// GELU with erf (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7), in place.
fn gelu(xs: &mut [f32]) {
    for x in xs {
        let z = (*x * std::f32::consts::FRAC_1_SQRT_2).abs();
        let t = 1.0 / (1.0 + 0.327_591_1 * z);
        let erf = 1.0 - t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4)))) * exp(-z * z);
        *x = 0.5 * *x * (1.0 + erf.copysign(*x));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// all-MiniLM-L6-v2's shape, as its `config.json` gives it.
    const CONFIG: &[u8] = br#"{"hidden_size": 384, "num_attention_heads": 12, "hidden_act": "gelu"}"#;

    fn reference(x: &[f32], weight: &[f32], bias: &[f32], inputs: usize) -> Vec<f32> {
        x.chunks_exact(inputs)
            .flat_map(|row| weight.chunks_exact(inputs).zip(bias).map(move |(w, b)| row.iter().zip(w).map(|(x, w)| x * w).sum::<f32>() + b))
            .collect()
    }

    /// Rows with different ranges, so different zero points, over more than one tile of rows.
    #[test]
    fn both_precisions_agree_with_the_plain_product_on_every_row() {
        let gemm = Gemm::new();
        let (inputs, outputs, rows) = (64, 48, 35);
        let weight: Vec<f32> = (0..inputs * outputs).map(|i| ((i * 7_919 % 997) as f32 / 498.0 - 1.0) * 0.1).collect();
        let bias: Vec<f32> = (0..outputs).map(|o| o as f32 * 0.01).collect();
        let x: Vec<f32> = (0..rows * inputs).map(|i| (i * 104_729 % 1_000) as f32 / 500.0 - 1.0 + (i / inputs % 7) as f32 * 0.3).collect();
        let want = reference(&x, &weight, &bias, inputs);
        for (precision, tolerance) in [(Precision::Fp32, 1e-4), (Precision::Int8, 0.02)] {
            let got = Linear::new(&gemm, &weight, bias.clone(), inputs, precision).apply(&gemm, &x, &mut Activations::default());
            for (r, (got, want)) in got.chunks_exact(outputs).zip(want.chunks_exact(outputs)).enumerate() {
                let error = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum::<f32>().sqrt();
                let size = want.iter().map(|w| w * w).sum::<f32>().sqrt();
                assert!(error <= tolerance * size, "{precision}, row {r}: relative error {}", error / size);
            }
        }
    }

    /// What the int8 layer works around: if rten-gemm's per-row zero points start working past
    /// the first tile, this fails, and `Linear::apply` can hand them over again.
    #[test]
    fn rten_gemm_misapplies_per_row_zero_points_past_the_first_tile() {
        let gemm: GemmExecutor<u8, i8, i32> = GemmExecutor::default();
        let (rows, inputs, outputs) = (35, 64, 32);
        let a: Vec<u8> = (0..rows * inputs).map(|i| (i * 31 % 256) as u8).collect();
        let b: Vec<i8> = (0..inputs * outputs).map(|i| (i * 17 % 255) as i8).collect();
        let zeros: Vec<u8> = (0..rows).map(|r| (r * 37 % 256) as u8).collect();
        let mut got = vec![0i32; rows * outputs];
        let a_view = NdTensorView::from_data([rows, inputs], &a[..]);
        let b_view = NdTensorView::from_data([inputs, outputs], &b[..]);
        let options = GemmOptions { a_quant: Some(rten_gemm::QuantParams { zero_point: &zeros }), ..Default::default() };
        gemm.gemm(&mut got, GemmInputA::Unpacked(a_view), GemmInputB::Unpacked(b_view), options).unwrap();
        let want = |r: usize, c: usize| {
            (0..inputs).map(|k| (i32::from(a[r * inputs + k]) - i32::from(zeros[r])) * i32::from(b[k * outputs + c])).sum::<i32>()
        };
        let wrong = (0..rows).filter(|&r| (0..outputs).any(|c| got[r * outputs + c] != want(r, c))).count();
        assert!(wrong > 0, "rten-gemm now applies per-row zero points right: Linear::apply may pass them");
    }

    #[test]
    fn a_hostile_weights_file_is_refused_with_the_tensor_named() {
        use safetensors::tensor::TensorView;
        assert!(Encoder::load(CONFIG, b"not a safetensors file", Precision::Fp32).is_err());
        let wider = br#"{"hidden_size": 768, "num_attention_heads": 12, "hidden_act": "gelu"}"#;
        let e = Encoder::load(wider, b"", Precision::Fp32).err().expect("refused");
        assert!(format!("{e:#}").contains("768 wide"), "{e:#}");
        let four = [0u8; 4];
        let scalar = TensorView::new(safetensors::Dtype::F32, vec![], &four).unwrap();
        let bytes = safetensors::serialize([("embeddings.word_embeddings.weight", scalar)], None).unwrap();
        let e = Encoder::load(CONFIG, &bytes, Precision::Int8).err().expect("refused");
        assert!(format!("{e:#}").contains("`embeddings.word_embeddings.weight` is a scalar"), "{e:#}");
        let six = [0u8; 24];
        let narrow = |_| TensorView::new(safetensors::Dtype::F32, vec![2, 3], &six).unwrap();
        let names = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"];
        let bytes = safetensors::serialize(names.iter().map(|n| (*n, narrow(n))), None).unwrap();
        let e = Encoder::load(CONFIG, &bytes, Precision::Fp32).err().expect("refused");
        assert!(format!("{e:#}").contains("no encoder layers"), "{e:#}");
    }

    /// Shapes that agree with each other but not with attention: refused before any text is.
    #[test]
    fn projections_of_the_wrong_size_are_refused() {
        use safetensors::tensor::TensorView;
        let shapes: Vec<(String, Vec<usize>)> = [
            ("embeddings.word_embeddings.weight", vec![1, HIDDEN]),
            ("embeddings.position_embeddings.weight", vec![4, HIDDEN]),
            ("embeddings.token_type_embeddings.weight", vec![2, HIDDEN]),
            ("embeddings.LayerNorm.weight", vec![HIDDEN]),
            ("embeddings.LayerNorm.bias", vec![HIDDEN]),
            ("encoder.layer.0.attention.self.query.weight", vec![1, HIDDEN]),
            ("encoder.layer.0.attention.self.query.bias", vec![1]),
            ("encoder.layer.0.attention.self.key.weight", vec![HIDDEN, HIDDEN]),
            ("encoder.layer.0.attention.self.key.bias", vec![HIDDEN]),
            ("encoder.layer.0.attention.self.value.weight", vec![HIDDEN, HIDDEN]),
            ("encoder.layer.0.attention.self.value.bias", vec![HIDDEN]),
            ("encoder.layer.0.attention.output.dense.weight", vec![HIDDEN, HIDDEN]),
            ("encoder.layer.0.attention.output.dense.bias", vec![HIDDEN]),
            ("encoder.layer.0.attention.output.LayerNorm.weight", vec![HIDDEN]),
            ("encoder.layer.0.attention.output.LayerNorm.bias", vec![HIDDEN]),
            ("encoder.layer.0.intermediate.dense.weight", vec![8, HIDDEN]),
            ("encoder.layer.0.intermediate.dense.bias", vec![8]),
            ("encoder.layer.0.output.dense.weight", vec![HIDDEN, 8]),
            ("encoder.layer.0.output.dense.bias", vec![HIDDEN]),
            ("encoder.layer.0.output.LayerNorm.weight", vec![HIDDEN]),
            ("encoder.layer.0.output.LayerNorm.bias", vec![HIDDEN]),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        let data: Vec<Vec<u8>> = shapes.iter().map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()]).collect();
        let views =
            shapes.iter().zip(&data).map(|((n, s), d)| (n.clone(), TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap()));
        let bytes = safetensors::serialize(views, None).unwrap();
        let e = Encoder::load(CONFIG, &bytes, Precision::Fp32).err().expect("refused");
        assert!(format!("{e:#}").contains("encoder.layer.0.*: attention or output projections of the wrong size"), "{e:#}");
    }

    #[test]
    fn exp_and_gelu_match_libm() {
        for x in [-80.0f32, -3.0, -0.5, 0.0, 0.7, 2.0, 30.0] {
            assert!((exp(x) - x.exp()).abs() <= 1e-6 * x.exp(), "exp({x})");
        }
        let mut xs = [-3.0f32, -0.5, 0.0, 0.7, 2.0];
        let want = [-0.004_049_7f32, -0.154_268_73, 0.0, 0.530_625_6, 1.954_5];
        gelu(&mut xs);
        for (g, w) in xs.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{xs:?}");
        }
    }
}
