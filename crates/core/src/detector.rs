//! The detector step: Isolation Forest natively (default, multi-threaded) or in a component.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use sg_iforest::{Matrix, Model, Params};

use crate::artefact::ReadOnce;
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
    /// A model artefact already read and verified (a bundle's).
    Verified(crate::artefact::ReadOnce),
}

/// Entries kept of each row's explanation by default (`--explain`).
pub const EXPLAINED: usize = 5;

/// What a detector run does besides scoring.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// Entries kept of each row's explanation, largest contribution first; 0 explains nothing.
    pub explain: usize,
    /// The event-time span, ms, of the rows: recorded in a model trained on them ([`check_span`]).
    pub span_ms: Option<i64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { explain: EXPLAINED, span_ms: None }
    }
}

/// When a row raises an alert: its anomaly score (`−score_samples`) above a threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AlertRule {
    /// The threshold that this share of the model's training rows exceed (`--alert-rate`).
    Rate(f64),
    /// This anomaly score (`--alert-threshold`).
    Threshold(f64),
}

impl Default for AlertRule {
    fn default() -> Self {
        AlertRule::Rate(0.005)
    }
}

impl AlertRule {
    /// The anomaly-score threshold under `model` (a rate needs the training score distribution
    /// that models written since explanations carry).
    pub fn threshold(&self, model: &Model) -> Result<f64> {
        match *self {
            AlertRule::Threshold(t) => Ok(t),
            AlertRule::Rate(r) => model.score_at_rate(r).map(|s| -s).with_context(|| {
                format!("--alert-rate {r} needs the model's training score distribution, which this model artefact has not got (train it again, or give --alert-threshold)")
            }),
        }
    }
}

/// What a detector run produced.
pub struct Detection {
    /// scikit-learn's `score_samples` per row.
    pub score_samples: Vec<f64>,
    /// The largest feature contributions of each row ([`RunOptions::explain`] of them), from the
    /// model artefact whichever engine scored: the same for the native forest and a component.
    pub explanations: Vec<Vec<sg_iforest::Contribution>>,
    /// The model that scored the rows.
    pub model: Model,
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
    /// Seconds spent explaining the rows.
    pub explain_seconds: f64,
}

/// Where the Isolation Forest runs, loaded (a component compiled once).
pub enum DetectorEngine {
    /// `sg-iforest` linked into the host.
    Native,
    /// A `streamguard:detector` component.
    Component(Box<DetectorComponent>),
}

impl DetectorEngine {
    /// Loads what `choice` names.
    pub fn load(runtime: &Runtime, choice: &DetectorChoice) -> Result<DetectorEngine> {
        Ok(match choice {
            DetectorChoice::Native => DetectorEngine::Native,
            DetectorChoice::Component(src) => DetectorEngine::Component(Box::new(DetectorComponent::load(runtime, src)?)),
        })
    }

    /// `native` or the component's origin.
    pub fn label(&self) -> String {
        match self {
            DetectorEngine::Native => "native".into(),
            DetectorEngine::Component(c) => c.origin().into(),
        }
    }
}

/// A saved model artefact, read and parsed.
pub struct SavedModel {
    /// The model.
    pub model: Model,
    /// Its bytes (what a component scores with).
    pub bytes: Vec<u8>,
    /// Where it was read from.
    pub path: PathBuf,
    /// sha256 of the bytes.
    pub sha256: String,
}

/// Largest model artefact read (a forest at every cap of `sg_iforest::Model::from_bytes` is far
/// smaller than a file this size would have to be).
pub const MAX_MODEL_BYTES: u64 = 256 << 20;

impl SavedModel {
    /// Reads and parses a model artefact.
    pub fn load(path: &Path) -> Result<SavedModel> {
        let file = ReadOnce::read(path, MAX_MODEL_BYTES).with_context(|| format!("cannot read model {}", path.display()))?;
        SavedModel::parse(&file)
    }

    /// Parses a model artefact already read.
    pub fn parse(file: &ReadOnce) -> Result<SavedModel> {
        let model = Model::from_bytes(&file.bytes).with_context(|| format!("loading model {}", file.path.display()))?;
        Ok(SavedModel { model, sha256: file.sha256.clone(), bytes: file.bytes.to_vec(), path: file.path.clone() })
    }
}

/// The model a detector scores with: trained on each input, or a saved one.
pub enum ModelChoice {
    /// Train on each input with these parameters.
    Train(Params),
    /// Score with this model.
    Saved(SavedModel),
}

impl ModelChoice {
    /// Loads what `source` names.
    pub fn load(source: &ModelSource) -> Result<ModelChoice> {
        Ok(match source {
            ModelSource::Train(p) => ModelChoice::Train(*p),
            ModelSource::Load(path) => ModelChoice::Saved(SavedModel::load(path)?),
            ModelSource::Verified(file) => ModelChoice::Saved(SavedModel::parse(file)?),
        })
    }

    /// `trained per input` or the model file and digest.
    pub fn label(&self) -> String {
        match self {
            ModelChoice::Train(_) => "trained per input".into(),
            ModelChoice::Saved(m) => format!("{} ({}…)", m.path.display(), &m.sha256[..12]),
        }
    }
}

/// Loads the detector and the model, then runs them once (the `detect` command).
pub fn detect(runtime: &Runtime, choice: &DetectorChoice, source: &ModelSource, values: &[f32], names: &[String]) -> Result<Detection> {
    run(runtime, &DetectorEngine::load(runtime, choice)?, &ModelChoice::load(source)?, values, names, RunOptions::default())
}

