//! The swappable part of a dedup stream: its policy component.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};

use sg_core::swap::{Candidate, Refusal, Role, SAMPLE_RECORDS, Slot, Slots, StatusBoard, Trigger, Versioned};
use sg_core::component::policy::{PolicyComponent, slice};
use sg_model::LogRecords;
use sg_core::runtime::Runtime;

/// The policy of a dedup stream (used under its lock: it keeps a live instance).
pub struct DedupSlots {
    /// The policy component.
    pub policy: Slot<Mutex<PolicyComponent>>,
}

impl DedupSlots {
    /// The slot serving `policy`.
    pub fn new(policy: PolicyComponent) -> DedupSlots {
        DedupSlots { policy: Slot::new(Arc::new(Mutex::new(policy))) }
    }
}

impl Slots for DedupSlots {
    type Sample = LogRecords;

    fn status(&self) -> StatusBoard {
        BTreeMap::from([(Role::Policy.name(), self.policy.status())])
    }

    fn offer(&mut self, candidate: Candidate, trigger: Trigger, records: &LogRecords, runtime: &Runtime) -> Result<String, Refusal> {
        let Candidate::Policy(p) = candidate else {
            return Err(("candidate".into(), "a dedup stream has only a policy to upgrade".into()));
        };
        let label = p.info().label;
        let refused = |e: anyhow::Error| (label.clone(), format!("{e:#}"));
        carry(&self.policy.current().lock().expect("not poisoned"), &mut p.lock().expect("not poisoned"), runtime).map_err(refused)?;
        // The self-check learns from the sample; the candidate serves from what it carried.
        let carried = p.lock().expect("not poisoned").learned().cloned();
        validate(&p, records, runtime).map_err(refused)?;
        if let Some(learned) = carried {
            p.lock().expect("not poisoned").start_from(runtime, learned).map_err(refused)?;
        }
        self.policy.switch(p, trigger);
        Ok(label)
    }

    fn rollback(&mut self, role: Role, trigger: Trigger) -> Result<String, Refusal> {
        match role {
            Role::Policy => self.policy.rollback(trigger),
            other => Err(("previous".into(), format!("a dedup stream has no {}", other.name()))),
        }
    }

    fn refuse(&self, _role: Role, trigger: Trigger, candidate: String, reason: &str) {
        self.policy.refuse(trigger, candidate, reason);
    }
}

/// A learning candidate continues from what the serving version learned when both read the
/// same state format (as windows carry across features versions); otherwise it starts afresh.
fn carry(serving: &PolicyComponent, candidate: &mut PolicyComponent, runtime: &Runtime) -> Result<()> {
    let (Some(learned), Some(_)) = (serving.learned(), candidate.learned()) else { return Ok(()) };
    let (from, to) = (&serving.descriptor().state_format, &candidate.descriptor().state_format);
    if from != to {
        tracing::info!("{} reads state {to:?}, {} wrote {from:?}: it starts learning afresh", candidate.label(), serving.label());
        return Ok(());
    }
    candidate.start_from(runtime, learned.clone())
}

/// The self-check of a policy candidate: it decides the first records of the batch in hand
/// without failing on all of them (answers are checked by the policy binding: one decision per
/// record, UTF-8 keys and texts).
fn validate(candidate: &Mutex<PolicyComponent>, records: &LogRecords, runtime: &Runtime) -> Result<()> {
    let n = records.len().min(SAMPLE_RECORDS);
    if n == 0 {
        return Ok(());
    }
    let batch = records.batch();
    let (_, failed) = candidate.lock().expect("not poisoned").decide(runtime, &slice(&batch, 0, n))?;
    if failed.len() == n {
        bail!("failed on every record of the sample batch: {}", failed[0].reason);
    }
    Ok(())
}
