//! Per-row explanations from the forest itself: which features isolated a row.
//!
//! A row's anomaly comes from being isolated sooner than an average point: its *isolation
//! deficit* in tree t is `c(ψ) − h_t(x)` (the average path length of the subsample minus the
//! row's path length, leaf correction included). Each tree shares its deficit equally among the
//! splits on the row's path, so a feature's contribution is
//!
//! ```text
//! contribution_f(x) = 1/T · Σ_t (c(ψ) − h_t(x)) · k_{t,f}(x) / d_t(x)
//! ```
//!
//! with `d_t` the splits on the path and `k_{t,f}` those on feature f (a tree that never split
//! holds all ψ points in its root, so its deficit is 0). Contributions therefore sum to
//! `c(ψ) − E_t[h_t(x)]` exactly, the quantity the score is a monotone function of:
//! `score_samples = −2^(−E[h] / c(ψ))`. Positive totals mark rows isolated sooner than average
//! (anomalous), negative ones rows that took longer. The attribution is path-based like DIFFI
//! (Carletti, Terzi, Susto: "Interpretable Anomaly Detection with DIFFI: Depth-based Feature
//! Importance of Isolation Forest", Engineering Applications of AI 119, 2023), whose local
//! variant also credits the split features on a row's path by how early it was isolated; ours
//! keeps DIFFI's idea but weights by the deficit itself so that the parts add up to the whole.

use crate::path::average_path_length;
use crate::{Matrix, Model, ModelError};

/// One feature's share of a row's isolation deficit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Contribution {
    /// Index of the feature in the model's inputs.
    pub feature: usize,
    /// Its share of `c(ψ) − E[h(x)]`, in path-length units (see the module docs).
    pub contribution: f64,
}

/// Rows explained together (an explanation row is as wide as the features).
const BLOCK: usize = 256;

impl Model {
    /// Every feature's contribution for each row of `x`, row-major (`rows × features`); each
    /// row sums to `c(ψ) − E[h(x)]`.
    pub fn contributions(&self, x: &Matrix<'_>) -> Result<Vec<f64>, ModelError> {
        let cols = self.feature_names().len();
        if x.cols() != cols {
            return Err(ModelError::Features {
                expected: self.feature_names().to_vec(),
                got: (0..x.cols()).map(|i| format!("column {i}")).collect(),
            });
        }
        let mut out = vec![0f64; x.rows() * cols];
        if cols == 0 {
            return Ok(out);
        }
        let c = average_path_length(self.max_samples());
        let per_tree = 1.0 / self.trees().len() as f64;
        let explain_block = |(b, chunk): (usize, &mut [f64])| {
            let mut path = Vec::with_capacity(32);
            for (i, row_out) in chunk.chunks_exact_mut(cols).enumerate() {
                let row = x.row(b * BLOCK + i);
                for tree in self.trees() {
                    path.clear();
                    let h = tree.path(row, |f| path.push(f));
                    if path.is_empty() {
                        continue;
                    }
                    let share = (c - h) * per_tree / path.len() as f64;
                    for &f in &path {
                        row_out[f as usize] += share;
                    }
                }
            }
        };
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            out.par_chunks_mut(BLOCK * cols).enumerate().for_each(explain_block);
        }
        #[cfg(not(feature = "parallel"))]
        out.chunks_mut(BLOCK * cols).enumerate().for_each(explain_block);
        Ok(out)
    }

    /// The `top` largest contributions of each row of `x`, largest first (ties by feature order).
    pub fn explain(&self, x: &Matrix<'_>, top: usize) -> Result<Vec<Vec<Contribution>>, ModelError> {
        let cols = self.feature_names().len();
        let all = self.contributions(x)?;
        if cols == 0 {
            return Ok(vec![Vec::new(); x.rows()]);
        }
        Ok(all
            .chunks_exact(cols)
            .map(|row| {
                let mut ranked: Vec<Contribution> =
                    row.iter().enumerate().map(|(feature, &contribution)| Contribution { feature, contribution }).collect();
                ranked.sort_by(|a, b| b.contribution.total_cmp(&a.contribution).then(a.feature.cmp(&b.feature)));
                ranked.truncate(top);
                ranked
            })
            .collect())
    }
}
