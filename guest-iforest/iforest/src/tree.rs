//! One isolation tree: built on a subsample, stored as a flat node array.

// `!(x <= threshold)`, not `x > threshold`: NaN must go right, as when the trees were built.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::Matrix;
use crate::path::average_path_length;
use crate::walk::{self, Columns, Implicit};

/// scikit-learn's `FEATURE_THRESHOLD`: a feature whose range is within this is constant.
const FEATURE_THRESHOLD: f32 = 1e-7;

/// A flat isolation tree. Node `i` sends `x` to `left[i]` when `x[feature[i]] <= threshold[i]`
/// and to `right[i]` otherwise (NaN included). A leaf points to itself on both sides, so every
/// row can walk exactly `depth` steps without a branch on "is this a leaf"; `value[i]` is the
/// leaf's path length, depth + c(training samples in the leaf), precomputed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    feature: Vec<u32>,
    threshold: Vec<f32>,
    left: Vec<u32>,
    right: Vec<u32>,
    value: Vec<f64>,
    /// Depth of the deepest leaf.
    depth: u32,
    /// The layout the scoring loop walks (rebuilt by [`Tree::pack`], not serialized).
    #[serde(skip)]
    layout: Layout,
    /// Largest feature index any node reads (set by [`Tree::pack`]).
    #[serde(skip)]
    max_feature: u32,
}

/// Trees up to this depth are scored as complete implicit trees (2^depth leaves).
const IMPLICIT_MAX_DEPTH: u32 = 12;

/// How scoring walks a tree.
#[derive(Clone, Debug, Default, PartialEq)]
enum Layout {
    /// Not packed yet.
    #[default]
    Unpacked,
    /// Complete binary tree in heap order from 1: the children of `i` are `2i` (x <= threshold)
    /// and `2i + 1`; a leaf shallower than the tree is repeated down to the bottom level, so
    /// every walk is `depth` steps with no leaf test, and `bottom[i − 2^depth]` is the answer.
    /// Each split is one `u64` (see [`walk::split`]): feature offset and threshold key.
    /// `leaf[i − 2^depth]` is the leaf node a bottom slot stands for.
    Implicit { split: Vec<u64>, bottom: Vec<f64>, leaf: Vec<u32> },
    /// Linked nodes (deep trees, where 2^depth would be too large).
    Linked(Vec<Node>),
}

