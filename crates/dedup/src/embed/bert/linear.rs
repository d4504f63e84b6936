//! The encoder's linear layers, `x · Wᵀ + b` with an [`Epilogue`], their products on rten-gemm:
//! fp32 weights, or int8 weights (symmetric, per output channel) over u8 activations
//! (asymmetric, per token).

use anyhow::Result;
use rayon::prelude::*;
use rten_gemm::{BiasVector, GemmExecutor, GemmInputA, GemmInputB, GemmOptions, PackedBMatrix};
use rten_simd::SimdOp;
use rten_tensor::NdTensorView;
use safetensors::SafeTensors;

use super::kernels::{self, Dequantize, Epilogue};
use super::{Precision, ROWS_PER_TASK, rows, tensor};

/// A linear layer, its weights packed for the product.
pub enum Linear {
    /// 32-bit float weights.
    Fp32 { weights: PackedBMatrix<f32>, bias: Vec<f32> },
    /// 8-bit integer weights.
    Int8(QuantizedLinear),
}

/// Int8 weights with a scale per output channel, and what dequantizing needs.
pub struct QuantizedLinear {
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
pub struct Gemm {
    fp32: GemmExecutor<f32>,
    int8: GemmExecutor<u8, i8, i32>,
}

impl Gemm {
    /// The executors for this CPU.
    pub fn new() -> Gemm {
        Gemm { fp32: GemmExecutor::default(), int8: GemmExecutor::default() }
    }
}

/// What an int8 layer reuses from call to call: the quantized activations and the products.
#[derive(Default)]
pub struct Scratch {
    values: Vec<u8>,
    /// Per row: (zero point, scale): real value = (quantized − zero point) × scale.
    rows: Vec<(u8, f32)>,
    products: Vec<i32>,
}

impl Scratch {
    /// Quantizes `x`, rows `cols` wide, each row over its own range.
    fn quantize(&mut self, x: &[f32], cols: usize) {
        self.values.clear();
        self.values.reserve(x.len());
        self.rows.resize(x.len() / cols, (0, 0.0));
        self.values.spare_capacity_mut()[..x.len()]
            .par_chunks_mut(cols)
            .zip(x.par_chunks(cols))
            .zip(self.rows.par_iter_mut())
            .with_min_len(ROWS_PER_TASK)
            .for_each(|((q, row), params)| *params = kernels::quantize(row, q));
        // SAFETY: `kernels::quantize` wrote every value of each row, and the rows cover
        // `x.len()` values.
        unsafe { self.values.set_len(x.len()) };
    }
}

impl Linear {
    /// The layers `names` (PyTorch's `[outputs, inputs]` weights and `[outputs]` biases) side by
    /// side, as one layer.
    pub fn load(gemm: &Gemm, st: &SafeTensors, names: &[String], inputs: usize, precision: Precision) -> Result<Linear> {
        let (mut weight, mut bias) = (Vec::new(), Vec::new());
        for name in names {
            let outputs = rows(st, &format!("{name}.bias"))?;
            weight.extend(tensor(st, &format!("{name}.weight"), &[outputs, inputs])?);
            bias.extend(tensor(st, &format!("{name}.bias"), &[outputs])?);
        }
        Ok(Linear::new(gemm, &weight, bias, inputs, precision))
    }

