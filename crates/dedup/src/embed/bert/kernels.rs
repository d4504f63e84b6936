//! The encoder's loops over rows of activations, on rten-simd's vectors: each is compiled for
//! AVX-512, AVX2 with FMA, NEON and plain Rust, and the best the CPU has is chosen when it runs
//! (the portable build would otherwise run them on SSE2 or scalar instructions). The standard
//! pieces (minimum and maximum, quantizing, sums, normalizing, GELU, softmax) are rten-vecmath's;
//! dequantizing an int8 product, with the layer's epilogue, is written here on the same vectors.

use rten_simd::functional::simd_map;
use rten_simd::ops::{BitOps, NumOps, ToFloat};
use rten_simd::{Isa, SimdIterable, SimdOp, SimdUnaryOp};
use rten_vecmath::{Gelu, MinMax, Normalize, NormalizeOptions, Quantize, Softmax, Sum, SumSquareSub};
use std::mem::MaybeUninit;

/// What happens to a linear layer's output before it is stored.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    /// Stored as it is.
    Plain,
    /// The residual stream (rows as wide as the output) added.
    Residual(&'a [f32]),
    /// GELU (with erf) applied.
    Gelu,
}

impl Epilogue<'_> {
    /// The epilogue of one output row: row `row` of the residual stream where there is one.
    pub fn row(self, row: usize, width: usize) -> Self {
        match self {
            Epilogue::Residual(r) => Epilogue::Residual(&r[row * width..(row + 1) * width]),
            other => other,
        }
    }
}

/// GELU (with erf) in place.
pub fn gelu(xs: &mut [f32]) {
    Gelu {}.map_mut(xs);
}

/// Layer normalization of one row in place: zero mean, unit variance, then `gamma`, `beta`.
pub fn layer_norm(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = Sum::new(row).dispatch() / n;
    let variance = SumSquareSub::new(row, mean).dispatch() / n;
    let options = NormalizeOptions {
        pre_scale_bias: mean,
        scale: 1.0 / (variance + eps).sqrt(),
        element_scale: Some(gamma),
        element_bias: Some(beta),
        ..Default::default()
    };
    Normalize::new_mut(row, options).dispatch();
}

/// Softmax of one row in place.
pub fn softmax(row: &mut [f32]) {
    Softmax::new_mut(row).dispatch();
}

/// Quantizes one row to u8 over its own range (which includes 0, so 0 is exact); returns its
/// (zero point, scale): real value ≈ (quantized − zero point) × scale.
pub fn quantize(row: &[f32], out: &mut [MaybeUninit<u8>]) -> (u8, f32) {
    let (min, max) = MinMax::new(row).dispatch();
    let (min, max) = (min.min(0.0), max.max(0.0));
    let scale = if max > min { (max - min) / 255.0 } else { 1.0 };
    let zero = (-min / scale).round().clamp(0.0, 255.0) as u8;
    Quantize::new(row, out, 1.0 / scale, zero).dispatch();
    (zero, scale)
}

/// One row of an int8 layer's output from its i32 products: the activations' zero point taken
/// off (`zero × Σw` per output), both scales applied, the bias added, then the epilogue.
pub struct Dequantize<'a> {
    /// The row's products, Σ quantized activation × quantized weight, per output.
    pub products: &'a [i32],
    /// The layer's per-output sums of quantized weights.
    pub weight_sums: &'a [i32],
    /// The layer's per-output weight scales.
    pub weight_scales: &'a [f32],
    /// The layer's bias.
    pub bias: &'a [f32],
    /// The row's activation zero point and scale.
    pub activation: (u8, f32),
    /// What is done to the result.
    pub epilogue: Epilogue<'a>,
    /// Where the row goes.
    pub out: &'a mut [f32],
}

