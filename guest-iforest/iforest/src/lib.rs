//! Isolation Forest with scikit-learn's semantics, built for speed and determinism.
//!
//! One implementation, used natively by `sg-host` (multi-threaded with the `parallel` feature)
//! and compiled into the `guest-iforest` component, so both give identical scores.
//!
//! - `max_samples` `auto` = min(256, n), a count, or a fraction; height limit ⌈log2 ψ⌉.
//! - Each split draws a feature among those not constant in the node, then a threshold uniform
//!   in [min, max); `x <= threshold` goes left, NaN goes right.
//! - `score_samples = −2^(−mean path / c(ψ))`, path = depth + c(leaf size); `decision_function =
//!   score_samples − offset`; `predict` is −1 iff the decision is negative. `contamination`
//!   `auto` gives offset −0.5, a fraction the linear-interpolated percentile of training scores.
//! - Inputs are f32 (like scikit-learn); thresholds are stored as the largest f32 not above the
//!   float64 draw, so comparisons are exact. Subsampling is O(ψ); trees are flat arrays;
//!   scoring walks blocks of rows tree by tree. RNG (xoshiro256++) and `ln` (libm) make a seed
//!   give the same forest on every platform.

mod explain;
mod model;
mod path;
mod tree;
mod walk;

pub use explain::Contribution;
pub use model::{FORMAT, FORMAT_VERSION, Model, ModelError, SCORE_GRID};
pub use path::{EULER_GAMMA, average_path_length, percentile_linear};
pub use tree::Tree;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// A borrowed row-major f32 matrix.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    values: &'a [f32],
    rows: usize,
    cols: usize,
}

impl<'a> Matrix<'a> {
    /// Wraps `values` as `rows × cols`, row-major.
    pub fn new(values: &'a [f32], rows: usize, cols: usize) -> Result<Self, ModelError> {
        if rows.checked_mul(cols) != Some(values.len()) {
            return Err(ModelError::Shape { rows, cols, values: values.len() });
        }
        Ok(Matrix { values, rows, cols })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &'a [f32] {
        &self.values[r * self.cols..(r + 1) * self.cols]
    }

    /// All values, row-major.
    pub fn values(&self) -> &'a [f32] {
        self.values
    }

    fn get(&self, r: usize, c: usize) -> f32 {
        self.values[r * self.cols + c]
    }
}

/// scikit-learn's `max_samples`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxSamples {
    /// min(256, n).
    Auto,
    /// An absolute count, at most n.
    Count(usize),
    /// A fraction of n in (0, 1].
    Fraction(f64),
}

/// scikit-learn's `contamination`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contamination {
    /// Offset −0.5 (the original paper's threshold).
    Auto,
    /// The expected share of anomalies in (0, 0.5].
    Fraction(f64),
}

/// Isolation Forest parameters (scikit-learn's names and defaults, as the reference job used).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Number of trees.
    pub n_estimators: usize,
    /// Subsample size per tree.
    pub max_samples: MaxSamples,
    /// Fraction of features each tree may split on, in (0, 1].
    pub max_features: f64,
    /// Threshold rule.
    pub contamination: Contamination,
    /// Seed.
    pub random_state: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            n_estimators: 100,
            max_samples: MaxSamples::Auto,
            max_features: 1.0,
            contamination: Contamination::Fraction(0.1),
            random_state: 42,
        }
    }
}

impl Params {
    /// ψ for a training set of `n` rows.
    pub fn subsample_size(&self, n: usize) -> Result<usize, ModelError> {
        let psi = match self.max_samples {
            MaxSamples::Auto => n.min(256),
            MaxSamples::Count(k) if k >= 1 => k.min(n),
            MaxSamples::Fraction(f) if f > 0.0 && f <= 1.0 => ((f * n as f64) as usize).max(1),
            other => return Err(ModelError::Param(format!("max_samples {other:?} must be ≥ 1 or in (0, 1]"))),
        };
        Ok(psi)
    }

