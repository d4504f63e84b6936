//! Dedup policy components (`streamguard:dedup`): decide keep / key / embed text / payload per
//! log record, in the sandbox, with the records that make the component fail isolated.
//!
//! A 2.x policy learns as it decides (a `learner` resource). The host keeps its state after
//! every call that succeeded: an instance lost to a fault is replaced by one that continues from
//! there, so a bisected batch is decided as a clean run without its bad records would be; the
//! state is what [`PolicyComponent::state`] hands out to persist and to carry across upgrades.

mod v1;
mod v2;

use anyhow::{Result, anyhow, bail};
use sg_dedup_core::{Decisions, LogBatch, TextColumn, TextColumnBuf};
use wasmtime::Store;

use super::contain::{Budget, GiveUp, bisect};
use super::{ComponentSource, Contract, LoadedComponent, call_error};
use crate::runtime::{Runtime, Sandbox};

/// WIT package of the dedup contract.
pub const PACKAGE: &str = "streamguard:dedup";
/// Contract majors this host accepts.
pub const ACCEPTED_MAJORS: &[u64] = &[v1::MAJOR, v2::MAJOR];

/// The records a call covers (a whole batch or a slice of it).
pub type RecordSlice<'a> = LogBatch<'a>;

/// A policy's self-description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Implementation name.
    pub name: String,
    /// Implementation version.
    pub version: String,
    /// What it keys on.
    pub description: String,
    /// The format of its learned state (2.x; `None`: a pure function of each batch).
    pub state_format: Option<String>,
    /// The parameters it starts with when given none (2.x; JSON).
    pub default_config: Option<String>,
}

enum Binding {
    V1(v1::Pre),
    V2(v2::Pre),
}

enum Live {
    V1(v1::Instance),
    V2(v2::Instance),
}

/// What a 2.x policy starts from: its parameters, and what it learned up to the last call
/// that succeeded (`None`: nothing yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    /// Parameters (JSON).
    pub config: String,
    /// State in the descriptor's format.
    pub state: Option<Vec<u8>>,
}

/// A record the policy could not decide: its row in the batch and the failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRecord {
    /// Row in the batch.
    pub row: usize,
    /// The trap or error, concise.
    pub reason: String,
}

/// A loaded, type-checked dedup policy with a live instance that is replaced after a fault.
pub struct PolicyComponent {
    loaded: LoadedComponent,
    contract: Contract,
    descriptor: Descriptor,
    binding: Binding,
    live: Option<(Store<Sandbox>, Live)>,
    /// A 2.x policy's parameters and state (`None` for 1.x).
    learned: Option<Learned>,
    give_up: GiveUp,
}

/// Call deadlines one batch's bisection may take (its probes decide parts of the batch).
const BISECTION_DEADLINES: u32 = 4;

impl PolicyComponent {
    /// Loads, checks the contract and reads the self-description.
    pub fn load(runtime: &Runtime, source: &ComponentSource) -> Result<PolicyComponent> {
        let loaded = LoadedComponent::load(runtime, source)?;
        let (contract, binding) = loaded.bind(runtime, PACKAGE, ACCEPTED_MAJORS, |major, linker, c| {
            Ok(match major {
                v1::MAJOR => Binding::V1(v1::Pre::new(linker, c)?),
                _ => Binding::V2(v2::Pre::new(linker, c)?),
            })
        })?;
        let mut store = runtime.store();
        let describe = |e| call_error(&loaded.origin, "describe", e, String::new());
        let descriptor = match &binding {
            Binding::V1(pre) => pre.instantiate(&mut store).and_then(|i| i.describe(&mut store)).map_err(describe)?,
            Binding::V2(pre) => pre.describe(&mut store).map_err(describe)?,
        };
        semver::Version::parse(&descriptor.version).map_err(|e| {
            anyhow!("{}: implementation version {:?} is not semver: {e}", loaded.origin, descriptor.version)
        })?;
        let learned = descriptor.default_config.clone().map(|config| Learned { config, state: None });
        let mut policy = PolicyComponent { loaded, contract, descriptor, binding, live: None, learned, give_up: GiveUp::default() };
        policy.live = Some(policy.instantiate(runtime)?);
        Ok(policy)
    }

    /// A 2.x policy's parameters and what it learned up to its last successful call (`None` for
    /// a 1.x policy, which learns nothing).
    pub fn learned(&self) -> Option<&Learned> {
        self.learned.as_ref()
    }

