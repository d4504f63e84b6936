//! One swappable thing of a stream (features, detector, or model): the version serving, the one
//! a rollback returns to, and the history the admin API shows.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::Trigger;
use crate::component::features::FeatureComponent;
use crate::component::policy::PolicyComponent;
use crate::detector::{DetectorEngine, ModelChoice};
use sg_metrics::{ComponentLabels, METRICS};

/// One version as the admin API lists it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct VersionInfo {
    /// `name@version` (features), the detector's origin or `native`, or the model's file.
    pub label: String,
    /// sha256 of the component or model file (none for `native` or a model trained per window).
    pub sha256: Option<String>,
    /// Contract it is bound as (components).
    pub contract: Option<String>,
    /// Where it came from.
    pub origin: String,
}

/// Anything a slot can hold.
pub trait Versioned {
    /// How the admin API and the logs name this version.
    fn info(&self) -> VersionInfo;
}

impl Versioned for FeatureComponent {
    fn info(&self) -> VersionInfo {
        VersionInfo {
            label: self.label(),
            sha256: Some(self.digest().into()),
            contract: Some(self.contract().to_string()),
            origin: self.origin().into(),
        }
    }
}

impl Versioned for std::sync::Mutex<PolicyComponent> {
    fn info(&self) -> VersionInfo {
        let p = self.lock().expect("not poisoned");
        VersionInfo {
            label: p.label(),
            sha256: Some(p.digest().into()),
            contract: Some(p.contract().to_string()),
            origin: p.origin().into(),
        }
    }
}

impl Versioned for DetectorEngine {
    fn info(&self) -> VersionInfo {
        match self {
            DetectorEngine::Native => {
                VersionInfo { label: "native".into(), sha256: None, contract: None, origin: "sg-host".into() }
            }
            DetectorEngine::Component(c) => VersionInfo {
                label: self.label(),
                sha256: Some(c.digest().into()),
                contract: Some(c.contract().to_string()),
                origin: c.origin().into(),
            },
        }
    }
}

impl Versioned for ModelChoice {
    fn info(&self) -> VersionInfo {
        match self {
            ModelChoice::Train(_) => {
                VersionInfo { label: "trained per window".into(), sha256: None, contract: None, origin: "sg-host".into() }
            }
            ModelChoice::Saved(m) => VersionInfo {
                label: self.label(),
                sha256: Some(m.sha256.clone()),
                contract: None,
                origin: m.path.display().to_string(),
            },
        }
    }
}

/// An entry of the upgrade history.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SwapEvent {
    /// What asked.
    pub trigger: String,
    /// The candidate (its label, or its origin when it did not load).
    pub candidate: String,
    /// `switched`, `refused`, or `restored` (after a quarantine).
    pub outcome: String,
    /// Why it was refused or restored.
    pub reason: Option<String>,
}

/// What the admin API shows of a slot.
#[derive(Clone, Debug, Serialize)]
pub struct SlotStatus {
    /// The version serving.
    pub current: VersionInfo,
    /// The version a rollback returns to.
    pub previous: Option<VersionInfo>,
    /// Every upgrade attempt, oldest first.
    pub history: Vec<SwapEvent>,
}

/// The version serving, the previous one, and the shared status.
pub struct Slot<T> {
    current: Arc<T>,
    previous: Option<Arc<T>>,
    status: Arc<Mutex<SlotStatus>>,
}

impl<T: Versioned> Slot<T> {
    /// A slot serving `current`.
    pub fn new(current: Arc<T>) -> Slot<T> {
        let status = SlotStatus { current: current.info(), previous: None, history: Vec::new() };
        Slot { current, previous: None, status: Arc::new(Mutex::new(status)) }
    }

    /// The version serving.
    pub fn current(&self) -> &Arc<T> {
        &self.current
    }

    /// The version a rollback returns to.
    pub fn previous(&self) -> Option<&Arc<T>> {
        self.previous.as_ref()
    }

    /// Shared status for the admin API.
    pub fn status(&self) -> Arc<Mutex<SlotStatus>> {
        self.status.clone()
    }

    /// Makes `to` the version serving; the one it replaces becomes the previous one.
    pub fn switch(&mut self, to: Arc<T>, trigger: Trigger) {
        let from = std::mem::replace(&mut self.current, to.clone());
        let (from_info, to_info) = (from.info(), to.info());
        tracing::info!("{} → {} ({})", from_info.label, to_info.label, trigger.name());
        METRICS.swaps.get_or_create(&ComponentLabels { component: to_info.label.clone() }).inc();
        let mut status = self.status.lock().expect("not poisoned");
        status.current = to_info.clone();
        status.previous = Some(from_info);
        status.history.push(SwapEvent { trigger: trigger.name().into(), candidate: to_info.label, outcome: "switched".into(), reason: None });
        self.previous = Some(from);
    }

    /// Switches back to the previous version; its label, or why not.
    pub fn rollback(&mut self, trigger: Trigger) -> Result<String, super::Refusal> {
        let none = || ("previous".to_string(), "no previous version to roll back to".to_string());
        let previous = self.previous.clone().ok_or_else(none)?;
        let label = previous.info().label;
        self.switch(previous, trigger);
        Ok(label)
    }

    /// Records a refused candidate; the version serving stays.
    pub fn refuse(&self, trigger: Trigger, candidate: String, reason: &str) {
        tracing::warn!("candidate {candidate} refused ({}): {reason}; {} keeps serving", trigger.name(), self.current.info().label);
        METRICS.refused.inc();
        self.status.lock().expect("not poisoned").history.push(SwapEvent {
            trigger: trigger.name().into(),
            candidate,
            outcome: "refused".into(),
            reason: Some(reason.into()),
        });
    }

    /// Gives up on the version serving and restores the previous one (which is no longer a
    /// rollback target); `None` when there is none.
    pub fn restore_previous(&mut self, reason: String) -> Option<Arc<T>> {
        let previous = self.previous.take()?;
        let from = std::mem::replace(&mut self.current, previous.clone());
        tracing::warn!("{} given up on ({reason}); {} restored", from.info().label, previous.info().label);
        let mut status = self.status.lock().expect("not poisoned");
        status.current = previous.info();
        status.previous = None;
        status.history.push(SwapEvent {
            trigger: "quarantine".into(),
            candidate: previous.info().label,
            outcome: "restored".into(),
            reason: Some(reason),
        });
        Some(previous)
    }
}
