//! Walking a block of rows through a complete implicit tree (heap order from 1: the children of
//! node `i` are `2i` when `x <= threshold` and `2i + 1` otherwise, NaN included; after `depth`
//! steps the row is at bottom slot `i − 2^depth`). The block is held column-major
//! ([`Columns`]), so the value a lane reads is at `feature offset + lane` from one base pointer:
//! the only state per lane is its node index, and twelve lanes walk side by side in registers,
//! their loads overlapping. (An AVX2 gather version was measured at 41 ms against a scalar
//! 33 ms per 100k × 28 × 100 trees on AMD Zen 4, whose gathers are slow; it is not kept.)

// `!(x <= threshold)`, not `x > threshold`: NaN must go right, as when the trees were built.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

/// Rows scored together: a block's columns (28 features × 256 rows = 28 KiB) stay in L1 while
/// every tree walks them.
pub(crate) const BLOCK_ROWS: usize = 256;

/// Rows walked side by side (12 measured best of 4..32 here).
const LANES: usize = 16;

/// Values of one feature in a [`Columns`] block: `BLOCK_ROWS` rounded up to whole lane groups,
/// so the last group reads padding, never past the block.
pub(crate) const STRIDE: usize = BLOCK_ROWS.div_ceil(LANES) * LANES;

/// A packed tree, borrowed for scoring.
pub(crate) struct Implicit<'a> {
    /// Split feature of internal node `i` at `feature[i]`, as its offset in a [`Columns`]
    /// block (`feature × STRIDE`); slot 0 is unused.
    pub feature: &'a [u32],
    /// Split threshold of internal node `i` at `threshold[i]`; slot 0 is unused.
    pub threshold: &'a [f32],
    /// Path length per bottom slot (2^depth of them).
    pub bottom: &'a [f64],
    /// Steps from the root to the bottom level.
    pub depth: u32,
    /// Largest feature index the tree splits on.
    pub max_feature: u32,
}

/// Up to [`BLOCK_ROWS`] rows, column-major, padded to [`STRIDE`] values per feature.
pub(crate) struct Columns {
    values: Vec<f32>,
    rows: usize,
    cols: usize,
}

impl Columns {
    /// An empty block for rows `cols` wide.
    pub(crate) fn new(cols: usize) -> Columns {
        Columns { values: vec![0.0; cols * STRIDE], rows: 0, cols }
    }

    /// Fills the block with `rows` (row-major, `cols` wide, at most [`BLOCK_ROWS`] of them).
    pub(crate) fn load(&mut self, rows: &[f32]) {
        let n = rows.len() / self.cols.max(1);
        assert!(n <= BLOCK_ROWS && n * self.cols == rows.len(), "not a block of whole rows");
        for (f, column) in self.values.chunks_exact_mut(STRIDE).enumerate() {
            for (v, row) in column.iter_mut().zip(rows.chunks_exact(self.cols)) {
                *v = row[f];
            }
        }
        self.rows = n;
    }

    /// Feature `f` of row `r`.
    pub(crate) fn value(&self, r: usize, f: u32) -> f32 {
        assert!(r < self.rows, "row outside the block");
        self.values[f as usize * STRIDE + r]
    }

    /// Rows in the block.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }
}

/// The offset in a [`Columns`] block of feature `f`'s values.
pub(crate) fn feature_offset(f: u32) -> u32 {
    f * STRIDE as u32
}

/// Walks rows `lane_base..lane_base + LANES` of the block `x` `steps` levels down from the
/// nodes `n`, side by side; returns the nodes they reach.
#[inline(always)]
fn walk_lanes(t: &Implicit<'_>, x: &[f32], lane_base: usize, mut n: [usize; LANES], steps: u32) -> [usize; LANES] {
    assert!(lane_base + LANES <= STRIDE, "lanes outside the block");
    let x = x[lane_base..].as_ptr();
    for _ in 0..steps {
        for (k, i) in n.iter_mut().enumerate() {
            // SAFETY: before each step `1 <= i < 2^depth = feature.len()` (the caller starts
            // at level depth − steps); a feature offset is `f × STRIDE` with
            // `f <= max_feature < cols`, and `lane_base + k < STRIDE` (whole groups from 0
            // below BLOCK_ROWS <= STRIDE), so the value read is inside the block.
            unsafe {
                let (f, thr) = (*t.feature.get_unchecked(*i), *t.threshold.get_unchecked(*i));
                let v = *x.add(f as usize + k);
                *i = child(*i, !(v <= thr));
            }
        }
    }
    n
}

/// The child of node `i` (heap order from 1): `2i + right`. On x86-64 an add-with-carry, so
/// the compare's carry flag feeds it directly (one instruction instead of set, zero and add).
#[inline(always)]
fn child(i: usize, right: bool) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let mut out = 0u64;
        let _ = std::arch::x86_64::_addcarry_u64(u8::from(right), i as u64, i as u64, &mut out);
        out as usize
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        2 * i + usize::from(right)
    }
}

/// Adds each row's path length to `acc` (one accumulator per row of `block`).
pub(crate) fn accumulate(t: &Implicit<'_>, block: &Columns, acc: &mut [f64]) {
    assert_eq!(acc.len(), block.rows, "rows and accumulators disagree");
    assert!(t.depth == 0 || (t.max_feature as usize) < block.cols, "a split feature is outside the rows");
    assert_eq!(t.bottom.len(), 1usize << t.depth, "not a complete tree");
    assert_eq!(t.feature.len(), t.bottom.len(), "not a complete tree");
    assert_eq!(t.feature.len(), t.threshold.len(), "not a complete tree");
    let leaves = t.bottom.len();
    for base in (0..block.rows).step_by(LANES) {
        let n = walk_lanes(t, &block.values, base, [1; LANES], t.depth);
        let live = (block.rows - base).min(LANES);
        for (a, i) in acc[base..base + live].iter_mut().zip(n) {
            *a += t.bottom[i - leaves];
        }
    }
}