    /// The layer with these weights (`[outputs, inputs]`, row-major) and bias.
    pub fn new(gemm: &Gemm, weight: &[f32], bias: Vec<f32>, inputs: usize, precision: Precision) -> Linear {
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

    /// How many values each output row has.
    pub fn outputs(&self) -> usize {
        match self {
            Linear::Fp32 { bias, .. } => bias.len(),
            Linear::Int8(q) => q.bias.len(),
        }
    }

    /// `x` (`[rows, inputs]`) → `out` (`[rows, outputs]`, resized), the epilogue applied.
    pub fn apply(&self, gemm: &Gemm, x: &[f32], epilogue: Epilogue, scratch: &mut Scratch, out: &mut Vec<f32>) {
        let outputs = self.outputs();
        match self {
            Linear::Fp32 { weights, bias } => {
                let rows = x.len() / weights.rows();
                out.resize(rows * outputs, 0.0);
                // The residual goes in first, and the product is added to it.
                let beta = match epilogue {
                    Epilogue::Residual(r) => {
                        out.copy_from_slice(r);
                        1.0
                    }
                    _ => 0.0,
                };
                let a = NdTensorView::from_data([rows, weights.rows()], x);
                let options = GemmOptions { beta, bias: Some(BiasVector::Row(bias)), ..Default::default() };
                gemm.fp32.gemm(out, GemmInputA::Unpacked(a), GemmInputB::Packed(weights), options).expect("shapes agree");
                if let Epilogue::Gelu = epilogue {
                    out.par_chunks_mut(outputs).with_min_len(ROWS_PER_TASK).for_each(kernels::gelu);
                }
            }
            Linear::Int8(q) => {
                let inputs = q.weights.rows();
                let rows = x.len() / inputs;
                scratch.quantize(x, inputs);
                scratch.products.resize(rows * outputs, 0);
                // Without zero points: rten-gemm 0.27 applies per-row zero points of A wrongly
                // past its first tile of rows (a test below pins this). Each row's zero point
                // is taken off in `Dequantize` instead: Σ(a−z)·w = Σa·w − z·Σw.
                let a = NdTensorView::from_data([rows, inputs], &scratch.values[..]);
                gemm.int8
                    .gemm(&mut scratch.products, GemmInputA::Unpacked(a), GemmInputB::Packed(&q.weights), GemmOptions::default())
                    .expect("shapes agree");
                out.resize(rows * outputs, 0.0);
                out.par_chunks_mut(outputs)
                    .zip(scratch.products.par_chunks(outputs))
                    .zip(scratch.rows.par_iter())
                    .enumerate()
                    .with_min_len(ROWS_PER_TASK)
                    .for_each(|(row, ((out, products), &activation))| {
                        Dequantize {
                            products,
                            weight_sums: &q.sums,
                            weight_scales: &q.scales,
                            bias: &q.bias,
                            activation,
                            epilogue: epilogue.row(row, outputs),
                            out,
                        }
                        .dispatch()
                    });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rten_gemm::GemmExecutor;

    fn reference(x: &[f32], weight: &[f32], bias: &[f32], inputs: usize) -> Vec<f32> {
        x.chunks_exact(inputs)
            .flat_map(|row| weight.chunks_exact(inputs).zip(bias).map(move |(w, b)| row.iter().zip(w).map(|(x, w)| x * w).sum::<f32>() + b))
            .collect()
    }

    /// Rows with different ranges, so different zero points, over more than one tile of rows;
    /// each epilogue.
    #[test]
    fn both_precisions_agree_with_the_plain_product_on_every_row() {
        let gemm = Gemm::new();
        let (inputs, outputs, rows) = (64, 48, 35);
        let weight: Vec<f32> = (0..inputs * outputs).map(|i| ((i * 7_919 % 997) as f32 / 498.0 - 1.0) * 0.1).collect();
        let bias: Vec<f32> = (0..outputs).map(|o| o as f32 * 0.01).collect();
        let x: Vec<f32> = (0..rows * inputs).map(|i| (i * 104_729 % 1_000) as f32 / 500.0 - 1.0 + (i / inputs % 7) as f32 * 0.3).collect();
        let residual: Vec<f32> = (0..rows * outputs).map(|i| (i % 13) as f32 * 0.1).collect();
        let product = reference(&x, &weight, &bias, inputs);
        for (precision, tolerance) in [(Precision::Fp32, 1e-4), (Precision::Int8, 0.02)] {
            let layer = Linear::new(&gemm, &weight, bias.clone(), inputs, precision);
            for (epilogue, want) in [
                (Epilogue::Plain, product.clone()),
                (Epilogue::Residual(&residual), product.iter().zip(&residual).map(|(p, r)| p + r).collect()),
                (Epilogue::Gelu, product.iter().map(|&p| kernels::reference_gelu(p)).collect::<Vec<_>>()),
            ] {
                let mut got = Vec::new();
                layer.apply(&gemm, &x, epilogue, &mut Scratch::default(), &mut got);
                for (r, (got, want)) in got.chunks_exact(outputs).zip(want.chunks_exact(outputs)).enumerate() {
                    let error = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum::<f32>().sqrt();
                    let size = want.iter().map(|w| w * w).sum::<f32>().sqrt();
                    assert!(error <= tolerance * size, "{precision}, row {r}: relative error {}", error / size);
                }
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
}
