//! The trained model: a versioned, self-describing artefact, and scoring.

use serde::{Deserialize, Serialize};

use crate::path::{average_path_length, percentile_of_sorted};
use crate::walk::for_each_block;
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
    /// Per feature, the median over the training rows (NaN ignored; `None` when every value
    /// was NaN): what an explanation calls typical. Empty in artefacts written before it.
    #[serde(default)]
    typical: Vec<Option<f64>>,
    /// The training rows' `score_samples` at the quantiles 0, 1/[`SCORE_GRID`], …, 1: the
    /// baseline an alert threshold is calibrated on. Empty in artefacts written before it.
    #[serde(default)]
    training_scores: Vec<f64>,
    /// Event-time span, ms, of what the model was trained on (a stream window's length, or a
    /// bounded input's first to last event): count features scale with it, so a baseline is
    /// only meant for windows of this length. Absent when the trainer did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trained_span_ms: Option<i64>,
}

/// Steps of the training score distribution a model keeps (0.05 % each).
pub const SCORE_GRID: usize = 2000;

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
            typical: Vec::new(),
            training_scores: Vec::new(),
            trained_span_ms: None,
        }
    }

    /// Records the event-time span, ms, of the rows the model was trained on.
    pub fn set_trained_span_ms(&mut self, span_ms: i64) {
        self.trained_span_ms = Some(span_ms.max(0));
    }

    /// The event-time span, ms, of the rows the model was trained on, when the trainer said.
    pub fn trained_span_ms(&self) -> Option<i64> {
        self.trained_span_ms
    }

    /// Records the baseline: the training rows' medians and their scores' distribution.
    pub(crate) fn set_baseline(&mut self, typical: Vec<Option<f64>>, scores: &mut [f64]) {
        self.typical = typical;
        scores.sort_unstable_by(f64::total_cmp);
        self.training_scores = (0..=SCORE_GRID).map(|i| percentile_of_sorted(scores, 100.0 * i as f64 / SCORE_GRID as f64)).collect();
    }

    /// Per feature, the median over the training rows (empty for an artefact without it).
    pub fn typical(&self) -> &[Option<f64>] {
        &self.typical
    }

    /// The `score_samples` value that a share `rate` of the training rows fall below (so a row
    /// scoring below it is as rare as `rate` on data like the training set); `None` for an
    /// artefact without a training distribution.
    pub fn score_at_rate(&self, rate: f64) -> Option<f64> {
        let grid = &self.training_scores;
        if grid.len() < 2 || !(0.0..=1.0).contains(&rate) {
            return None;
        }
        let at = rate * (grid.len() - 1) as f64;
        let lo = (libm::floor(at) as usize).min(grid.len() - 2);
        let t = at - lo as f64;
        Some(grid[lo] + (grid[lo + 1] - grid[lo]) * t)
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
        if !model.typical.is_empty() && model.typical.len() != features {
            return Err(ModelError::Artefact(format!("{} typical values for {features} features", model.typical.len())));
        }
        let scores = &model.training_scores;
        if !(scores.is_empty() || scores.len() == SCORE_GRID + 1)
            || scores.iter().any(|s| !s.is_finite())
            || scores.windows(2).any(|w| w[0] > w[1])
        {
            return Err(ModelError::Artefact(format!(
                "the training score distribution must be {} finite, ascending values",
                SCORE_GRID + 1
            )));
        }
        if model.trained_span_ms.is_some_and(|ms| ms < 0) {
            return Err(ModelError::Artefact("a negative training span".into()));
        }
        for (i, t) in model.trees.iter_mut().enumerate() {
            t.validate(features, psi).map_err(|e| ModelError::Artefact(format!("tree {i}: {e}")))?;
            t.pack();
        }
        Ok(model)
    }

    /// The number of model inputs, when `x` has that many columns.
    pub(crate) fn inputs_of(&self, x: &Matrix<'_>) -> Result<usize, ModelError> {
        let cols = self.feature_names().len();
        if x.cols() != cols {
            return Err(ModelError::Features {
                expected: self.feature_names().to_vec(),
                got: (0..x.cols()).map(|i| format!("column {i}")).collect(),
            });
        }
        Ok(cols)
    }

    /// scikit-learn's `score_samples`: −2^(−mean path length / c(ψ)); lower is more anomalous.
    pub fn score_samples(&self, x: &Matrix<'_>) -> Result<Vec<f64>, ModelError> {
        self.inputs_of(x)?;
        let mut out = vec![0f64; x.rows()];
        let norm = self.trees.len() as f64 * average_path_length(self.max_samples);
        for_each_block(x.values(), x.cols(), &mut out, 1, || (), |_, block, chunk| {
            for tree in &self.trees {
                tree.accumulate(block, chunk);
            }
            for acc in chunk.iter_mut() {
                *acc = -libm::exp2(-*acc / norm);
            }
        });
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