/// One node as the scoring loop reads it: 16 bytes, one load per step.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Node {
    feature: u32,
    /// The threshold's [`walk::key`] (rows are walked as keys).
    key: u32,
    left: u32,
    right: u32,
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
        let mut tree = Tree::default_root();
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
                    let left = tree.push_leaf();
                    let right = tree.push_leaf();
                    tree.feature[node] = features[j];
                    tree.threshold[node] = threshold;
                    tree.left[node] = left;
                    tree.right[node] = right;
                    stack.push((right as usize, start + mid, end, depth + 1));
                    stack.push((left as usize, start, start + mid, depth + 1));
                }
                None => {
                    tree.value[node] = f64::from(depth) + average_path_length(here.len());
                    tree.depth = tree.depth.max(depth);
                }
            }
        }
        tree.pack();
        tree
    }

    fn default_root() -> Tree {
        let mut t = Tree {
            feature: vec![],
            threshold: vec![],
            left: vec![],
            right: vec![],
            value: vec![],
            depth: 0,
            layout: Layout::Unpacked,
            max_feature: 0,
        };
        t.push_leaf();
        t
    }

    /// Appends a leaf (pointing to itself) and returns its index.
    fn push_leaf(&mut self) -> u32 {
        let i = self.feature.len() as u32;
        self.feature.push(0);
        self.threshold.push(0.0);
        self.left.push(i);
        self.right.push(i);
        self.value.push(0.0);
        i
    }

    /// Builds the scoring layout (after building, or after validating a loaded tree).
    pub(crate) fn pack(&mut self) {
        let n = self.feature.len();
        assert!(
            (0..n).all(|i| (self.left[i] as usize) < n && (self.right[i] as usize) < n),
            "pack() on an unvalidated tree"
        );
        self.max_feature = self.feature.iter().copied().max().unwrap_or(0);
        self.layout = if self.depth <= IMPLICIT_MAX_DEPTH {
            let slots = 1usize << self.depth;
            let mut split = vec![0u64; slots];
            let mut bottom = vec![0.0; slots];
            let mut leaf = vec![0u32; slots];
            // (node, position in heap order from 1, level)
            let mut stack = vec![(0usize, 1usize, 0u32)];
            while let Some((node, pos, level)) = stack.pop() {
                if level == self.depth {
                    bottom[pos - slots] = self.value[node];
                    leaf[pos - slots] = node as u32;
                    continue;
                }
                let leaf = self.left[node] as usize == node;
                if !leaf {
                    split[pos] = walk::split(self.feature[node], self.threshold[node]);
                }
                stack.push((self.left[node] as usize, 2 * pos, level + 1));
                stack.push((self.right[node] as usize, 2 * pos + 1, level + 1));
            }
            Layout::Implicit { split, bottom, leaf }
        } else {
            Layout::Linked(
                (0..n)
                    .map(|i| Node {
                        feature: self.feature[i],
                        key: walk::key(self.threshold[i]),
                        left: self.left[i],
                        right: self.right[i],
                    })
                    .collect(),
            )
        };
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.feature.len()
    }

    /// Path length (depth + c(leaf size)) of the leaf `row` lands in.
    pub fn path_length(&self, row: &[f32]) -> f64 {
        let mut n = 0usize;
        for _ in 0..self.depth {
            n = if row[self.feature[n] as usize] <= self.threshold[n] { self.left[n] } else { self.right[n] } as usize;
        }
        self.value[n]
    }

    /// Calls `at(row, leaf node)` for each row of `block`, walked as scoring walks it.
    pub(crate) fn for_each_leaf(&self, block: &Columns, mut at: impl FnMut(usize, usize)) {
        match &self.layout {
            Layout::Implicit { split, bottom, leaf } => {
                let t = Implicit { split, bottom, depth: self.depth, max_feature: self.max_feature };
                walk::for_each_leaf(&t, block, |r, slot| at(r, leaf[slot] as usize));
            }
            Layout::Linked(nodes) => {
                for r in 0..block.rows() {
                    let mut n = 0usize;
                    for _ in 0..self.depth {
                        let node = nodes[n];
                        n = if block.key(r, node.feature) <= node.key { node.left } else { node.right } as usize;
                    }
                    at(r, n);
                }
            }
            Layout::Unpacked => unreachable!("trees are packed when built or loaded"),
        }
    }

    /// Calls `visit(leaf, path length, split features on the way)` for every leaf.
    pub(crate) fn leaves(&self, mut visit: impl FnMut(usize, f64, &[u32])) {
        let mut path: Vec<u32> = Vec::with_capacity(self.depth as usize);
        // (node, splits above it)
        let mut stack = vec![(0usize, 0usize)];
        while let Some((n, above)) = stack.pop() {
            path.truncate(above);
            if self.left[n] as usize == n {
                visit(n, self.value[n], &path);
                continue;
            }
            path.push(self.feature[n]);
            stack.push((self.right[n] as usize, above + 1));
            stack.push((self.left[n] as usize, above + 1));
        }
    }

    /// Adds the path length of each row of `block` to `acc`.
    pub(crate) fn accumulate(&self, block: &Columns, acc: &mut [f64]) {
        match &self.layout {
            Layout::Implicit { split, bottom, .. } => {
                let t = Implicit { split, bottom, depth: self.depth, max_feature: self.max_feature };
                walk::accumulate(&t, block, acc);
            }
            _ => {
                assert_eq!(acc.len(), block.rows(), "rows and accumulators disagree");
                self.for_each_leaf(block, |r, n| acc[r] += self.value[n]);
            }
        }
    }

    /// Checks a tree read from outside, as one grown on a subsample of `psi` rows would be:
    /// arrays of one length, at most 2ψ − 1 nodes, children in range and after their parent (no
    /// cycles but leaves' self-loops), features in range, finite thresholds and path lengths,
    /// and a declared `depth` of at most ⌈log2 ψ⌉ that is the depth of its deepest leaf (every
    /// walk is `depth` steps: a forged depth would make scoring loop).
    pub(crate) fn validate(&self, n_features: usize, psi: usize) -> Result<(), String> {
        let n = self.feature.len();
        if n == 0 || [self.threshold.len(), self.left.len(), self.right.len(), self.value.len()] != [n; 4] {
            return Err("tree arrays of different lengths".into());
        }
        let max_nodes = psi.max(1).saturating_mul(2) - 1;
        if n > max_nodes {
            return Err(format!("{n} nodes, more than 2ψ − 1 = {max_nodes} for a subsample of {psi}"));
        }
        let max_depth = (psi.max(2) as f64).log2().ceil() as u32;
        if self.depth > max_depth {
            return Err(format!("depth {} is more than ⌈log2 ψ⌉ = {max_depth}", self.depth));
        }
        let mut deepest = 0;
        let mut depth = vec![0u32; n];
        for i in 0..n {
            let (f, l, r) = (self.feature[i] as usize, self.left[i] as usize, self.right[i] as usize);
            let leaf = l == i && r == i;
            if f >= n_features.max(1) || (!leaf && (l <= i || r <= i || l >= n || r >= n)) {
                return Err(format!("node {i}: feature {f} or children {l}, {r} out of range"));
            }
            if leaf {
                deepest = deepest.max(depth[i]);
                if depth[i] > self.depth {
                    return Err(format!("leaf {i} at depth {} below the tree depth {}", depth[i], self.depth));
                }
                if !self.value[i].is_finite() {
                    return Err(format!("leaf {i}: path length is not finite"));
                }
            } else {
                if !self.threshold[i].is_finite() {
                    return Err(format!("node {i}: threshold is not finite"));
                }
                depth[l] = depth[i] + 1;
                depth[r] = depth[i] + 1;
            }
        }
        if deepest != self.depth {
            return Err(format!("declared depth {} but the deepest leaf is at {deepest}", self.depth));
        }
        Ok(())
    }

    /// Hand-built tree for tests.
    #[cfg(test)]
    pub(crate) fn from_parts(
        feature: Vec<u32>,
        threshold: Vec<f32>,
        left: Vec<u32>,
        right: Vec<u32>,
        value: Vec<f64>,
        depth: u32,
    ) -> Tree {
        let mut t = Tree { feature, threshold, left, right, value, depth, layout: Layout::Unpacked, max_feature: 0 };
        t.pack();
        t
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
