//! A contained aggregation: a call that traps, times out or exceeds its memory poisons only its
//! instance. The host then starts a fresh instance, replays the batches already accepted, finds
//! the events that fail by bisecting the batch on throwaway instances, and pushes the rest —
//! so the failing events are dead-lettered with the trap message and everything else counts.
//! A `take` that faults or answers a table the host refuses (wrong lengths or types, NaN or
//! infinite model inputs, more rows than events) is bisected the same way over the events
//! accepted since the last `take`, and the table is computed again without the events that
//! cause it.
//!
//! The journal shares the caller's batches (`Arc`, no copy) and every journal of a runtime — all
//! open windows, all versions — counts against one budget, [`Limits::journal_bytes`]
//! (crate::runtime::Limits): an aggregation whose next batch does not fit drops its journal, and
//! a later fault of that aggregation fails with that reason instead of being recovered. A batch
//! pushed with a way to have it again ([`Reread`]: a bounded run re-reads its input file where
//! the chunk lies) is journaled as that alone, a few bytes instead of its columns, and read
//! again only when a fault needs a replay.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use sg_features_core::columns::FeatureTable;
use wasmtime::Store;

use super::{FeatureComponent, Instance, RejectedEvent, Window};
use crate::component::{Fault, call_error};
use crate::component::contain::{self, Budget, GiveUp, bisect};
use sg_model::events::EventBatch;
use sg_metrics::METRICS;
use crate::runtime::{JournalBudget, Runtime, Sandbox};

/// Call deadlines a push's bisection may take (its probes push parts of one batch).
const PUSH_BISECTION_DEADLINES: u32 = 4;

/// Call deadlines a take's bisection may take (its probes replay parts of every batch since
/// the last take, then take).
const TAKE_BISECTION_DEADLINES: u32 = 32;

/// Produces a pushed batch again, so a journal can keep where a batch came from instead of the
/// batch (a bounded run re-reads the chunk of its input file).
pub trait Reread: Send + Sync {
    /// The batch again, as it was pushed; an error when that is no longer possible (the input
    /// changed).
    fn reread(&self) -> Result<EventBatch>;
}

/// An event of a pushed batch that was not aggregated, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedEvent {
    /// Index in the pushed batch.
    pub index: usize,
    /// The component's rejection reason or the trap message.
    pub reason: String,
}

/// An aggregation inside a sandboxed instance of a features component.
pub struct FeatureAggregation<'r> {
    component: Arc<FeatureComponent>,
    runtime: &'r Runtime,
    window: Option<Window>,
    store: Store<Sandbox>,
    instance: Instance,
    /// Batches accepted since the last `take`, replayed into a fresh instance after a fault.
    journal: Journal,
    /// When to give up on the component.
    give_up: GiveUp,
    /// Instances replaced after a fault.
    restarts: u64,
}

impl<'r> FeatureAggregation<'r> {
    pub(super) fn new(component: Arc<FeatureComponent>, runtime: &'r Runtime, window: Option<Window>) -> Result<Self> {
        let (store, instance) = component.instantiate(runtime, window)?;
        Ok(FeatureAggregation {
            component,
            runtime,
            window,
            store,
            instance,
            journal: Journal::new(runtime.journal_budget()),
            give_up: GiveUp::default(),
            restarts: 0,
        })
    }

    /// Journals the events accepted of a pushed batch (all but the `dropped` indexes): as what
    /// `again` rereads when there is one, else as the `accepted` batch itself.
    fn remember(&mut self, accepted: Arc<EventBatch>, pushed: &EventBatch, again: Option<&Arc<dyn Reread>>, dropped: Vec<usize>) {
        let entry = match again {
            Some(again) => Entry::Reread { again: again.clone(), dropped: dropped.into(), len: pushed.len() },
            None => Entry::Held(accepted),
        };
        self.journal.remember(entry);
    }

