//! Live upgrades of the features component of a running stream. A candidate comes from a change
//! of the component file, `SIGHUP`, or the admin API; it is compiled and type-checked on a
//! loader thread (off the hot path), then validated between batches on a recent sample batch
//! (right arity and types, model inputs unchanged, no NaN/inf in them) and only then switched
//! in. A refused candidate leaves the current version serving, with the reason logged and kept
//! for the admin API. The previous version is kept for rollback.

mod loader;
mod watch;

pub use loader::{Loader, Requests, Trigger};
pub use watch::FileWatch;

use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use serde::Serialize;
use sg_features_core::columns::ColumnData;

use crate::component::ComponentSource;
use crate::component::features::FeatureComponent;
use crate::events::EventBatch;
use crate::metrics::{ComponentLabels, METRICS};
use crate::runtime::Runtime;

/// One component version as the admin API lists it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct VersionInfo {
    /// `name@version`.
    pub label: String,
    /// sha256 of the component.
    pub sha256: String,
    /// Contract it is bound as.
    pub contract: String,
    /// Where it came from.
    pub origin: String,
}

impl VersionInfo {
    fn of(c: &FeatureComponent) -> VersionInfo {
        VersionInfo { label: c.label(), sha256: c.digest().into(), contract: c.contract().to_string(), origin: c.origin().into() }
    }
}

/// An entry of the upgrade history.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SwapEvent {
    /// What asked.
    pub trigger: String,
    /// The candidate (`name@version`, or its origin when it did not load).
    pub candidate: String,
    /// `switched` or `refused`.
    pub outcome: String,
    /// Why it was refused.
    pub reason: Option<String>,
}

/// What the admin API shows of the features slot.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SlotStatus {
    /// The version serving.
    pub current: Option<VersionInfo>,
    /// The version a rollback returns to.
    pub previous: Option<VersionInfo>,
    /// Every upgrade attempt, oldest first.
    pub history: Vec<SwapEvent>,
}

/// A switch the stream must carry out between batches: open windows move to `to`.
pub struct Switch {
    /// The new version.
    pub to: Arc<FeatureComponent>,
}

/// The features component of a stream and its upgrades.
pub struct FeatureSlot {
    current: Arc<FeatureComponent>,
    previous: Option<Arc<FeatureComponent>>,
    loader: Loader,
    watch: Option<FileWatch>,
    status: Arc<Mutex<SlotStatus>>,
}

impl FeatureSlot {
    /// The slot serving `current` (loaded from `source`); a file source is watched for changes.
    pub fn new(runtime: Arc<Runtime>, current: Arc<FeatureComponent>, source: &ComponentSource) -> FeatureSlot {
        let watch = match source {
            ComponentSource::File(path) => Some(FileWatch::new(path.clone())),
            _ => None,
        };
        let status = Arc::new(Mutex::new(SlotStatus { current: Some(VersionInfo::of(&current)), ..Default::default() }));
        FeatureSlot { current, previous: None, loader: Loader::start(runtime), watch, status }
    }

    /// The version serving.
    pub fn current(&self) -> &Arc<FeatureComponent> {
        &self.current
    }

    /// Shared status for the admin API.
    pub fn status(&self) -> Arc<Mutex<SlotStatus>> {
        self.status.clone()
    }

    /// Where requests for candidates go (the admin API and signal handlers hold a copy).
    pub fn requests(&self) -> Requests {
        self.loader.requests()
    }

    /// Between batches: starts loading a candidate if the watched file changed, and switches to
    /// a loaded candidate that passes validation on `sample`. Returns the switch to carry out.
    pub fn poll(&mut self, sample: Option<&Arc<EventBatch>>, runtime: &Runtime) -> Option<Switch> {
        if let Some(w) = &mut self.watch
            && let Some(path) = w.changed()
        {
            self.loader.requests().load(ComponentSource::File(path), Trigger::FileChanged);
        }
        let loaded = self.loader.try_next()?;
        let (trigger, origin, reply) = (loaded.trigger, loaded.origin, loaded.reply);
        let candidate = match loaded.result {
            Ok(Some(c)) => c,
            Ok(None) => match self.previous.clone() {
                Some(p) => p,
                None => return self.refuse(trigger, origin, "no previous version to roll back to".into(), reply),
            },
            Err(e) => return self.refuse(trigger, origin, format!("{e:#}"), reply),
        };
        if let Err(e) = validate(&self.current, &candidate, sample, runtime) {
            return self.refuse(trigger, candidate.label(), format!("{e:#}"), reply);
        }
        let from = std::mem::replace(&mut self.current, candidate.clone());
        eprintln!("sg-host: features {} → {} ({})", from.label(), candidate.label(), trigger.name());
        METRICS.swaps.get_or_create(&ComponentLabels { component: candidate.label() }).inc();
        let mut status = self.status.lock().expect("not poisoned");
        status.current = Some(VersionInfo::of(&candidate));
        status.previous = Some(VersionInfo::of(&from));
        status.history.push(SwapEvent {
            trigger: trigger.name().into(),
            candidate: candidate.label(),
            outcome: "switched".into(),
            reason: None,
        });
        drop(status);
        self.previous = Some(from);
        reply.send(Ok(candidate.label()));
        Some(Switch { to: candidate })
    }

    fn refuse(&mut self, trigger: Trigger, candidate: String, reason: String, reply: loader::Reply) -> Option<Switch> {
        eprintln!("sg-host: features candidate {candidate} refused ({}): {reason}; {} keeps serving", trigger.name(), self.current.label());
        METRICS.refused.inc();
        self.status.lock().expect("not poisoned").history.push(SwapEvent {
            trigger: trigger.name().into(),
            candidate,
            outcome: "refused".into(),
            reason: Some(reason.clone()),
        });
        reply.send(Err(reason));
        None
    }
}

/// The self-check of a candidate against the version serving, on a recent batch: the same
/// model inputs (names and types), a table that matches its own descriptor, and finite values
/// in every model input.
pub fn validate(
    current: &FeatureComponent,
    candidate: &Arc<FeatureComponent>,
    sample: Option<&Arc<EventBatch>>,
    runtime: &Runtime,
) -> Result<()> {
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
    let Some(sample) = sample else { return Ok(()) };
    let mut aggregation = candidate.aggregation(runtime)?;
    let failed = aggregation.push(sample)?;
    if failed.len() == sample.len() && !sample.is_empty() {
        bail!("failed on every event of the sample batch: {}", failed[0].reason);
    }
    let table = aggregation.take()?;
    let d = candidate.descriptor();
    for i in d.model_inputs() {
        if let ColumnData::Float64(v) = &table.columns[i]
            && let Some(bad) = v.iter().find(|x| !x.is_finite())
        {
            bail!("model input `{}` is {bad} on the sample batch", d.columns[i].name);
        }
    }
    Ok(())
}

/// On `SIGHUP`, asks for the component file to be loaded again as a candidate (a builtin has no
/// file: the signal is then only logged).
pub fn reload_on_sighup(requests: Requests, source: &ComponentSource) {
    let source = source.clone();
    let spawned = std::thread::Builder::new().name("sg-sighup".into()).spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(async move {
            let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
            while hangup.recv().await.is_some() {
                match &source {
                    ComponentSource::Builtin(b) => eprintln!("sg-host: SIGHUP: builtin:{} has no file to reload", b.name),
                    _ => requests.load(source.clone(), Trigger::Signal),
                }
            }
        });
    });
    if let Err(e) = spawned {
        eprintln!("sg-host: no SIGHUP reloads: {e}");
    }
}
