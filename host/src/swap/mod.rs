//! Live upgrades of a running stream: its features component, its detector component and the
//! model it scores with. A candidate comes from a change of its file, `SIGHUP` (every file is
//! loaded again), or the admin API; it is compiled, type-checked or parsed on a loader thread
//! (off the hot path), then validated between batches and only then switched in — a batch never
//! straddles two versions. A refused candidate leaves the current version serving, with the
//! reason logged and kept for the admin API. The previous version is kept for rollback.

mod loader;
mod slot;
mod watch;

pub use loader::{Candidate, Loader, Requests, Role, Trigger};
pub use slot::{Slot, SlotStatus, SwapEvent, VersionInfo, Versioned};
pub use watch::FileWatch;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};

use crate::component::ComponentSource;
use crate::component::features::{FeatureComponent, Quarantined};
use crate::detector::{self, DetectorChoice, DetectorEngine, ModelChoice, ModelSource};
use crate::events::EventBatch;
use crate::runtime::Runtime;

/// Events of the batch in hand a features candidate is checked on before it is switched in
/// (enough to see its arity, types and values; more would only lengthen the pause).
pub const SAMPLE_EVENTS: usize = 1024;

/// Rows of the synthetic matrix a detector or model candidate is checked on.
const PROBE_ROWS: usize = 256;

/// The status of every slot, by role name, for the admin API.
pub type StatusBoard = BTreeMap<&'static str, Arc<Mutex<SlotStatus>>>;

/// Where a stream's swappable parts came from (their files are watched and reloaded).
#[derive(Clone, Debug)]
pub struct Origins {
    /// The features component.
    pub features: ComponentSource,
    /// The detector.
    pub detector: DetectorChoice,
    /// The model.
    pub model: ModelSource,
}

impl Origins {
    /// The file behind each role, where there is one.
    fn files(&self) -> Vec<(Role, ComponentSource)> {
        let mut files = Vec::new();
        if let ComponentSource::File(_) = &self.features {
            files.push((Role::Features, self.features.clone()));
        }
        if let DetectorChoice::Component(s @ ComponentSource::File(_)) = &self.detector {
            files.push((Role::Detector, s.clone()));
        }
        if let ModelSource::Load(path) = &self.model {
            files.push((Role::Model, ComponentSource::File(path.clone())));
        }
        files
    }
}

/// The features, detector and model of a stream, and their upgrades.
pub struct Upgrades {
    /// The features component.
    pub features: Slot<FeatureComponent>,
    /// Where the detector runs.
    pub detector: Slot<DetectorEngine>,
    /// The model it scores with.
    pub model: Slot<ModelChoice>,
    loader: Loader,
    watches: Vec<(Role, FileWatch)>,
}

impl Upgrades {
    /// Loads what `origins` names; the files among them are watched for changes.
    pub fn load(runtime: Arc<Runtime>, origins: &Origins) -> Result<Upgrades> {
        let features = Slot::new(FeatureComponent::load(&runtime, &origins.features)?);
        let detector = Slot::new(Arc::new(DetectorEngine::load(&runtime, &origins.detector)?));
        let model = Slot::new(Arc::new(ModelChoice::load(&origins.model)?));
        let watches = origins
            .files()
            .into_iter()
            .filter_map(|(role, source)| match source {
                ComponentSource::File(path) => Some((role, FileWatch::new(path))),
                _ => None,
            })
            .collect();
        Ok(Upgrades { features, detector, model, loader: Loader::start(runtime), watches })
    }

    /// Shared status of every slot, for the admin API.
    pub fn status(&self) -> StatusBoard {
        BTreeMap::from([
            (Role::Features.name(), self.features.status()),
            (Role::Detector.name(), self.detector.status()),
            (Role::Model.name(), self.model.status()),
        ])
    }

    /// Where requests for candidates go (the admin API and signal handlers hold a copy).
    pub fn requests(&self) -> Requests {
        self.loader.requests()
    }

