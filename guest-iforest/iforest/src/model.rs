//! The trained model: a versioned, self-describing artefact, and scoring.

use serde::{Deserialize, Serialize};

use crate::path::average_path_length;
use crate::walk::{BLOCK_ROWS, Columns};
use crate::{Matrix, Params, Tree};

/// Name of the artefact format, stored in every model.
pub const FORMAT: &str = "sg-iforest";
/// Version of the artefact format; a model of another version is refused.
pub const FORMAT_VERSION: u32 = 1;

/// Why training, loading or scoring failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// A parameter out of range.
    Param(String),
    /// Matrix dimensions that do not add up.
    Shape {
        /// Rows claimed.
        rows: usize,
        /// Columns claimed.
        cols: usize,
        /// Values given.
        values: usize,
    },
    /// Features other than those the model was trained on.
    Features {
        /// Names the model was trained on.
        expected: Vec<String>,
        /// Names given.
        got: Vec<String>,
    },
    /// An artefact that is not a valid model of this format version.
    Artefact(String),
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::Param(m) => write!(f, "invalid parameter: {m}"),
            ModelError::Shape { rows, cols, values } => {
                write!(f, "matrix of {rows} rows × {cols} columns cannot hold {values} values")
            }
            ModelError::Features { expected, got } => write!(
                f,
                "the model was trained on {} features [{}] but the input has {} [{}]",
                expected.len(),
                expected.join(", "),
                got.len(),
                got.join(", ")
            ),
            ModelError::Artefact(m) => write!(f, "not a usable {FORMAT} model: {m}"),
        }
    }
}

impl std::error::Error for ModelError {}

/// Most trees a model artefact may hold.
pub const MAX_TREES: usize = 10_000;
/// Largest subsample size ψ a model artefact may declare.
pub const MAX_SUBSAMPLE: usize = 1 << 20;
/// Most features a model artefact may name.
pub const MAX_FEATURES: usize = 4_096;

/// A trained Isolation Forest with everything needed to score new data without retraining.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Always [`FORMAT`].
    format: String,
    /// Always [`FORMAT_VERSION`] when written by this build.
    format_version: u32,
    /// Training parameters.
    params: Params,
    /// Input columns, in order.
    feature_names: Vec<String>,
    /// Rows in the training set.
    n_train: usize,
    /// Subsample size ψ actually used.
    max_samples: usize,
    /// `decision_function = score_samples − offset`.
    offset: f64,
    /// The forest.
    trees: Vec<Tree>,
}

impl Model {
    pub(crate) fn new(params: Params, feature_names: Vec<String>, n_train: usize, max_samples: usize, trees: Vec<Tree>) -> Self {
        Model {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            params,
            feature_names,
            n_train,
            max_samples,
            offset: -0.5,
            trees,
        }
    }

    pub(crate) fn set_offset(&mut self, offset: f64) {
        self.offset = offset;
    }

    /// Training parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Names of the input columns, in order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Rows in the training set.
    pub fn n_train(&self) -> usize {
        self.n_train
    }

    /// Subsample size ψ.
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }

    /// The threshold: `decision_function = score_samples − offset`.
    pub fn offset(&self) -> f64 {
        self.offset
    }

    /// The trees.
    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }

    /// Refuses input columns other than those the model was trained on.
    pub fn check_features(&self, names: &[String]) -> Result<(), ModelError> {
        if names != self.feature_names.as_slice() {
            return Err(ModelError::Features { expected: self.feature_names.clone(), got: names.to_vec() });
        }
        Ok(())
    }

    /// The artefact as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a model always serializes")
    }

    /// Reads and validates an artefact (written by anyone: every count is capped, every tree
    /// checked as one grown on the declared subsample; see `Tree::validate`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            format_version: u32,
        }
        let header: Header = serde_json::from_slice(bytes).map_err(|e| ModelError::Artefact(e.to_string()))?;
        if header.format != FORMAT {
            return Err(ModelError::Artefact(format!("format is {:?}, expected {FORMAT:?}", header.format)));
        }
        if header.format_version != FORMAT_VERSION {
            return Err(ModelError::Artefact(format!(
                "format version {} is not the version this build reads ({FORMAT_VERSION})",
                header.format_version
            )));
        }
        let mut model: Model = serde_json::from_slice(bytes).map_err(|e| ModelError::Artefact(e.to_string()))?;
        if model.trees.is_empty() || model.max_samples == 0 {
            return Err(ModelError::Artefact("no trees or zero subsample size".into()));
        }
        let (trees, psi, features) = (model.trees.len(), model.max_samples, model.feature_names.len());
        if trees > MAX_TREES || psi > MAX_SUBSAMPLE || features > MAX_FEATURES {
            return Err(ModelError::Artefact(format!(
                "{trees} trees, subsample {psi}, {features} features: the limits are {MAX_TREES}, {MAX_SUBSAMPLE}, {MAX_FEATURES}"
            )));
        }
        for (i, t) in model.trees.iter_mut().enumerate() {
            t.validate(features, psi).map_err(|e| ModelError::Artefact(format!("tree {i}: {e}")))?;
            t.pack();
        }
        Ok(model)
    }

    /// scikit-learn's `score_samples`: −2^(−mean path length / c(ψ)); lower is more anomalous.
    pub fn score_samples(&self, x: &Matrix<'_>) -> Result<Vec<f64>, ModelError> {
        if x.cols() != self.feature_names.len() {
            return Err(ModelError::Features {
                expected: self.feature_names.clone(),
                got: (0..x.cols()).map(|i| format!("column {i}")).collect(),
            });
        }
        let mut out = vec![0f64; x.rows()];
        let norm = self.trees.len() as f64 * average_path_length(self.max_samples);
        let cols = x.cols();
        let score_block = |block: &mut Columns, (b, chunk): (usize, &mut [f64])| {
            let first = b * BLOCK_ROWS;
            block.load(&x.values()[first * cols..(first + chunk.len()) * cols]);
            for tree in &self.trees {
                tree.accumulate(block, chunk);
            }
            for acc in chunk.iter_mut() {
                *acc = -libm::exp2(-*acc / norm);
            }
        };
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            out.par_chunks_mut(BLOCK_ROWS).enumerate().for_each_init(|| Columns::new(cols), score_block);
        }
        #[cfg(not(feature = "parallel"))]
        {
            let mut block = Columns::new(cols);
            out.chunks_mut(BLOCK_ROWS).enumerate().for_each(|c| score_block(&mut block, c));
        }
        Ok(out)
    }

    /// `score_samples − offset`: negative for outliers.
    pub fn decision_function(&self, x: &Matrix<'_>) -> Result<Vec<f64>, ModelError> {
        let mut s = self.score_samples(x)?;
        s.iter_mut().for_each(|v| *v -= self.offset);
        Ok(s)
    }

    /// −1 for outliers (decision < 0), 1 for inliers.
    pub fn predict(&self, x: &Matrix<'_>) -> Result<Vec<i8>, ModelError> {
        Ok(self.decision_function(x)?.into_iter().map(|d| if d < 0.0 { -1 } else { 1 }).collect())
    }

    /// Whether a `score_samples` value is an outlier under this model.
    pub fn is_outlier(&self, score: f64) -> bool {
        score - self.offset < 0.0
    }
}