    /// Instances replaced after a trap, timeout or memory fault.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    fn call_push(&mut self, batch: &EventBatch, ticks: u64) -> Result<Vec<RejectedEvent>> {
        let (label, origin) = (self.component.label(), self.component.origin());
        let instance = &self.instance;
        let rejected = contain::call(&mut self.store, ticks, (&label, origin, "push"), batch.len(), |s| instance.push(s, batch))?;
        if let Some(bad) = rejected.iter().find(|r| r.index as usize >= batch.len()) {
            bail!("{origin} rejected event {} of a batch of {}", bad.index, batch.len());
        }
        Ok(rejected)
    }

    /// Folds a batch in. Events the component refuses, and events on which it traps, times out
    /// or runs out of memory, come back as [`FailedEvent`]s; the others are aggregated. Fails
    /// only when the component cannot be recovered (replay fails, or every event of
    /// [`contain::GIVE_UP_AFTER`] consecutive batches fails).
    pub fn push(&mut self, batch: &Arc<EventBatch>) -> Result<Vec<FailedEvent>> {
        self.push_with(batch, None)
    }

    /// As [`FeatureAggregation::push`], for a batch `again` produces again: the journal keeps
    /// only that, and a replay rereads it.
    pub fn push_rereadable(&mut self, batch: &Arc<EventBatch>, again: &Arc<dyn Reread>) -> Result<Vec<FailedEvent>> {
        self.push_with(batch, Some(again))
    }

    fn push_with(&mut self, batch: &Arc<EventBatch>, again: Option<&Arc<dyn Reread>>) -> Result<Vec<FailedEvent>> {
        let ticks = self.runtime.limits().deadline_ticks();
        let fault = match self.call_push(batch, ticks) {
            Ok(rejected) => {
                self.give_up.failed_all(false);
                self.remember(batch.clone(), batch, again, Vec::new());
                return Ok(rejected.into_iter().map(|r| FailedEvent { index: r.index as usize, reason: r.reason }).collect());
            }
            Err(e) => format!("{e:#}"),
        };
        self.restart()?;
        let mut budget = Budget::new(self.runtime, PUSH_BISECTION_DEADLINES);
        // Bisection visits left halves first, so `failed` comes out in index order.
        let failed = bisect((0..batch.len()).collect(), fault, &mut budget, &mut |rows| self.probe(batch, rows))?;
        let mut failed: Vec<FailedEvent> = failed.into_iter().map(|(index, reason)| FailedEvent { index, reason }).collect();
        if self.give_up.failed_all(failed.len() == batch.len()) {
            return Err(self.quarantined(GiveUp::reason("event"), &failed[0].reason));
        }
        if failed.len() == batch.len() {
            return Ok(failed);
        }
        // In index order: bisection visits left halves first.
        let dropped: Vec<usize> = failed.iter().map(|f| f.index).collect();
        let keep = without(batch.len(), &dropped);
        let good = Arc::new(batch.select(&keep));
        match self.call_push(&good, ticks) {
            Ok(rejected) => {
                failed.extend(rejected.into_iter().map(|r| FailedEvent { index: keep[r.index as usize], reason: r.reason }));
                self.remember(good, batch, again, dropped);
            }
            // Each event passes on a fresh instance, the batch not on top of the state: the
            // state has outgrown the cap, and would fail every batch from here on.
            Err(e) if Fault::of(&e) == Some(Fault::MemoryCap) => return Err(self.outgrown(&e)),
            Err(e) => {
                // The events pass one by one but not together: give up on the whole batch.
                self.restart()?;
                let reason = format!("{e:#}");
                failed.extend(keep.into_iter().map(|index| FailedEvent { index, reason: reason.clone() }));
            }
        }
        failed.sort_by_key(|f| f.index);
        Ok(failed)
    }

    /// Replaces the poisoned instance and replays the journal into the new one.
    fn restart(&mut self) -> Result<()> {
        self.restarts += 1;
        let (store, instance) = self.component.instantiate(self.runtime, self.window)?;
        self.store = store;
        self.instance = instance;
        let ticks = self.runtime.limits().deadline_ticks();
        let Some(journal) = self.journal.entries().map(<[_]>::to_vec) else {
            bail!(
                "{} faulted after its events since the last window outgrew the journal budget ({} bytes over all open windows): too many to replay into a new instance",
                self.component.origin(),
                self.runtime.limits().journal_bytes
            );
        };
        for entry in &journal {
            let batch = entry.batch().with_context(|| format!("{} faulted; replaying its journal into a new instance", self.component.origin()))?;
            if let Err(e) = self.call_push(&batch, ticks) {
                bail!("{} failed replaying batches it had accepted (is it deterministic?): {e:#}", self.component.origin());
            }
        }
        Ok(())
    }

    /// Pushes `rows` of `batch` into a fresh instance; the fault message if it fails.
    fn probe(&self, batch: &EventBatch, rows: &[usize]) -> Result<Option<String>> {
        let (mut store, instance) = self.component.instantiate(self.runtime, self.window)?;
        let ticks = contain::probe_ticks(self.runtime, rows.len(), batch.len());
        let sub = batch.select(rows);
        // Probes are calls too: their faults show in the trap and timeout counters.
        let (label, origin) = (self.component.label(), self.component.origin());
        let pushed = contain::call(&mut store, ticks, (&label, origin, "push"), sub.len(), |s| instance.push(s, &sub));
        Ok(pushed.err().map(|e| format!("{e:#}")))
    }

    /// The per-key table over everything pushed, checked (see [`Descriptor::check_table`]);
    /// resets. A fault or a refused table is bisected over the events accepted since the last
    /// take: the events that cause it come back in [`Taken::failed`] and the table is computed
    /// without them. Fails when that is not possible (journal over budget, or every event
    /// causes it).
    pub fn take(&mut self) -> Result<Taken> {
        self.store.set_epoch_deadline(self.runtime.limits().deadline_ticks());
        let accepted = self.journal.entries().map(|j| j.iter().map(Entry::len).sum());
        let started = std::time::Instant::now();
        let answer = take_checked(&self.component, &mut self.store, &self.instance, accepted).map_err(|e| format!("{e:#}"));
        METRICS.call(&self.component.label(), 0, started.elapsed(), answer.as_ref().err().map(String::as_str));
        let taken = match answer {
            Ok(table) => Taken { table, failed: Vec::new() },
            // On failure the journal stays: the window can move to another version.
            Err(fault) => self.recover_take(fault)?,
        };
        self.journal.reset();
        Ok(taken)
    }

    /// The run cannot go on within the memory cap: the component's state is what is too big,
    /// not any event (each passes on its own).
    fn outgrown(&self, last: &anyhow::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: its state over the events since the last take no longer fits the memory cap of {} MiB; raise --memory-limit (last: {last:#})",
            self.component.origin(),
            self.runtime.limits().memory_bytes >> 20
        )
    }

    fn quarantined(&self, what: String, last: &str) -> anyhow::Error {
        let c = &self.component;
        Quarantined { component: c.label(), origin: c.origin().into(), what, last: last.into() }.into()
    }

    /// Isolates the events that make `take` fail and takes again without them.
    fn recover_take(&mut self, fault: String) -> Result<Taken> {
        let Some(journal) = self.journal.entries().map(<[_]>::to_vec) else {
            bail!("{fault}; the events since the last take outgrew the journal budget ({} bytes over all open windows): too many to isolate the cause", self.runtime.limits().journal_bytes);
        };
        let rows: Vec<(usize, usize)> =
            journal.iter().enumerate().flat_map(|(b, entry)| (0..entry.len()).map(move |r| (b, r))).collect();
        if rows.is_empty() {
            bail!("{fault} (with no events pushed)");
        }
        let mut budget = Budget::new(self.runtime, TAKE_BISECTION_DEADLINES);
        let bad = bisect(rows.clone(), fault.clone(), &mut budget, &mut |probe| self.probe_take(&journal, probe))?;
        if bad.len() == rows.len() {
            return Err(self.quarantined("failed take whatever events it was given".into(), &fault));
        }
        let isolated: std::collections::HashSet<(usize, usize)> = bad.iter().map(|&(row, _)| row).collect();
        let mut failed: BatchFailures = Vec::new();
        for (b, group) in bad.chunk_by(|x, y| x.0.0 == y.0.0).map(|g| (g[0].0.0, g)) {
            let events = group.iter().map(|((_, r), reason)| FailedEvent { index: *r, reason: reason.clone() }).collect();
            failed.push((journal[b].batch()?, events));
        }
        let keep: Vec<(usize, usize)> = rows.into_iter().filter(|row| !isolated.contains(row)).collect();
        let (mut store, instance, fault) = self.replay(&journal, &keep)?;
        if let Some(fault) = fault {
            bail!("{fault} (again, without the events that failed take)");
        }
        let table = take_checked(&self.component, &mut store, &instance, Some(keep.len())).map_err(|e| match Fault::of(&e) {
            Some(Fault::MemoryCap) => self.outgrown(&e),
            _ => anyhow::anyhow!("{e:#} (again, without the events that failed it)"),
        })?;
        self.restarts += 1;
        self.store = store;
        self.instance = instance;
        Ok(Taken { table, failed })
    }

    /// A fresh instance fed the `rows` (batch, row) of the journal, in order, one push per
    /// batch; with the fault of the push that failed, if one did. The deadline is armed for the
    /// next call.
    fn replay(&self, journal: &[Entry], rows: &[(usize, usize)]) -> Result<(Store<Sandbox>, Instance, Option<String>)> {
        let (mut store, instance) = self.component.instantiate(self.runtime, self.window)?;
        let ticks = self.runtime.limits().deadline_ticks();
        for group in rows.chunk_by(|a, b| a.0 == b.0) {
            let picked: Vec<usize> = group.iter().map(|&(_, r)| r).collect();
            let batch = journal[group[0].0].batch()?;
            store.set_epoch_deadline(ticks);
            if let Err(e) = instance.push(&mut store, &batch.select(&picked)) {
                let fault = format!("{:#}", call_error(self.component.origin(), "push", e, store.data().stderr()));
                return Ok((store, instance, Some(fault)));
            }
        }
        store.set_epoch_deadline(ticks);
        Ok((store, instance, None))
    }

    /// Pushes the `rows` of the journal into a fresh instance and takes; the fault, if any.
    fn probe_take(&self, journal: &[Entry], rows: &[(usize, usize)]) -> Result<Option<String>> {
        let (mut store, instance, fault) = self.replay(journal, rows)?;
        if fault.is_some() {
            return Ok(fault);
        }
        Ok(take_checked(&self.component, &mut store, &instance, Some(rows.len())).err().map(|e| format!("{e:#}")))
    }

    /// The component version this aggregation runs.
    pub fn component(&self) -> &Arc<FeatureComponent> {
        &self.component
    }

    /// The same aggregation under another version of the component, so a window keeps its
    /// events across an upgrade and is computed by one version only. When both versions carry
    /// state in the same format (`features@2`), the state is exported and imported; otherwise
    /// (or when the new version refuses the state) every batch accepted so far is replayed into
    /// a fresh instance of `to`, and events it fails on come back with their batch. `None` when
    /// neither works (journal over budget): the window then finishes on its old version.
    pub fn migrate(&mut self, to: &Arc<FeatureComponent>) -> Result<Option<Migrated<'r>>> {
        if let Some(carried) = self.carry_state(to)? {
            return Ok(Some(carried));
        }
        let Some(journal) = self.journal.entries() else { return Ok(None) };
        let mut next = FeatureAggregation::new(to.clone(), self.runtime, self.window)?;
        let mut failed = Vec::new();
        for entry in journal {
            let batch = entry.batch()?;
            let f = next.push(&batch)?;
            if !f.is_empty() {
                failed.push((batch, f));
            }
        }
        let replayed = journal.iter().map(Entry::len).sum();
        Ok(Some(Migrated { aggregation: next, how: Carried::Replayed { events: replayed, failed } }))
    }

    /// Moves the state when both versions name the same state format; `None` when they do not,
    /// or `to` refuses it (logged).
    fn carry_state(&mut self, to: &Arc<FeatureComponent>) -> Result<Option<Migrated<'r>>> {
        let (Some(from_format), Some(to_format)) = (&self.component.descriptor.state_format, &to.descriptor.state_format) else {
            return Ok(None);
        };
        if from_format != to_format {
            tracing::warn!("{} writes state as {from_format}, {} reads {to_format}: replaying instead", self.component.label(), to.label());
            return Ok(None);
        }
        self.store.set_epoch_deadline(self.runtime.limits().deadline_ticks());
        let Some(exported) = self.instance.export_state(&mut self.store) else { return Ok(None) };
        let state = match exported {
            Ok(state) => state,
            Err(e) => {
                let e = call_error(self.component.origin(), "export-state", e, self.store.data().stderr());
                tracing::warn!("{e:#}; replaying instead");
                self.restart()?;
                return Ok(None);
            }
        };
        match to.import(self.runtime, self.window, from_format, &state)? {
            Ok((store, instance)) => {
                let aggregation = FeatureAggregation {
                    component: to.clone(),
                    runtime: self.runtime,
                    window: self.window,
                    store,
                    instance,
                    journal: self.journal.clone(),
                    give_up: GiveUp::default(),
                    restarts: 0,
                };
                Ok(Some(Migrated { aggregation, how: Carried::State { bytes: state.len() } }))
            }
            Err(reason) => {
                tracing::warn!("{} refused the state of {}: {reason}; replaying instead", to.label(), self.component.label());
                Ok(None)
            }
        }
    }
}

