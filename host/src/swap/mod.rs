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

use crate::component::ComponentSource;
use crate::component::features::{FeatureComponent, Quarantined};
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
    /// `switched`, `refused`, or `restored` (after a quarantine).
    pub outcome: String,
    /// Why it was refused.
    pub reason: Option<String>,
}

/// What the admin API shows of the features slot.
#[derive(Clone, Debug, Serialize)]
pub struct SlotStatus {
    /// The version serving.
    pub current: VersionInfo,
    /// The version a rollback returns to.
    pub previous: Option<VersionInfo>,
    /// Every upgrade attempt, oldest first.
    pub history: Vec<SwapEvent>,
}

/// Events of the batch in hand a candidate is checked on before it is switched in (enough to see
/// its arity, types and values; more would only lengthen the pause).
pub const SAMPLE_EVENTS: usize = 1024;

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
        let status = Arc::new(Mutex::new(SlotStatus { current: VersionInfo::of(&current), previous: None, history: Vec::new() }));
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
    /// a loaded candidate that passes validation on the first events of `batch` (the batch about
    /// to be processed). Returns whether it switched; nothing is copied when no candidate waits.
    pub fn poll(&mut self, batch: &EventBatch, runtime: &Runtime) -> bool {
        if let Some(w) = &mut self.watch
            && let Some(path) = w.changed()
        {
            self.loader.requests().load(ComponentSource::File(path), Trigger::FileChanged);
        }
        let Some(loaded) = self.loader.try_next() else { return false };
        let (trigger, reply) = (loaded.trigger, loaded.reply);
        let checked = match loaded.result {
            Ok(Some(c)) => match validate(&self.current, &c, batch, runtime) {
                Ok(()) => Ok(c),
                Err(e) => Err((c.label(), e)),
            },
            Ok(None) => self.previous.clone().ok_or_else(|| (loaded.origin, anyhow::anyhow!("no previous version to roll back to"))),
            Err(e) => Err((loaded.origin, e)),
        };
        let candidate = match checked {
            Ok(c) => c,
            Err((candidate, e)) => {
                let reason = format!("{e:#}");
                eprintln!("sg-host: features candidate {candidate} refused ({}): {reason}; {} keeps serving", trigger.name(), self.current.label());
                METRICS.refused.inc();
                self.record(trigger, candidate, Some(reason.clone()));
                reply.send(Err(reason));
                return false;
            }
        };
        let from = std::mem::replace(&mut self.current, candidate.clone());
        eprintln!("sg-host: features {} → {} ({})", from.label(), candidate.label(), trigger.name());
        METRICS.swaps.get_or_create(&ComponentLabels { component: candidate.label() }).inc();
        {
            let mut status = self.status.lock().expect("not poisoned");
            status.current = VersionInfo::of(&candidate);
            status.previous = Some(VersionInfo::of(&from));
        }
        self.record(trigger, candidate.label(), None);
        self.previous = Some(from);
        reply.send(Ok(candidate.label()));
        true
    }

    /// Gives up on the version serving (it failed every record; see [`Quarantined`]) and
    /// restores the previous one, which it returns; `None` when there is none to restore.
    pub fn quarantine(&mut self, why: &Quarantined) -> Option<Arc<FeatureComponent>> {
        METRICS.quarantined.get_or_create(&ComponentLabels { component: why.component.clone() }).inc();
        let previous = self.previous.take()?;
        let from = std::mem::replace(&mut self.current, previous.clone());
        eprintln!("sg-host: features {} quarantined ({}); {} restored", from.label(), why.last, previous.label());
        {
            let mut status = self.status.lock().expect("not poisoned");
            status.current = VersionInfo::of(&previous);
            status.previous = None;
            status.history.push(SwapEvent {
                trigger: "quarantine".into(),
                candidate: previous.label(),
                outcome: "restored".into(),
                reason: Some(format!("{} failed every record: {}", from.label(), why.last)),
            });
        }
        Some(previous)
    }

    /// Adds an attempt to the history: switched, or refused with the reason.
    fn record(&self, trigger: Trigger, candidate: String, refused: Option<String>) {
        self.status.lock().expect("not poisoned").history.push(SwapEvent {
            trigger: trigger.name().into(),
            candidate,
            outcome: if refused.is_some() { "refused" } else { "switched" }.into(),
            reason: refused,
        });
    }
}

/// The self-check of a candidate against the version serving, on the first events of `batch`:
/// the same model-input names in the same order, a table that matches its own descriptor, and
/// finite values in every model input. An empty batch checks the schema only.
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
    // `take` checks the table (arity, types, finite model inputs); a candidate that needs
    // events left out to answer is not fit to serve.
    let taken = aggregation.take()?;
    if let Some((_, failed)) = taken.failed.first() {
        bail!("take fails on the sample batch: {}", failed[0].reason);
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
