//! Walking a block of rows through a complete implicit tree (heap order from 1: the children of
//! node `i` are `2i` when `x <= threshold` and `2i + 1` otherwise, NaN included; after `depth`
//! steps the row is at bottom slot `i − 2^depth`).
//!
//! The block is held column-major ([`Columns`]), as integer order keys ([`key`]), so the value
//! a lane reads is at `feature offset + lane` from one base pointer, and a split (feature offset
//! and threshold key) is one `u64`: a lane's only state is its node, a step is two integer
//! loads, a compare and an add, and fourteen lanes walk side by side in registers, their loads
//! overlapping ([`walk_lanes`]). On x86-64 the first three levels go the other way round: every
//! row of a group of 112 is compared with every node of the level, column against threshold as a
//! vector compare, and each row keeps the answer of the node it is at (`top_levels`); seven
//! vector compares replace three dependent steps. (Not measured elsewhere, so not used elsewhere.
//! Gathers were measured slower than the scalar walk on AMD Zen 4 and are not used at all.)
//!
//! Every path takes the same comparisons, so every path reaches the same leaf: scores do not
//! depend on the CPU, and the WASM component scores as the native host does.

/// Rows scored together: a block's columns (28 features × 224 rows = 24.5 KiB) stay in L1, beside
/// the tree being walked, while every tree walks them.
pub(crate) const BLOCK_ROWS: usize = 224;

/// Rows walked side by side (14 measured best of 8..16 here: 7 % faster than 16, whose nodes
/// spill more often from x86-64's sixteen registers).
const LANES: usize = 14;

/// Rows sent down the top levels together (a multiple of LANES and of AVX2's eight; 112 measured
/// best of 56..224).
const GROUP: usize = 112;

/// Levels walked group-wise on x86-64 (3 measured best of 2..5 here, with AVX2 and without).
#[cfg(target_arch = "x86_64")]
const TOP: u32 = 3;

/// Values of one feature in a [`Columns`] block: `BLOCK_ROWS` rounded up to whole groups, so
/// the last group reads padding, never past the block.
pub(crate) const STRIDE: usize = BLOCK_ROWS.div_ceil(GROUP) * GROUP;

const _: () = assert!(GROUP.is_multiple_of(LANES) && STRIDE.is_multiple_of(GROUP));

/// The order key of `v`: `key(a) <= key(b)` exactly when `a <= b` for a finite `b`, and NaN
/// has the largest key (it goes right of every split, as when the trees were built). Integer
/// compares are one cycle where float compares with a load take several.
pub(crate) fn key(v: f32) -> u32 {
    let bits = (v + 0.0).to_bits(); // −0 and +0 are one value to a split
    let flip = ((bits as i32 >> 31) as u32) | 1 << 31; // negatives: all bits; others: the sign
    if v.is_nan() { u32::MAX } else { bits ^ flip }
}

/// A split packed for the walk: the feature's offset in a [`Columns`] block in the low half,
/// the threshold's [`key`] in the high half (one load per step).
pub(crate) fn split(feature: u32, threshold: f32) -> u64 {
    u64::from(feature * STRIDE as u32) | u64::from(key(threshold)) << 32
}

/// A packed tree, borrowed for scoring.
pub(crate) struct Implicit<'a> {
    /// The [`split`] of internal node `i` at `split[i]`; slot 0 is unused.
    pub split: &'a [u64],
    /// Path length per bottom slot (2^depth of them).
    pub bottom: &'a [f64],
    /// Steps from the root to the bottom level.
    pub depth: u32,
    /// Largest feature index the tree splits on.
    pub max_feature: u32,
}

/// Up to [`BLOCK_ROWS`] rows, column-major, as [`key`]s, padded to [`STRIDE`] values per
/// feature.
pub(crate) struct Columns {
    values: Vec<u32>,
    rows: usize,
    cols: usize,
}

impl Columns {
    /// An empty block for rows `cols` wide.
    pub(crate) fn new(cols: usize) -> Columns {
        Columns { values: vec![0; cols * STRIDE], rows: 0, cols }
    }

    /// Fills the block with `rows` (row-major, `cols` wide, at most [`BLOCK_ROWS`] of them).
    pub(crate) fn load(&mut self, rows: &[f32]) {
        let n = rows.len() / self.cols.max(1);
        assert!(n <= BLOCK_ROWS && n * self.cols == rows.len(), "not a block of whole rows");
        for (f, column) in self.values.chunks_exact_mut(STRIDE).enumerate() {
            for (v, row) in column.iter_mut().zip(rows.chunks_exact(self.cols)) {
                *v = key(row[f]);
            }
        }
        self.rows = n;
    }

    /// The [`key`] of feature `f` of row `r`.
    pub(crate) fn key(&self, r: usize, f: u32) -> u32 {
        assert!(r < self.rows, "row outside the block");
        self.values[f as usize * STRIDE + r]
    }

    /// Rows in the block.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Features per row.
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }
}

