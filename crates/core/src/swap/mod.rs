//! Live upgrades of a running stream: the features component, the detector component and the
//! model of an anomaly stream ([`AnomalySlots`]); the policy of a dedup stream ([`DedupSlots`]). A candidate comes from a change of its file, `SIGHUP` (every file is
//! loaded again), or the admin API; it is compiled, type-checked or parsed on a loader thread
//! (off the hot path), then validated between batches and only then switched in — a batch never
//! straddles two versions. A refused candidate leaves the current version serving, with the
//! reason logged and kept for the admin API. The previous version is kept for rollback.

mod loader;
mod slot;
mod watch;

pub use loader::{Candidate, Loader, Requests, Trigger};
pub use crate::component::Role;
pub use slot::{Slot, SlotStatus, SwapEvent, VersionInfo, Versioned};
pub use watch::FileWatch;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::component::ComponentSource;
use crate::detector::{DetectorChoice, ModelSource};
use crate::runtime::Runtime;

/// Records of the batch in hand a candidate is checked on before it is switched in (enough to
/// see its arity, types and values; more would only lengthen the pause).
pub const SAMPLE_RECORDS: usize = 1024;

/// The status of every slot, by role name, for the admin API.
pub type StatusBoard = BTreeMap<&'static str, Arc<Mutex<SlotStatus>>>;

/// A refused candidate: what it was, and why.
pub type Refusal = (String, String);

/// The swappable parts of one kind of pipeline.
pub trait Slots {
    /// What a candidate is validated on: the batch in hand.
    type Sample: ?Sized;

    /// Shared status of every slot, by role, for the admin API.
    fn status(&self) -> StatusBoard;

    /// Validates a loaded candidate and switches to it; its label, or why not.
    fn offer(&mut self, candidate: Candidate, trigger: Trigger, sample: &Self::Sample, runtime: &Runtime) -> Result<String, Refusal>;

    /// Switches `role` back to its previous version.
    fn rollback(&mut self, role: Role, trigger: Trigger) -> Result<String, Refusal>;

    /// Records a refused candidate for `role`.
    fn refuse(&self, role: Role, trigger: Trigger, candidate: String, reason: &str);
}

/// The files behind a pipeline's parts, by role: the features or policy component, the
/// detector component and the model, where each is a file (watched, and reloaded on `SIGHUP`).
pub fn files(component: (Role, &ComponentSource), detector: Option<&DetectorChoice>, model: Option<&ModelSource>) -> Vec<(Role, ComponentSource)> {
    let mut files = Vec::new();
    if let ComponentSource::File(_) = component.1 {
        files.push((component.0, component.1.clone()));
    }
    if let Some(DetectorChoice::Component(s @ ComponentSource::File(_))) = detector {
        files.push((Role::Detector, s.clone()));
    }
    if let Some(ModelSource::Load(path)) = model {
        files.push((Role::Model, ComponentSource::File(path.clone())));
    }
    files
}

/// A pipeline's swappable parts and their upgrades: the loader thread and the watched files.
pub struct Upgrades<S> {
    /// The parts.
    pub slots: S,
    loader: Loader,
    files: Vec<(Role, ComponentSource)>,
    watches: Vec<(Role, FileWatch)>,
}

impl<S: Slots> Upgrades<S> {
    /// Upgrades of `slots`; the `files` behind them are watched for changes.
    pub fn new(runtime: Arc<Runtime>, slots: S, files: Vec<(Role, ComponentSource)>) -> Upgrades<S> {
        let watches = files
            .iter()
            .filter_map(|(role, source)| match source {
                ComponentSource::File(path) => Some((*role, FileWatch::new(path.clone()))),
                _ => None,
            })
            .collect();
        Upgrades { slots, loader: Loader::start(runtime), files, watches }
    }

    /// Shared status of every slot, for the admin API.
    pub fn status(&self) -> StatusBoard {
        self.slots.status()
    }

    /// Where requests for candidates go (the admin API and signal handlers hold a copy).
    pub fn requests(&self) -> Requests {
        self.loader.requests()
    }

    /// Between batches: starts loading the files that changed, and switches to a loaded
    /// candidate that passes validation on `sample` (the batch about to be processed). Returns
    /// the role switched, if any; nothing is copied when no candidate waits.
    pub fn poll(&mut self, sample: &S::Sample, runtime: &Runtime) -> Option<Role> {
        for (role, watch) in &mut self.watches {
            if let Some(path) = watch.changed() {
                self.loader.requests().load(*role, ComponentSource::File(path), Trigger::FileChanged);
            }
        }
        let loaded = self.loader.try_next()?;
        let (role, trigger, reply) = (loaded.role, loaded.trigger, loaded.reply);
        let outcome = match loaded.result {
            Err(e) => Err((loaded.origin, format!("{e:#}"))),
            Ok(None) => self.slots.rollback(role, trigger),
            Ok(Some(candidate)) => self.slots.offer(candidate, trigger, sample, runtime),
        };
        match outcome {
            Ok(label) => {
                reply.send(Ok(label));
                Some(role)
            }
            Err((candidate, reason)) => {
                self.slots.refuse(role, trigger, candidate, &reason);
                reply.send(Err(reason));
                None
            }
        }
    }

    /// On `SIGHUP`, asks for every file behind the parts to be loaded again as a candidate.
    pub fn reload_on_sighup(&self) {
        let (requests, files) = (self.requests(), self.files.clone());
        crate::signals::on_hangup(move || {
            if files.is_empty() {
                tracing::warn!("SIGHUP: nothing is loaded from a file; nothing to reload");
            }
            for (role, source) in &files {
                requests.load(*role, source.clone(), Trigger::Signal);
            }
        });
    }
}
