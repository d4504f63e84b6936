//! One isolation tree: built on a subsample, stored as a flat node array.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::Matrix;
use crate::path::average_path_length;

/// `feature` value marking a leaf.
const LEAF: u32 = u32::MAX;

/// scikit-learn's `FEATURE_THRESHOLD`: a feature whose range is within this is constant.
const FEATURE_THRESHOLD: f32 = 1e-7;

/// A flat isolation tree. Node `i` is a split on `feature[i]` (`x <= threshold[i]` goes to
/// `child[i]`, anything else — NaN included — to `child[i] + 1`), or a leaf (`feature[i] ==
/// u32::MAX`) whose path length is `leaf_value[child[i]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    feature: Vec<u32>,
    threshold: Vec<f32>,
    child: Vec<u32>,
    /// depth + c(samples reaching the leaf), precomputed.
    leaf_value: Vec<f64>,
}

/// Largest f32 not above `t`: `x <= result` ⇔ `x <= t` for every f32 `x`, so the tree splits
/// f32 inputs exactly as a float64 threshold (scikit-learn's) would.
fn floor_f32(t: f64) -> f32 {
    let r = t as f32;
    if f64::from(r) > t { r.next_down() } else { r }
}

/// Finite min and max of `feature` over `rows` of the subsample (column-major `data`).
fn finite_range(data: &[f32], rows: &[u32]) -> Option<(f32, f32)> {
    let mut range: Option<(f32, f32)> = None;
    for &r in rows {
        let v = data[r as usize];
        if v.is_finite() {
            range = Some(match range {
                None => (v, v),
                Some((lo, hi)) => (lo.min(v), hi.max(v)),
            });
        }
    }
    range
}

impl Tree {
    /// Builds a tree on `sample` (row indices of `x`) using only `features`, to `max_depth`.
    pub(crate) fn build(
        x: &Matrix<'_>,
        sample: &[usize],
        features: &[u32],
        max_depth: u32,
        rng: &mut impl Rng,
    ) -> Tree {
        // Column-major copy of the subsample: one contiguous slice per used feature.
        let n = sample.len();
        let mut columns = vec![0f32; features.len() * n];
        for (j, &f) in features.iter().enumerate() {
            for (i, &row) in sample.iter().enumerate() {
                columns[j * n + i] = x.get(row, f as usize);
            }
        }
        let mut tree = Tree { feature: vec![LEAF], threshold: vec![0.0], child: vec![0], leaf_value: Vec::new() };
        let mut rows: Vec<u32> = (0..n as u32).collect();
        // (node, start, end, depth); left children are popped first.
        let mut stack = vec![(0usize, 0usize, n, 0u32)];
        let mut candidates: Vec<usize> = Vec::with_capacity(features.len());
        while let Some((node, start, end, depth)) = stack.pop() {
            let here = &mut rows[start..end];
            let split = if here.len() > 1 && depth < max_depth {
                candidates.clear();
                candidates.extend(0..features.len());
                let mut found = None;
                while !candidates.is_empty() {
                    let pick = rng.random_range(0..candidates.len());
                    let j = candidates[pick];
                    let column = &columns[j * n..(j + 1) * n];
                    match finite_range(column, here) {
                        Some((lo, hi)) if hi > lo + FEATURE_THRESHOLD => {
                            let u: f64 = rng.random();
                            let t = f64::from(lo) + (f64::from(hi) - f64::from(lo)) * u;
                            let t = if t >= f64::from(hi) { f64::from(lo) } else { t };
                            found = Some((j, floor_f32(t)));
                            break;
                        }
                        _ => {
                            candidates.swap_remove(pick);
                        }
                    }
                }
                found
            } else {
                None
            };
            match split {
                Some((j, threshold)) => {
                    let column = &columns[j * n..(j + 1) * n];
                    // Stable-enough in-place partition: rows going left first.
                    let mut mid = 0;
                    for k in 0..here.len() {
                        if column[here[k] as usize] <= threshold {
                            here.swap(k, mid);
                            mid += 1;
                        }
                    }
                    let left = tree.feature.len();
                    tree.feature[node] = features[j];
                    tree.threshold[node] = threshold;
                    tree.child[node] = left as u32;
                    for _ in 0..2 {
                        tree.feature.push(LEAF);
                        tree.threshold.push(0.0);
                        tree.child.push(0);
                    }
                    stack.push((left + 1, start + mid, end, depth + 1));
                    stack.push((left, start, start + mid, depth + 1));
                }
                None => {
                    tree.child[node] = tree.leaf_value.len() as u32;
                    tree.leaf_value.push(f64::from(depth) + average_path_length(here.len()));
                }
            }
        }
        tree
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.feature.len()
    }

    /// Path length (depth + c(leaf size)) of the leaf `row` lands in.
    #[inline]
    pub fn path_length(&self, row: &[f32]) -> f64 {
        let mut node = 0usize;
        loop {
            let f = self.feature[node];
            if f == LEAF {
                return self.leaf_value[self.child[node] as usize];
            }
            let go_right = !(row[f as usize] <= self.threshold[node]);
            node = self.child[node] as usize + usize::from(go_right);
        }
    }

    /// Checks the structure of a tree read from outside: every child index points forward and
    /// in range, every feature is below `n_features`, every leaf value exists.
    pub(crate) fn validate(&self, n_features: usize) -> Result<(), String> {
        let n = self.feature.len();
        if n == 0 || self.threshold.len() != n || self.child.len() != n {
            return Err("tree arrays of different lengths".into());
        }
        for i in 0..n {
            let (f, c) = (self.feature[i], self.child[i] as usize);
            if f == LEAF {
                if c >= self.leaf_value.len() {
                    return Err(format!("node {i}: leaf value {c} out of range"));
                }
            } else if f as usize >= n_features || c <= i || c + 1 >= n {
                return Err(format!("node {i}: feature {f} or child {c} out of range"));
            }
        }
        Ok(())
    }

    /// Hand-built tree for tests: `nodes` as (feature or None for leaf, threshold, child).
    #[cfg(test)]
    pub(crate) fn from_parts(feature: Vec<u32>, threshold: Vec<f32>, child: Vec<u32>, leaf_value: Vec<f64>) -> Tree {
        Tree { feature, threshold, child, leaf_value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_f32_keeps_comparisons_exact() {
        for t in [0.1f64, 1.0 / 3.0, -2.7, 1e-30, 123456.789] {
            let r = floor_f32(t);
            assert!(f64::from(r) <= t);
            assert!(f64::from(r.next_up()) > t);
        }
    }
}