    fn validate(&self) -> Result<(), ModelError> {
        if self.n_estimators == 0 {
            return Err(ModelError::Param("n_estimators must be ≥ 1".into()));
        }
        if !(self.max_features > 0.0 && self.max_features <= 1.0) {
            return Err(ModelError::Param(format!("max_features {} must be in (0, 1]", self.max_features)));
        }
        if let Contamination::Fraction(c) = self.contamination
            && !(c > 0.0 && c <= 0.5)
        {
            return Err(ModelError::Param(format!("contamination {c} must be in (0, 0.5]")));
        }
        Ok(())
    }
}

/// Draws `k` distinct values of `0..n` in O(k) expected time (rand's Floyd / rejection).
fn sample_indices(rng: &mut impl Rng, n: usize, k: usize) -> Vec<usize> {
    rand::seq::index::sample(rng, n, k).into_vec()
}

/// Trains a forest on `x` (columns named `feature_names`) and sets its offset.
pub fn fit(x: &Matrix<'_>, feature_names: &[String], params: &Params) -> Result<Model, ModelError> {
    fit_inner(x, feature_names, params)
}

fn fit_inner(x: &Matrix<'_>, feature_names: &[String], params: &Params) -> Result<Model, ModelError> {
    params.validate()?;
    if x.rows() == 0 {
        return Err(ModelError::Param("cannot train on zero rows".into()));
    }
    if feature_names.len() != x.cols() {
        return Err(ModelError::Shape { rows: x.rows(), cols: feature_names.len(), values: x.values.len() });
    }
    let psi = params.subsample_size(x.rows())?;
    let max_depth = (psi.max(2) as f64).log2().ceil() as u32;
    let n_tree_features = ((params.max_features * x.cols() as f64) as usize).clamp(1, x.cols().max(1));
    let mut master = Xoshiro256PlusPlus::seed_from_u64(params.random_state);
    let seeds: Vec<u64> = (0..params.n_estimators).map(|_| master.next_u64()).collect();
    let build = |&seed: &u64| {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut features: Vec<u32> = if n_tree_features == x.cols() {
            (0..x.cols() as u32).collect()
        } else {
            sample_indices(&mut rng, x.cols(), n_tree_features).into_iter().map(|f| f as u32).collect()
        };
        features.sort_unstable();
        let sample = sample_indices(&mut rng, x.rows(), psi);
        Tree::build(x, &sample, &features, max_depth, &mut rng)
    };
    #[cfg(feature = "parallel")]
    let trees: Vec<Tree> = {
        use rayon::prelude::*;
        seeds.par_iter().map(build).collect()
    };
    #[cfg(not(feature = "parallel"))]
    let trees: Vec<Tree> = seeds.iter().map(build).collect();

    let mut model = Model::new(*params, feature_names.to_vec(), x.rows(), psi, trees);
    let mut scores = model.score_samples(x)?;
    if let Contamination::Fraction(c) = params.contamination {
        model.set_offset(percentile_linear(&mut scores, 100.0 * c));
    }
    model.set_baseline(medians(x), &mut scores);
    Ok(model)
}

/// Per column, numpy's `nanmedian` (`None` for a column of NaN only).
fn medians(x: &Matrix<'_>) -> Vec<Option<f64>> {
    let mut column = Vec::with_capacity(x.rows());
    (0..x.cols())
        .map(|c| {
            column.clear();
            column.extend((0..x.rows()).map(|r| f64::from(x.get(r, c))).filter(|v| !v.is_nan()));
            let n = column.len();
            if n == 0 {
                return None;
            }
            // The middle of the column in order, found by selection (linear) rather than sorting.
            let (below, &mut middle, _) = column.select_nth_unstable_by(n / 2, f64::total_cmp);
            Some(match n % 2 {
                1 => middle,
                _ => (below.iter().copied().max_by(f64::total_cmp).expect("n ≥ 2") + middle) / 2.0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