/// The indexes `0..len` but the `dropped` ones (ascending).
fn without(len: usize, dropped: &[usize]) -> Vec<usize> {
    let mut dropped = dropped.iter().peekable();
    (0..len).filter(|i| dropped.next_if_eq(&i).is_none()).collect()
}

/// A batch an aggregation accepted, as its journal keeps it.
#[derive(Clone)]
enum Entry {
    /// The batch itself.
    Held(Arc<EventBatch>),
    /// What produces it again, and which of its events were not accepted.
    Reread {
        /// Produces the pushed batch again.
        again: Arc<dyn Reread>,
        /// The events that failed (indexes into the pushed batch, ascending): few, so kept
        /// rather than the many accepted.
        dropped: Arc<[usize]>,
        /// Events in the pushed batch.
        len: usize,
    },
}

impl Entry {
    /// Events accepted.
    fn len(&self) -> usize {
        match self {
            Entry::Held(batch) => batch.len(),
            Entry::Reread { dropped, len, .. } => len - dropped.len(),
        }
    }

    /// Bytes it holds.
    fn heap_bytes(&self) -> usize {
        match self {
            Entry::Held(batch) => batch.heap_bytes(),
            Entry::Reread { dropped, .. } => std::mem::size_of::<Entry>() + dropped.len() * 8,
        }
    }