impl SimdOp for Dequantize<'_> {
    type Output = ();

    #[inline(always)]
    fn eval<I: Isa>(self, isa: I) -> Self::Output {
        let (f, i) = (isa.f32(), isa.i32());
        let zero = i.splat(i32::from(self.activation.0));
        let scale = f.splat(self.activation.1);
        let mut products = self.products.simd_iter_pad(i);
        let mut sums = self.weight_sums.simd_iter_pad(i);
        let mut scales = self.weight_scales.simd_iter_pad(f);
        let mut bias = self.bias.simd_iter_pad(f);
        let mut residual = match self.epilogue {
            Epilogue::Residual(r) => Some(r.simd_iter_pad(f)),
            _ => None,
        };
        let gelu = matches!(self.epilogue, Epilogue::Gelu);
        // Each step reads the next vector of every input; the output's own values are unused.
        simd_map(
            f,
            self.out,
            #[inline(always)]
            |_| {
                let (p, s) = (products.next().unwrap_or(i.zero()), sums.next().unwrap_or(i.zero()));
                let exact = i.to_float(i.sub(p, i.mul(zero, s)));
                let weight_scale = scales.next().unwrap_or(f.zero());
                let v = f.mul_add(exact, f.mul(weight_scale, scale), bias.next().unwrap_or(f.zero()));
                match residual.as_mut() {
                    Some(r) => f.add(v, r.next().unwrap_or(f.zero())),
                    None if gelu => Gelu {}.eval(isa, v),
                    None => v,
                }
            },
        );
    }
}

/// erf-GELU with libm's erf: what the tests hold [`gelu`] and the GELU epilogue to.
#[cfg(test)]
pub fn reference_gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_libm() {
        let mut xs: Vec<f32> = (-60..=60).map(|i| i as f32 * 0.1).collect();
        let want: Vec<f32> = xs.iter().map(|&x| reference_gelu(x)).collect();
        gelu(&mut xs);
        for (g, w) in xs.iter().zip(want) {
            assert!((g - w).abs() < 2e-6, "{g} vs {w}");
        }
    }

    #[test]
    fn layer_norm_matches_the_plain_formula() {
        let width = 37; // not a whole number of vectors
        let mut row: Vec<f32> = (0..width).map(|i| (i * 7 % 11) as f32 - 3.5).collect();
        let gamma: Vec<f32> = (0..width).map(|i| 1.0 + i as f32 * 0.01).collect();
        let beta: Vec<f32> = (0..width).map(|i| i as f32 * -0.02).collect();
        let mean = row.iter().sum::<f32>() / width as f32;
        let variance = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / width as f32;
        let want: Vec<f32> = row.iter().zip(&gamma).zip(&beta).map(|((v, g), b)| (v - mean) / (variance + 1e-12).sqrt() * g + b).collect();
        layer_norm(&mut row, &gamma, &beta, 1e-12);
        for (g, w) in row.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn quantize_keeps_every_value_within_half_a_step() {
        for row in [vec![-1.5f32, 0.25, 3.0, 2.2, -0.7, 0.0, 1e-3], vec![0.5; 19], vec![-2.0; 5], vec![0.0; 3]] {
            let mut out = vec![MaybeUninit::uninit(); row.len()];
            let (zero, scale) = quantize(&row, &mut out);
            for (&v, q) in row.iter().zip(&out) {
                let back = (f32::from(unsafe { q.assume_init() }) - f32::from(zero)) * scale;
                assert!((back - v).abs() <= scale * 0.5 + 1e-6, "{v} came back as {back} (zero {zero}, scale {scale})");
            }
        }
    }

    #[test]
    fn dequantize_applies_zero_point_scales_bias_and_epilogue() {
        let width = 21; // not a whole number of vectors
        let products: Vec<i32> = (0..width).map(|i| i * 1_000 - 7_000).collect();
        let sums: Vec<i32> = (0..width).map(|i| 50 - i * 3).collect();
        let scales: Vec<f32> = (0..width).map(|i| 0.001 + i as f32 * 1e-4).collect();
        let bias: Vec<f32> = (0..width).map(|i| i as f32 * 0.1 - 1.0).collect();
        let residual: Vec<f32> = (0..width).map(|i| (i % 3) as f32).collect();
        let (zero, scale) = (17u8, 0.02f32);
        let plain = |j: usize| (products[j] - i32::from(zero) * sums[j]) as f32 * scales[j] * scale + bias[j];
        for (epilogue, want) in [
            (Epilogue::Plain, (0..width as usize).map(plain).collect::<Vec<_>>()),
            (Epilogue::Residual(&residual), (0..width as usize).map(|j| plain(j) + residual[j]).collect()),
            (Epilogue::Gelu, (0..width as usize).map(|j| reference_gelu(plain(j))).collect()),
        ] {
            let mut out = vec![f32::NAN; width as usize];
            Dequantize {
                products: &products,
                weight_sums: &sums,
                weight_scales: &scales,
                bias: &bias,
                activation: (zero, scale),
                epilogue,
                out: &mut out,
            }
            .dispatch();
            for (g, w) in out.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5 * w.abs().max(1.0), "{g} vs {w}");
            }
        }
    }
}