    /// Starts a 2.x policy over from `learned` (parameters, or a state to continue from, e.g.
    /// persisted beside the store or exported by the version it replaces); refused, with the
    /// component's reason, when it cannot take them. A 1.x policy refuses any.
    pub fn start_from(&mut self, runtime: &Runtime, learned: Learned) -> Result<()> {
        if self.learned.is_none() {
            bail!("{} ({}) is a {PACKAGE}@1 policy: it keeps no state and takes no parameters", self.origin(), self.label());
        }
        let previous = self.learned.replace(learned);
        match self.instantiate(runtime) {
            Ok(live) => {
                self.live = Some(live);
                Ok(())
            }
            Err(e) => {
                self.learned = previous;
                Err(e)
            }
        }
    }

    /// A live instance: a 2.x learner continues from what was learned.
    fn instantiate(&self, runtime: &Runtime) -> Result<(Store<Sandbox>, Live)> {
        let origin = &self.loaded.origin;
        let mut store = runtime.store();
        let fault = |what: &str, e, store: &Store<Sandbox>| call_error(origin, what, e, store.data().stderr());
        let live = match (&self.binding, &self.learned) {
            (Binding::V1(pre), _) => Live::V1(pre.instantiate(&mut store).map_err(|e| fault("instantiate", e, &store))?),
            (Binding::V2(pre), Some(Learned { config, state })) => {
                let made = match state {
                    None => pre.create(&mut store, config).map_err(|e| fault("create", e, &store))?,
                    Some(state) => {
                        let format = self.descriptor.state_format.as_deref().unwrap_or_default();
                        pre.import(&mut store, format, state).map_err(|e| fault("import-state", e, &store))?
                    }
                };
                Live::V2(made.map_err(|refused| anyhow!("{origin} ({}) refused to start: {refused}", self.label()))?)
            }
            (Binding::V2(_), None) => unreachable!("a 2.x policy always has parameters"),
        };
        Ok((store, live))
    }

    /// Where it came from.
    pub fn origin(&self) -> &str {
        &self.loaded.origin
    }

    /// sha256 of its bytes.
    pub fn digest(&self) -> &str {
        &self.loaded.digest
    }

    /// The contract it was bound as.
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// Its self-description.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// `name@version`, as dead letters and payloads name it.
    pub fn label(&self) -> String {
        format!("{}@{}", self.descriptor.name, self.descriptor.version)
    }

    /// One call over `slice`; a fault or a malformed answer drops the instance.
    fn call(&mut self, runtime: &Runtime, slice: &RecordSlice<'_>) -> Result<Decisions> {
        if self.live.is_none() {
            self.live = Some(self.instantiate(runtime)?);
        }
        let (store, live) = self.live.as_mut().expect("just made");
        store.set_epoch_deadline(runtime.limits().deadline_ticks());
        let started = std::time::Instant::now();
        let answer = match live {
            Live::V1(instance) => instance.decide(store, slice),
            Live::V2(instance) => instance.decide(store, slice),
        };
        let elapsed = started.elapsed();
        let mut result = match answer {
            Ok(Ok(d)) => check(d, slice.line.len()),
            Ok(Err(refused)) => Err(anyhow!("{}: refused the batch: {refused:#}", self.loaded.origin)),
            Err(trap) => Err(call_error(&self.loaded.origin, "decide", trap, store.data().stderr())),
        };
        // What a 2.x learner knows now is where a replacement instance continues from.
        if let (Ok(_), Live::V2(instance), Some(learned)) = (&result, &*live, &mut self.learned) {
            store.set_epoch_deadline(runtime.limits().deadline_ticks());
            match instance.export_state(store) {
                Ok(state) => learned.state = Some(state),
                Err(trap) => result = Err(call_error(&self.loaded.origin, "export-state", trap, store.data().stderr())),
            }
        }
        let fault = result.as_ref().err().map(|e| format!("{e:#}"));
        sg_metrics::METRICS.call(&self.label(), slice.line.len(), elapsed, fault.as_deref());
        if result.is_err() {
            self.live = None;
        }
        result
    }