    /// The accepted events, reread when that is how they are kept.
    fn batch(&self) -> Result<Arc<EventBatch>> {
        let (again, dropped, len) = match self {
            Entry::Held(batch) => return Ok(batch.clone()),
            Entry::Reread { again, dropped, len } => (again, dropped, *len),
        };
        let batch = again.reread()?;
        if batch.len() != len {
            bail!("the batch read again for a replay has {} events where {len} were pushed: the input changed", batch.len());
        }
        Ok(Arc::new(if dropped.is_empty() { batch } else { batch.select(&without(len, dropped)) }))
    }
}

/// The batches an aggregation accepted since its last `take`, their bytes counted against the
/// runtime's one [`JournalBudget`]; `None` once a batch did not fit (its bytes then released).
struct Journal {
    entries: Option<Vec<Entry>>,
    bytes: usize,
    budget: Arc<JournalBudget>,
}

impl Journal {
    fn new(budget: Arc<JournalBudget>) -> Journal {
        Journal { entries: Some(Vec::new()), bytes: 0, budget }
    }

    fn entries(&self) -> Option<&[Entry]> {
        self.entries.as_deref()
    }

    /// Keeps `entry` if the budget has room for it; else drops the whole journal.
    fn remember(&mut self, entry: Entry) {
        let Some(entries) = &mut self.entries else { return };
        let bytes = entry.heap_bytes();
        if self.budget.grow(bytes) {
            self.bytes += bytes;
            entries.push(entry);
        } else {
            self.budget.shrink(std::mem::take(&mut self.bytes));
            self.entries = None;
        }
    }