/// Refuses a model trained on another event-time span than a stream's windows: count features
/// scale with the span, so such a baseline would flag every user or none. A span between half
/// the window and the window passes (a bounded input of one window's history spans a little
/// less than the window); a model that does not record its span passes with a warning.
pub fn check_span(model: &Model, window_ms: i64, label: &str) -> Result<()> {
    let Some(span) = model.trained_span_ms() else {
        tracing::warn!("model {label} does not record the event-time span it was trained on: it is assumed to be this stream's window");
        return Ok(());
    };
    if span > window_ms || span < window_ms / 2 {
        anyhow::bail!(
            "model {label} was trained on {} of events, this stream's windows are {}: its count features would be on another \
             scale (train the baseline on one window's worth of history, see docs/findings.md)",
            human_ms(span),
            human_ms(window_ms)
        );
    }
    Ok(())
}

/// A duration in ms as `1h 30min`, `45s`, `120ms`.
fn human_ms(ms: i64) -> String {
    let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1000, "s")];
    let mut left = ms;
    let parts: Vec<String> = units
        .iter()
        .filter_map(|&(unit, name)| {
            let n = left / unit;
            left %= unit;
            (n > 0).then(|| format!("{n}{name}"))
        })
        .collect();
    if parts.is_empty() { format!("{ms}ms") } else { parts.join(" ") }
}

/// Runs the detector on a row-major matrix whose columns are `names`, and explains each row.
pub fn run(
    runtime: &Runtime,
    engine: &DetectorEngine,
    choice: &ModelChoice,
    values: &[f32],
    names: &[String],
    options: RunOptions,
) -> Result<Detection> {
    let span_ms = options.span_ms;
    let cols = names.len();
    let rows = values.len().checked_div(cols).unwrap_or(0);
    let x = Matrix::new(values, rows, cols)?;
    let model_file = match choice {
        ModelChoice::Saved(m) => Some(m.path.display().to_string()),
        ModelChoice::Train(_) => None,
    };
    let mut fit_seconds = 0.0;
    let score_seconds;
    let (model, model_bytes, score_samples, component) = match engine {
        DetectorEngine::Native => {
            let (model, bytes) = match choice {
                ModelChoice::Train(params) => {
                    let (model, seconds) = timed(|| sg_iforest::fit(&x, names, params));
                    let mut model = model?;
                    fit_seconds = seconds;
                    if let Some(span) = span_ms {
                        model.set_trained_span_ms(span);
                    }
                    let bytes = model.to_bytes();
                    (model, bytes)
                }
                ModelChoice::Saved(m) => {
                    m.model.check_features(names)?;
                    (m.model.clone(), m.bytes.clone())
                }
            };
            let (scores, seconds) = timed(|| model.score_samples(&x));
            score_seconds = seconds;
            (model, bytes, scores?, None)
        }
        DetectorEngine::Component(c) => {
            let bytes = match choice {
                ModelChoice::Train(params) => {
                    let (bytes, seconds) = timed(|| c.train(runtime, (values, rows, cols), names, params));
                    fit_seconds = seconds;
                    bytes?
                }
                ModelChoice::Saved(m) => {
                    m.model.check_features(names)?;
                    m.bytes.clone()
                }
            };
            let mut model = Model::from_bytes(&bytes).context("the detector component returned an unreadable model")?;
            let bytes = match (choice, span_ms) {
                (ModelChoice::Train(_), Some(span)) => {
                    model.set_trained_span_ms(span);
                    model.to_bytes()
                }
                _ => bytes,
            };
            let (scored, seconds) = timed(|| c.score(runtime, &bytes, (values, rows, cols)));
            score_seconds = seconds;
            let mut scored = scored?;
            if !scored.failed.is_empty() {
                // The rows the component fails on are scored by the same forest natively: the
                // same model gives the same scores, so nothing is lost and nothing differs.
                let picked: Vec<f32> = scored.failed.iter().flat_map(|&(r, _)| values[r * cols..(r + 1) * cols].iter().copied()).collect();
                let native = model.score_samples(&Matrix::new(&picked, scored.failed.len(), cols)?)?;
                for (&(row, _), s) in scored.failed.iter().zip(native) {
                    scored.score_samples[row] = s;
                }
                let rows_failed: Vec<usize> = scored.failed.iter().map(|f| f.0).collect();
                tracing::warn!(
                    "{} failed on {} of {rows} rows ({rows_failed:?}; first: {}); those rows were scored natively with the same model",
                    c.origin(),
                    rows_failed.len(),
                    scored.failed[0].1
                );
            }
            let scores = scored.score_samples;
            let lineage = ComponentLineage {
                name: "iforest".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                contract: c.contract().to_string(),
                sha256: c.digest().into(),
                origin: c.origin().into(),
                precompiled_sha256: c.precompiled_digest().map(str::to_string),
            };
            (model, bytes, scores, Some(lineage))
        }
    };
    let (explanations, explain_seconds) = match options.explain {
        0 => (Ok(vec![Vec::new(); rows]), 0.0),
        top => timed(|| model.explain(&x, top)),
    };
    let lineage = DetectorLineage {
        kind: engine.label(),
        component,
        params: *model.params(),
        n_train: model.n_train(),
        offset: model.offset(),
        model_file,
        model_sha256: match choice {
            ModelChoice::Saved(m) => m.sha256.clone(),
            ModelChoice::Train(_) => crate::artefact::sha256_hex(&model_bytes),
        },
    };
    Ok(Detection {
        score_samples,
        explanations: explanations?,
        offset: model.offset(),
        model,
        model_bytes,
        lineage,
        fit_seconds,
        score_seconds,
        explain_seconds,
    })
}

/// Runs `f`, and says how long it took: fitting and scoring are timed alone, not the model's
/// serialization or the checks around them.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed().as_secs_f64())
}

/// Writes a model artefact atomically.
pub fn save_model(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
