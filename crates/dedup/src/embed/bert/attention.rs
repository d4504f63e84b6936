//! Self-attention within each sequence of a batch: per sequence, the twelve heads' scores as one
//! batch of small matrix products (queries × keys, read in place from the `[q | k | v]` rows),
//! softmax per row, then the heads' weighted values as a second batch.

use rayon::prelude::*;
use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB, GemmUninitOptions};
use rten_tensor::NdTensorView;

use super::kernels;
use super::{HEAD_DIM, HEADS, HIDDEN};

/// Attention over `qkv` (rows `[q | k | v]`, `3 × HIDDEN` wide; `starts` bounds the sequences)
/// into `context` (resized: `HIDDEN` per token).
pub fn attend(qkv: &[f32], starts: &[usize], context: &mut Vec<f32>) {
    context.resize(starts.last().copied().unwrap_or(0) * HIDDEN, 0.0);
    let mut parts = Vec::with_capacity(starts.len());
    let mut rest = &mut context[..];
    for w in starts.windows(2) {
        let (part, tail) = rest.split_at_mut((w[1] - w[0]) * HIDDEN);
        parts.push(part);
        rest = tail;
    }
    parts.into_par_iter().zip(starts.par_windows(2)).for_each(|(out, w)| sequence(&qkv[w[0] * 3 * HIDDEN..w[1] * 3 * HIDDEN], out));
}

/// One sequence's attention: `rows` are its tokens' `[q | k | v]`, `out` its context rows.
fn sequence(rows: &[f32], out: &mut [f32]) {
    let len = rows.len() / (3 * HIDDEN);
    if len == 0 {
        return;
    }
    // An executor is not `Send`; making one is a CPU-feature check.
    let gemm = GemmExecutor::<f32>::default();
    // A head's queries, keys or values: `shape` read from `rows` at `offset` with `strides`.
    let view = |offset: usize, shape: [usize; 2], strides: [usize; 2]| {
        NdTensorView::from_slice_with_strides(shape, &rows[offset..], strides).expect("within the sequence's rows")
    };
    let row = 3 * HIDDEN;
    let queries: Vec<_> = (0..HEADS).map(|h| GemmInputA::Unpacked(view(h * HEAD_DIM, [len, HEAD_DIM], [row, 1]))).collect();
    let keys: Vec<_> = (0..HEADS).map(|h| GemmInputB::Unpacked(view(HIDDEN + h * HEAD_DIM, [HEAD_DIM, len], [1, row]))).collect();
    let mut scores = Vec::with_capacity(HEADS * len * len);
    let alpha = 1.0 / (HEAD_DIM as f32).sqrt();
    let scores = gemm
        .batched_gemm_uninit(
            &mut scores.spare_capacity_mut()[..HEADS * len * len],
            &queries,
            &keys,
            GemmUninitOptions { alpha, ..Default::default() },
        )
        .expect("shapes agree");
    scores.chunks_exact_mut(len).for_each(kernels::softmax);
    let weights: Vec<_> = scores.chunks_exact(len * len).map(|p| GemmInputA::Unpacked(NdTensorView::from_data([len, len], p))).collect();
    let values: Vec<_> = (0..HEADS).map(|h| GemmInputB::Unpacked(view(2 * HIDDEN + h * HEAD_DIM, [len, HEAD_DIM], [row, 1]))).collect();
    let mut heads = Vec::with_capacity(HEADS * len * HEAD_DIM);
    let heads = gemm
        .batched_gemm_uninit(&mut heads.spare_capacity_mut()[..HEADS * len * HEAD_DIM], &weights, &values, GemmUninitOptions::default())
        .expect("shapes agree");
    for (h, head) in heads.chunks_exact(len * HEAD_DIM).enumerate() {
        for (token, values) in head.chunks_exact(HEAD_DIM).enumerate() {
            out[token * HIDDEN + h * HEAD_DIM..][..HEAD_DIM].copy_from_slice(values);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention written out plainly, one query and one head at a time.
    fn reference(qkv: &[f32], starts: &[usize]) -> Vec<f32> {
        let mut out = vec![0f32; starts.last().unwrap() * HIDDEN];
        for w in starts.windows(2) {
            let token = |t: usize, part: usize, h: usize| &qkv[t * 3 * HIDDEN + part * HIDDEN + h * HEAD_DIM..][..HEAD_DIM];
            for h in 0..HEADS {
                for i in w[0]..w[1] {
                    let scores: Vec<f64> = (w[0]..w[1])
                        .map(|j| {
                            token(i, 0, h).iter().zip(token(j, 1, h)).map(|(q, k)| f64::from(q * k)).sum::<f64>() / (HEAD_DIM as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for (j, s) in (w[0]..w[1]).zip(&scores) {
                        let p = (s - max).exp() / total;
                        for (o, v) in out[i * HIDDEN + h * HEAD_DIM..][..HEAD_DIM].iter_mut().zip(token(j, 2, h)) {
                            *o += (p * f64::from(*v)) as f32;
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_attention_written_out_per_head_and_query() {
        // Sequences of 1, 5 and 19 tokens, and an empty one.
        let starts = [0, 1, 6, 6, 25];
        let qkv: Vec<f32> = (0..25 * 3 * HIDDEN).map(|i| ((i * 7_919) % 1_013) as f32 / 506.0 - 1.0).collect();
        let mut got = Vec::new();
        attend(&qkv, &starts, &mut got);
        for (g, w) in got.iter().zip(reference(&qkv, &starts)) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }
}
