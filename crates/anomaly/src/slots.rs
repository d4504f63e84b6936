//! The swappable parts of an anomaly stream: features component, detector, model.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, bail};

use sg_core::swap::{Candidate, Refusal, Role, SAMPLE_RECORDS, Slot, Slots, StatusBoard, Trigger, Versioned};
use sg_core::component::features::{FeatureComponent, Quarantined};
use sg_core::detector::{self, DetectorChoice, DetectorEngine, ModelChoice, ModelSource};
use sg_model::events::EventBatch;
use sg_core::component::ComponentSource;
use sg_core::runtime::Runtime;

/// Rows of the synthetic matrix a detector or model candidate is checked on.
const PROBE_ROWS: usize = 256;

/// The features component, the detector and the model of an anomaly stream.
pub struct AnomalySlots {
    /// The features component.
    pub features: Slot<FeatureComponent>,
    /// Where the detector runs.
    pub detector: Slot<DetectorEngine>,
    /// The model it scores with.
    pub model: Slot<ModelChoice>,
    /// A stream's window length, ms, which a saved model must have been trained on.
    window_ms: Option<i64>,
}

impl AnomalySlots {
    /// Loads the three parts; with `window_ms` (a stream), a saved model must have been trained
    /// on that event-time span ([`detector::check_span`]), now and on every upload.
    pub fn load(
        runtime: &Runtime,
        features: &ComponentSource,
        detector: &DetectorChoice,
        model: &ModelSource,
        window_ms: Option<i64>,
    ) -> Result<AnomalySlots> {
        let model = ModelChoice::load(model)?;
        check_window(&model, window_ms)?;
        Ok(AnomalySlots {
            features: Slot::new(FeatureComponent::load(runtime, features)?),
            detector: Slot::new(Arc::new(DetectorEngine::load(runtime, detector)?)),
            model: Slot::new(Arc::new(model)),
            window_ms,
        })
    }

    /// Gives up on the features version serving (it failed every record, or every take) and
    /// restores the previous one, which it returns; `None` when there is none.
    pub fn quarantine(&mut self, why: &Quarantined) -> Option<Arc<FeatureComponent>> {
        sg_metrics::METRICS.quarantined.get_or_create(&sg_metrics::ComponentLabels { component: why.component.clone() }).inc();
        self.features.restore_previous(format!("quarantined: {} {}: {}", why.component, why.what, why.last))
    }
}

impl Slots for AnomalySlots {
    type Sample = EventBatch;

    fn status(&self) -> StatusBoard {
        BTreeMap::from([
            (Role::Features.name(), self.features.status()),
            (Role::Detector.name(), self.detector.status()),
            (Role::Model.name(), self.model.status()),
        ])
    }

    fn offer(&mut self, candidate: Candidate, trigger: Trigger, batch: &EventBatch, runtime: &Runtime) -> Result<String, Refusal> {
        let refused = |label: String, e: anyhow::Error| (label, format!("{e:#}"));
        match candidate {
            Candidate::Features(c) => {
                validate(self.features.current(), &c, batch, runtime).map_err(|e| refused(c.label(), e))?;
                self.features.switch(c.clone(), trigger);
                Ok(c.label())
            }
            Candidate::Detector(d) => {
                let names = self.features.current().descriptor().model_input_names();
                probe_detector(runtime, &d, self.model.current(), &names).map_err(|e| refused(d.label(), e))?;
                self.detector.switch(d.clone(), trigger);
                Ok(d.label())
            }
            Candidate::Model(m) => {
                check_window(&m, self.window_ms).map_err(|e| refused(m.label(), e))?;
                let names = self.features.current().descriptor().model_input_names();
                probe_detector(runtime, self.detector.current(), &m, &names).map_err(|e| refused(m.label(), e))?;
                self.model.switch(m.clone(), trigger);
                Ok(m.label())
            }
            Candidate::Policy(p) => Err((p.info().label, "an anomaly stream has no dedup policy".into())),
        }
    }

    fn rollback(&mut self, role: Role, trigger: Trigger) -> Result<String, Refusal> {
        match role {
            Role::Features => self.features.rollback(trigger),
            Role::Detector => self.detector.rollback(trigger),
            Role::Model => self.model.rollback(trigger),
            Role::Policy => Err(("previous".into(), "an anomaly stream has no dedup policy".into())),
        }
    }

    fn refuse(&self, role: Role, trigger: Trigger, candidate: String, reason: &str) {
        match role {
            Role::Features | Role::Policy => self.features.refuse(trigger, candidate, reason),
            Role::Detector => self.detector.refuse(trigger, candidate, reason),
            Role::Model => self.model.refuse(trigger, candidate, reason),
        }
    }
}

/// The self-check of a features candidate against the version serving, on the first events of
/// `batch`: the same model-input names in the same order, and a table that `take` accepts (its
/// descriptor's arity and types, finite model inputs) without leaving events out. An empty
/// batch checks the schema only.
pub fn validate(current: &FeatureComponent, candidate: &Arc<FeatureComponent>, batch: &EventBatch, runtime: &Runtime) -> Result<()> {
    // The model reads the inputs by position as f32: names and order must match; int64 and
    // float64 are interchangeable (a descriptor only admits those two for model inputs).
    let names = |c: &FeatureComponent| c.descriptor().model_input_names();
    let (now, next) = (names(current), names(candidate));
    if now != next {
        let differ = now.iter().zip(&next).find(|(a, b)| a != b).map(|(a, b)| format!("`{a}` vs `{b}`"));
        bail!(
            "model inputs differ from {}'s ({} vs {} columns{}): a schema change needs a new model",
            current.label(),
            next.len(),
            now.len(),
            differ.map(|d| format!(", first difference {d}")).unwrap_or_default()
        );
    }
    if batch.is_empty() {
        return Ok(());
    }
    let rows: Vec<usize> = (0..batch.len().min(SAMPLE_RECORDS)).collect();
    let sample = Arc::new(batch.select(&rows));
    let mut aggregation = candidate.aggregation(runtime)?;
    let failed = aggregation.push(&sample)?;
    if failed.len() == sample.len() {
        bail!("failed on every event of the sample batch: {}", failed[0].reason);
    }
    let taken = aggregation.take()?;
    if let Some((_, failed)) = taken.failed.first() {
        bail!("take fails on the sample batch: {}", failed[0].reason);
    }
    Ok(())
}

/// A saved model's training span against a stream's window ([`detector::check_span`]).
fn check_window(model: &ModelChoice, window_ms: Option<i64>) -> Result<()> {
    match (model, window_ms) {
        (ModelChoice::Saved(m), Some(window)) => detector::check_span(&m.model, window, &m.path.display().to_string()),
        _ => Ok(()),
    }
}

/// The self-check of a detector or model: trains (or loads) and scores a synthetic matrix with
/// the features' model inputs; the model must accept those inputs and every score be finite.
fn probe_detector(runtime: &Runtime, engine: &DetectorEngine, model: &ModelChoice, names: &[String]) -> Result<()> {
    // A fixed, varied matrix: a splitmix64 sequence scaled to [0, 100).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let values: Vec<f32> = (0..PROBE_ROWS * names.len())
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 100.0
        })
        .collect();
    let d = detector::run(runtime, engine, model, &values, names, detector::RunOptions { explain: 0, span_ms: None })?;
    if d.score_samples.len() != PROBE_ROWS {
        bail!("{} scores for {PROBE_ROWS} rows", d.score_samples.len());
    }
    if let Some(bad) = d.score_samples.iter().find(|s| !s.is_finite()) {
        bail!("a score of {bad} on the probe matrix");
    }
    Ok(())
}