    /// Between batches: starts loading the files that changed, and switches to a loaded
    /// candidate that passes validation (a features candidate on the first events of `batch`,
    /// the batch about to be processed). Returns the role switched, if any; nothing is copied
    /// when no candidate waits.
    pub fn poll(&mut self, batch: &EventBatch, runtime: &Runtime) -> Option<Role> {
        for (role, watch) in &mut self.watches {
            if let Some(path) = watch.changed() {
                self.loader.requests().load(*role, ComponentSource::File(path), Trigger::FileChanged);
            }
        }
        let loaded = self.loader.try_next()?;
        let (role, trigger, reply) = (loaded.role, loaded.trigger, loaded.reply);
        let outcome = match loaded.result {
            Err(e) => Err((loaded.origin, format!("{e:#}"))),
            Ok(None) => self.rollback(role, trigger),
            Ok(Some(candidate)) => self.offer(candidate, trigger, batch, runtime),
        };
        match outcome {
            Ok(label) => {
                reply.send(Ok(label));
                Some(role)
            }
            Err((candidate, reason)) => {
                match role {
                    Role::Features => self.features.refuse(trigger, candidate, &reason),
                    Role::Detector => self.detector.refuse(trigger, candidate, &reason),
                    Role::Model => self.model.refuse(trigger, candidate, &reason),
                }
                reply.send(Err(reason));
                None
            }
        }
    }

    /// Validates a candidate and switches to it; its label, or (candidate, reason).
    fn offer(&mut self, candidate: Candidate, trigger: Trigger, batch: &EventBatch, runtime: &Runtime) -> Result<String, (String, String)> {
        let refused = |label: String, e: anyhow::Error| (label, format!("{e:#}"));
        match candidate {
            Candidate::Features(c) => {
                validate(&self.features.current().clone(), &c, batch, runtime).map_err(|e| refused(c.label(), e))?;
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
                let names = self.features.current().descriptor().model_input_names();
                probe_detector(runtime, self.detector.current(), &m, &names).map_err(|e| refused(m.label(), e))?;
                self.model.switch(m.clone(), trigger);
                Ok(m.label())
            }
        }
    }

    /// Switches `role` back to its previous version.
    fn rollback(&mut self, role: Role, trigger: Trigger) -> Result<String, (String, String)> {
        let none = || ("previous".to_string(), "no previous version to roll back to".to_string());
        match role {
            Role::Features => {
                let previous = self.features.previous().cloned().ok_or_else(none)?;
                self.features.switch(previous.clone(), trigger);
                Ok(previous.label())
            }
            Role::Detector => {
                let previous = self.detector.previous().cloned().ok_or_else(none)?;
                self.detector.switch(previous.clone(), trigger);
                Ok(previous.label())
            }
            Role::Model => {
                let previous = self.model.previous().cloned().ok_or_else(none)?;
                self.model.switch(previous.clone(), trigger);
                Ok(previous.label())
            }
        }
    }

    /// Gives up on the features version serving (it failed every record) and restores the
    /// previous one, which it returns; `None` when there is none.
    pub fn quarantine(&mut self, why: &Quarantined) -> Option<Arc<FeatureComponent>> {
        crate::metrics::METRICS.quarantined.get_or_create(&crate::metrics::ComponentLabels { component: why.component.clone() }).inc();
        self.features.restore_previous(format!("quarantined: {} failed every record: {}", why.component, why.last))
    }

    /// On `SIGHUP`, asks for every file among `origins` to be loaded again as a candidate.
    pub fn reload_on_sighup(&self, origins: &Origins) {
        let (requests, files) = (self.requests(), origins.files());
        let spawned = std::thread::Builder::new().name("sg-sighup".into()).spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
                while hangup.recv().await.is_some() {
                    if files.is_empty() {
                        eprintln!("sg-host: SIGHUP: nothing is loaded from a file; nothing to reload");
                    }
                    for (role, source) in &files {
                        requests.load(*role, source.clone(), Trigger::Signal);
                    }
                }
            });
        });
        if let Err(e) = spawned {
            eprintln!("sg-host: no SIGHUP reloads: {e}");
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
    let rows: Vec<usize> = (0..batch.len().min(SAMPLE_EVENTS)).collect();
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
    let d = detector::run(runtime, engine, model, &values, names)?;
    if d.score_samples.len() != PROBE_ROWS {
        bail!("{} scores for {PROBE_ROWS} rows", d.score_samples.len());
    }
    if let Some(bad) = d.score_samples.iter().find(|s| !s.is_finite()) {
        bail!("a score of {bad} on the probe matrix");
    }
    Ok(())
}
