//! The detector step: Isolation Forest natively (default, multi-threaded) or in a component.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use sg_iforest::{Matrix, Model, Params};

use crate::component::ComponentSource;
use crate::component::detector::DetectorComponent;
use crate::lineage::{ComponentLineage, DetectorLineage};
use crate::runtime::Runtime;

/// Where the Isolation Forest runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetectorChoice {
    /// `sg-iforest` linked into the host.
    Native,
    /// A `streamguard:detector` component.
    Component(ComponentSource),
}

impl DetectorChoice {
    /// Parses `--detector`: `native`, `builtin:iforest`, or a component path.
    pub fn parse(spec: &str) -> Result<DetectorChoice> {
        Ok(match spec {
            "native" => DetectorChoice::Native,
            other => DetectorChoice::Component(ComponentSource::parse(other)?),
        })
    }
}

/// Train a new model, or score with a saved one.
#[derive(Clone, Debug)]
pub enum ModelSource {
    /// Train with these parameters.
    Train(Params),
    /// Load a model artefact.
    Load(PathBuf),
}

/// What a detector run produced.
pub struct Detection {
    /// scikit-learn's `score_samples` per row.
    pub score_samples: Vec<f64>,
    /// `decision_function = score_samples − offset`.
    pub offset: f64,
    /// The model artefact (for `--save-model`).
    pub model_bytes: Vec<u8>,
    /// What to record.
    pub lineage: DetectorLineage,
    /// Seconds spent training (0 when a model was loaded); includes the offset's scoring pass
    /// when contamination is a fraction, as in scikit-learn.
    pub fit_seconds: f64,
    /// Seconds spent scoring the rows.
    pub score_seconds: f64,
}

fn read_model(path: &Path) -> Result<(Model, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    let model = Model::from_bytes(&bytes).with_context(|| format!("loading model {}", path.display()))?;
    Ok((model, bytes))
}

/// Runs the detector on a row-major matrix whose columns are `names`.
pub fn detect(
    runtime: &Runtime,
    choice: &DetectorChoice,
    source: &ModelSource,
    values: &[f32],
    names: &[String],
) -> Result<Detection> {
    let cols = names.len();
    let rows = values.len().checked_div(cols).unwrap_or(0);
    let x = Matrix::new(values, rows, cols)?;
    let model_file = match source {
        ModelSource::Load(p) => Some(p.display().to_string()),
        ModelSource::Train(_) => None,
    };
    let started = Instant::now();
    let mut fit_seconds = 0.0;
    let (model, model_bytes, score_samples, component) = match choice {
        DetectorChoice::Native => {
            let (model, bytes) = match source {
                ModelSource::Train(params) => {
                    let model = sg_iforest::fit(&x, names, params)?;
                    fit_seconds = started.elapsed().as_secs_f64();
                    let bytes = model.to_bytes();
                    (model, bytes)
                }
                ModelSource::Load(path) => {
                    let (model, bytes) = read_model(path)?;
                    model.check_features(names)?;
                    (model, bytes)
                }
            };
            let scores = model.score_samples(&x)?;
            (model, bytes, scores, None)
        }
        DetectorChoice::Component(src) => {
            let c = DetectorComponent::load(runtime, src)?;
            let bytes = match source {
                ModelSource::Train(params) => {
                    let bytes = c.train(runtime, (values, rows, cols), names, params)?;
                    fit_seconds = started.elapsed().as_secs_f64();
                    bytes
                }
                ModelSource::Load(path) => {
                    let (model, bytes) = read_model(path)?;
                    model.check_features(names)?;
                    bytes
                }
            };
            let model = Model::from_bytes(&bytes).context("the detector component returned an unreadable model")?;
            let (scores, _) = c.score(runtime, &bytes, (values, rows, cols))?;
            let lineage = ComponentLineage {
                name: "iforest".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                contract: c.contract().to_string(),
                sha256: c.digest().into(),
                origin: c.origin().into(),
            };
            (model, bytes, scores, Some(lineage))
        }
    };
    let lineage = DetectorLineage {
        kind: match choice {
            DetectorChoice::Native => "native".into(),
            DetectorChoice::Component(s) => s.origin(),
        },
        component,
        params: *model.params(),
        n_train: model.n_train(),
        offset: model.offset(),
        model_file,
    };
    let score_seconds = started.elapsed().as_secs_f64() - fit_seconds;
    Ok(Detection { score_samples, offset: model.offset(), model_bytes, lineage, fit_seconds, score_seconds })
}

/// Writes a model artefact atomically.
pub fn save_model(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