/// Runs `each` on every block of [`BLOCK_ROWS`] rows of `x` (`cols` wide), loaded into a
/// [`Columns`], with the block's share of `out` (`per_row` items a row) and a scratch value
/// made by `scratch` once per thread; in parallel with the `parallel` feature. Scoring,
/// explaining and the contributions all walk the rows through this one driver.
pub(crate) fn for_each_block<T: Send, S>(
    x: &[f32],
    cols: usize,
    out: &mut [T],
    per_row: usize,
    scratch: impl Fn() -> S + Sync + Send,
    each: impl Fn(&mut S, &Columns, &mut [T]) + Sync + Send,
) {
    if per_row == 0 {
        return;
    }
    let run = |(block, s): &mut (Columns, S), (b, chunk): (usize, &mut [T])| {
        let first = b * BLOCK_ROWS;
        block.load(&x[first * cols..(first + chunk.len() / per_row) * cols]);
        each(s, block, chunk);
    };
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(BLOCK_ROWS * per_row).enumerate().for_each_init(|| (Columns::new(cols), scratch()), run);
    }
    #[cfg(not(feature = "parallel"))]
    {
        let mut state = (Columns::new(cols), scratch());
        out.chunks_mut(BLOCK_ROWS * per_row).enumerate().for_each(|c| run(&mut state, c));
    }
}

/// Walks rows `lane_base..lane_base + LANES` of the block `x` `steps` levels down from the
/// nodes `n`, side by side; returns the nodes they reach.
#[inline(always)]
fn walk_lanes(t: &Implicit<'_>, x: &[u32], lane_base: usize, mut n: [usize; LANES], steps: u32) -> [usize; LANES] {
    assert!(lane_base + LANES <= STRIDE, "lanes outside the block");
    let x = x[lane_base..].as_ptr();
    for _ in 0..steps {
        for (k, i) in n.iter_mut().enumerate() {
            // SAFETY: before each step `1 <= i < 2^depth = split.len()` (the caller starts
            // at level depth − steps); a feature offset is `f × STRIDE` with
            // `f <= max_feature < cols`, and `lane_base + k < STRIDE`, so the value read is
            // inside the block's `cols × STRIDE`.
            unsafe {
                let split = *t.split.get_unchecked(*i);
                let v = *x.add(split as u32 as usize + k);
                *i = child(*i, v > (split >> 32) as u32);
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

/// Sends the group of rows at `base` down the first [`TOP`] levels together: for each node of
/// a level every row of the group is compared (a vector compare over the column), and a row
/// takes the answer of the node it is at. Returns the node each row reaches.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn top_levels(t: &Implicit<'_>, x: &[u32], base: usize) -> [u32; GROUP] {
    let mut n = [1u32; GROUP];
    for level in 0..TOP {
        let mut right = [0u32; GROUP];
        for j in 1usize << level..2usize << level {
            let offset = t.split[j] as u32 as usize + base;
            let column: &[u32; GROUP] = x[offset..offset + GROUP].try_into().expect("a whole group");
            let thr = (t.split[j] >> 32) as u32;
            for ((r, &i), &v) in right.iter_mut().zip(&n).zip(column) {
                *r |= u32::from(i == j as u32) & u32::from(v > thr);
            }
        }
        for (i, r) in n.iter_mut().zip(right) {
            *i = 2 * *i + r;
        }
    }
    n
}

/// [`top_levels`] for any x86-64 (SSE). Kept out of line: inlined, it cost the walk registers.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn top_levels_sse(t: &Implicit<'_>, x: &[u32], base: usize) -> [u32; GROUP] {
    top_levels(t, x, base)
}

/// [`top_levels`] compiled for AVX2 (eight rows per compare instead of SSE's four).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn top_levels_avx2(t: &Implicit<'_>, x: &[u32], base: usize) -> [u32; GROUP] {
    top_levels(t, x, base)
}

/// Adds each row's path length to `acc` (one accumulator per row of `block`).
pub(crate) fn accumulate(t: &Implicit<'_>, block: &Columns, acc: &mut [f64]) {
    assert_eq!(acc.len(), block.rows, "rows and accumulators disagree");
    for_each_leaf(t, block, |r, slot| acc[r] += t.bottom[slot]);
}

/// Calls `at(row, slot)` with the bottom slot (an index of `bottom`) each row of `block` reaches.
#[inline(always)]
pub(crate) fn for_each_leaf(t: &Implicit<'_>, block: &Columns, mut at: impl FnMut(usize, usize)) {
    assert!(t.depth == 0 || (t.max_feature as usize) < block.cols, "a split feature is outside the rows");
    assert_eq!(t.bottom.len(), 1usize << t.depth, "not a complete tree");
    assert_eq!(t.split.len(), t.bottom.len(), "not a complete tree");
    let x = &block.values[..];
    let leaves = t.bottom.len();
    // The lanes of a group past the block's last row walk padding; they are not reported.
    let mut reached = |lane_base: usize, n: [usize; LANES]| {
        for (k, i) in n.into_iter().enumerate().take(block.rows.saturating_sub(lane_base)) {
            at(lane_base + k, i - leaves);
        }
    };
    #[cfg(target_arch = "x86_64")]
    if t.depth >= TOP {
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        for base in (0..block.rows).step_by(GROUP) {
            // SAFETY: AVX2 was detected.
            let top = if avx2 { unsafe { top_levels_avx2(t, x, base) } } else { top_levels_sse(t, x, base) };
            for (lane_base, start) in (base..block.rows).step_by(LANES).zip(top.chunks_exact(LANES)) {
                let start: [u32; LANES] = start.try_into().expect("LANES divides GROUP");
                reached(lane_base, walk_lanes(t, x, lane_base, start.map(|i| i as usize), t.depth - TOP));
            }
        }
        return;
    }
    for lane_base in (0..block.rows).step_by(LANES) {
        reached(lane_base, walk_lanes(t, x, lane_base, [1; LANES], t.depth));
    }
}
