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
use crate::walk::{BLOCK_ROWS, Columns, for_each_block};
use crate::{Matrix, Model, ModelError};

/// One feature's share of a row's isolation deficit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Contribution {
    /// Index of the feature in the model's inputs.
    pub feature: usize,
    /// Its share of `c(ψ) − E[h(x)]`, in path-length units (see the module docs).
    pub contribution: f64,
}


/// One tree's contributions by leaf, `width` (feature, share) pairs per node: a row landing in
/// leaf `n` adds `shares[n * width + k]` to feature `features[n * width + k]`. Leaves with fewer
/// features on their path are padded with +0.0 shares (adding +0.0 changes no sum, which starts
/// at +0.0), so every leaf costs the same `width` adds: no branch on each leaf's count.
struct LeafShares {
    width: usize,
    features: Vec<u32>,
    shares: Vec<f64>,
}

impl Model {
    /// Every feature's contribution for each row of `x`, row-major (`rows × features`); each
    /// row sums to `c(ψ) − E[h(x)]`.
    pub fn contributions(&self, x: &Matrix<'_>) -> Result<Vec<f64>, ModelError> {
        let cols = self.inputs_of(x)?;
        let shares = self.leaf_shares();
        let mut out = vec![0.0; x.rows() * cols];
        for_each_block(x.values(), cols, &mut out, cols, || (), |_, block, chunk| self.contribute(&shares, block, chunk));
        Ok(out)
    }

    /// Adds every tree's shares for the rows of `block` to `out` (row-major, the block's rows ×
    /// the features), tree by tree, each walked as scoring walks it.
    fn contribute(&self, shares: &[LeafShares], block: &Columns, out: &mut [f64]) {
        let cols = block.cols();
        for (tree, leaves) in self.trees().iter().zip(shares) {
            let width = leaves.width;
            tree.for_each_leaf(block, |r, leaf| {
                let row_out = &mut out[r * cols..(r + 1) * cols];
                let at = leaf * width..(leaf + 1) * width;
                for (&f, &share) in leaves.features[at.clone()].iter().zip(&leaves.shares[at]) {
                    row_out[f as usize] += share;
                }
            });
        }
    }

    /// Per tree, what a row landing in each leaf adds to each feature: the tree's deficit
    /// `c(ψ) − h(leaf)` over T, shared equally among the splits on the leaf's path (a feature
    /// split on k times gets k shares). Computed once per call, from the trees alone.
    fn leaf_shares(&self) -> Vec<LeafShares> {
        let c = average_path_length(self.max_samples());
        let per_tree = 1.0 / self.trees().len() as f64;
        self.trees()
            .iter()
            .map(|tree| {
                // (feature, share) pairs per leaf; a feature split on k times on the path has one
                // pair, of k shares.
                let mut by_leaf: Vec<(usize, Vec<(u32, f64)>)> = Vec::new();
                tree.leaves(|leaf, h, path| {
                    let mut entries: Vec<(u32, f64)> = Vec::with_capacity(path.len());
                    if !path.is_empty() {
                        let share = (c - h) * per_tree / path.len() as f64;
                        for &f in path {
                            match entries.iter_mut().find(|e| e.0 == f) {
                                Some(e) => e.1 += share,
                                None => entries.push((f, share)),
                            }
                        }
                    }
                    by_leaf.push((leaf, entries));
                });
                let width = by_leaf.iter().map(|(_, e)| e.len()).max().unwrap_or(0);
                let mut shares = LeafShares { width, features: vec![0; tree.nodes() * width], shares: vec![0.0; tree.nodes() * width] };
                for (leaf, entries) in by_leaf {
                    for (k, (f, share)) in entries.into_iter().enumerate() {
                        shares.features[leaf * width + k] = f;
                        shares.shares[leaf * width + k] = share;
                    }
                }
                shares
            })
            .collect()
    }

    /// The `top` largest contributions of each row of `x`, largest first (ties by feature order).
    pub fn explain(&self, x: &Matrix<'_>, top: usize) -> Result<Vec<Vec<Contribution>>, ModelError> {
        let cols = self.inputs_of(x)?;
        if cols == 0 || top == 0 {
            return Ok(vec![Vec::new(); x.rows()]);
        }
        let order = |a: &Contribution, b: &Contribution| b.contribution.total_cmp(&a.contribution).then(a.feature.cmp(&b.feature));
        let shares = self.leaf_shares();
        let mut out = vec![Vec::new(); x.rows()];
        // Each block's contributions go to a buffer of its own and are ranked there: they never
        // leave the cache.
        let scratch = || (Vec::with_capacity(BLOCK_ROWS * cols), Vec::with_capacity(cols));
        for_each_block(x.values(), cols, &mut out, 1, scratch, |(buffer, ranked), block, rows_out| {
            buffer.clear();
            buffer.resize(block.rows() * cols, 0.0);
            self.contribute(&shares, block, buffer);
            for (row, row_out) in buffer.chunks_exact(cols).zip(rows_out) {
                ranked.clear();
                ranked.extend(row.iter().enumerate().map(|(feature, &contribution)| Contribution { feature, contribution }));
                if top < ranked.len() {
                    ranked.select_nth_unstable_by(top - 1, order);
                    ranked.truncate(top);
                }
                ranked.sort_by(order);
                *row_out = ranked.clone();
            }
        });
        Ok(out)
    }
}