    /// Empties it after a `take` (a new window's worth starts).
    fn reset(&mut self) {
        self.budget.shrink(std::mem::take(&mut self.bytes));
        self.entries = Some(Vec::new());
    }
}

/// A copy for another version's aggregation counts again (both may replay), or is dropped when
/// the budget has no room for it.
impl Clone for Journal {
    fn clone(&self) -> Journal {
        match &self.entries {
            Some(entries) if self.budget.grow(self.bytes) => Journal { entries: Some(entries.clone()), bytes: self.bytes, budget: self.budget.clone() },
            _ => Journal { entries: None, bytes: 0, budget: self.budget.clone() },
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.budget.shrink(self.bytes);
    }
}

/// Calls `take` and checks the answer against the descriptor and `accepted` events (when
/// known): the fault ([`CallFailed`](crate::component::CallFailed)) or the refusal.
fn take_checked(component: &FeatureComponent, store: &mut Store<Sandbox>, instance: &Instance, accepted: Option<usize>) -> Result<FeatureTable> {
    let origin = component.origin();
    let table = instance.take(store).map_err(|e| call_error(origin, "take", e, store.data().stderr()))?;
    if let Some(n) = accepted
        && table.rows > n
    {
        bail!("{origin}: take answered {} rows for {n} events", table.rows);
    }
    component.descriptor.check_table(&table).map_err(|e| anyhow::anyhow!("{origin}: take answered a table the host refuses: {e}"))?;
    Ok(table)
}

/// The error of an aggregation that gave up on its component: every event of
/// [`contain::GIVE_UP_AFTER`] consecutive batches failed (the batch was not aggregated), or `take`
/// failed whatever events it was given (the accepted events are kept). Either way the
/// aggregation can be moved to another version and the call made there.
#[derive(Debug, thiserror::Error)]
#[error("{origin} {what}; quarantined (last: {last})")]
pub struct Quarantined {
    /// `name@version` of the component.
    pub component: String,
    /// Where it came from.
    pub origin: String,
    /// What it failed on.
    pub what: String,
    /// The last failure.
    pub last: String,
}

/// Per batch, the events that failed (`take` and migrations report these).
pub type BatchFailures = Vec<(Arc<EventBatch>, Vec<FailedEvent>)>;

/// The table of a [`FeatureAggregation::take`], and the events left out of it.
pub struct Taken {
    /// The per-key table.
    pub table: FeatureTable,
    /// Events whose presence made `take` fail, with the reason; the table is without them.
    pub failed: BatchFailures,
}

/// An aggregation moved to another component version.
pub struct Migrated<'r> {
    /// The aggregation, now under the new version.
    pub aggregation: FeatureAggregation<'r>,
    /// How its contents got there.
    pub how: Carried,
}

/// How an aggregation's contents reached the new version.
pub enum Carried {
    /// The state was exported and imported (no event replayed).
    State {
        /// Size of the state.
        bytes: usize,
    },
    /// The accepted batches were replayed; events the new version failed on, with their batch.
    Replayed {
        /// Events replayed.
        events: usize,
        /// Per batch, the events the new version failed on.
        failed: BatchFailures,
    },
}