    /// Decides every record of `batch`. When a call fails, the records that make it fail are
    /// isolated ([`bisect`]): they come back in the list with the reason (and
    /// `keep = false` in the decisions); every other record is decided as in a clean run. Fails
    /// only when the policy fails every record of [`GIVE_UP_AFTER`](super::contain::GIVE_UP_AFTER) consecutive batches
    /// (a broken policy, not bad records).
    pub fn decide(&mut self, runtime: &Runtime, batch: &LogBatch<'_>) -> Result<(Decisions, Vec<FailedRecord>)> {
        let rows = batch.line.len();
        let fault = match self.call(runtime, batch) {
            Ok(d) => {
                self.give_up.failed_all(false);
                return Ok((d, Vec::new()));
            }
            Err(e) => format!("{e:#}"),
        };
        let mut merged = Merged::new(rows);
        let mut budget = Budget::new(runtime, BISECTION_DEADLINES);
        let failed = bisect((0..rows).collect(), fault, &mut budget, &mut |part: &[usize]| {
            let (start, end) = (part[0], part[part.len() - 1] + 1);
            Ok(match self.call(runtime, &slice(batch, start, end)) {
                Ok(d) => {
                    merged.put(start, &d);
                    None
                }
                Err(e) => Some(format!("{e:#}")),
            })
        })?;
        let failed: Vec<FailedRecord> = failed.into_iter().map(|(row, reason)| FailedRecord { row, reason }).collect();
        if self.give_up.failed_all(failed.len() == rows) {
            bail!("{} ({}) {}: {}", self.origin(), self.label(), GiveUp::reason("record"), failed[0].reason);
        }
        Ok((merged.finish(), failed))
    }
}

/// Rows `start..end` of a batch: the same buffers, a window of offsets.
pub fn slice<'a>(batch: &LogBatch<'a>, start: usize, end: usize) -> LogBatch<'a> {
    let cut = |c: TextColumn<'a>| TextColumn { bytes: c.bytes, offsets: &c.offsets[start..=end] };
    LogBatch {
        format: batch.format,
        line: cut(batch.line),
        original_text: cut(batch.original_text),
        timestamp: cut(batch.timestamp),
        log_level: cut(batch.log_level),
        source: cut(batch.source),
        node_type: cut(batch.node_type),
    }
}

/// Checks that every column of an answer has one row per record.
fn check(d: Decisions, rows: usize) -> Result<Decisions> {
    if d.keep.len() != rows {
        bail!("answered {} keep flags for {rows} records", d.keep.len());
    }
    let columns = [(&d.key, "key".to_string()), (&d.embed_text, "embed-text".to_string())]
        .into_iter()
        .chain(d.payload.iter().map(|(n, c)| (c, format!("payload {n:?}"))));
    for (c, name) in columns {
        c.view().check_text(rows, &name).map_err(|e| anyhow!("malformed answer: {e}"))?;
    }
    Ok(d)
}

/// One record's decision, owned: keep, key, embed text, payload fields.
type RowDecision = (bool, String, String, Vec<(String, String)>);

/// Decisions of sub-batches put back in row order; rows never decided stay `keep = false`.
struct Merged {
    rows: Vec<Option<RowDecision>>,
}

impl Merged {
    fn new(rows: usize) -> Self {
        Merged { rows: vec![None; rows] }
    }

    fn put(&mut self, start: usize, d: &Decisions) {
        for i in 0..d.keep.len() {
            let payload = d.payload.iter().map(|(n, c)| (n.clone(), c.get(i).to_string())).collect();
            self.rows[start + i] = Some((d.keep[i], d.key.get(i).to_string(), d.embed_text.get(i).to_string(), payload));
        }
    }

    fn finish(self) -> Decisions {
        let mut names: Vec<String> = Vec::new();
        for (_, _, _, p) in self.rows.iter().flatten() {
            for (n, _) in p {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        let mut out = Decisions {
            keep: Vec::with_capacity(self.rows.len()),
            key: TextColumnBuf::default(),
            embed_text: TextColumnBuf::default(),
            payload: names.iter().map(|n| (n.clone(), TextColumnBuf::default())).collect(),
        };
        for row in &self.rows {
            let (keep, key, embed, payload) = match row {
                Some((k, key, e, p)) => (*k, key.as_str(), e.as_str(), Some(p)),
                None => (false, "", "", None),
            };
            out.keep.push(keep);
            out.key.push(key);
            out.embed_text.push(embed);
            for (name, column) in &mut out.payload {
                let value = payload.and_then(|p| p.iter().find(|(n, _)| n == name)).map_or("", |(_, v)| v.as_str());
                column.push(value);
            }
        }
        out
    }
}
