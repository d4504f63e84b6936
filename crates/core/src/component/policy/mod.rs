//! Dedup policy components (`streamguard:dedup`): decide keep / key / embed text / payload per
//! log record, in the sandbox, with the records that make the component fail isolated.

mod v1;

use anyhow::{Result, anyhow, bail};
use sg_dedup_core::{Decisions, LogBatch, TextColumn, TextColumnBuf};
use wasmtime::Store;

use super::contain::{Budget, GiveUp, bisect};
use super::{ComponentSource, Contract, LoadedComponent, call_error};
use crate::runtime::{Runtime, Sandbox};

/// WIT package of the dedup contract.
pub const PACKAGE: &str = "streamguard:dedup";
/// Contract majors this host accepts.
pub const ACCEPTED_MAJORS: &[u64] = &[v1::MAJOR];

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
}

enum Binding {
    V1(v1::Pre),
}

enum Live {
    V1(v1::Instance),
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
    give_up: GiveUp,
}

/// Call deadlines one batch's bisection may take (its probes decide parts of the batch).
const BISECTION_DEADLINES: u32 = 4;

impl PolicyComponent {
    /// Loads, checks the contract and reads the self-description.
    pub fn load(runtime: &Runtime, source: &ComponentSource) -> Result<PolicyComponent> {
        let loaded = LoadedComponent::load(runtime, source)?;
        let (contract, binding) = loaded.bind(runtime, PACKAGE, ACCEPTED_MAJORS, |_, linker, c| Ok(Binding::V1(v1::Pre::new(linker, c)?)))?;
        let (mut store, live) = instantiate(&binding, &loaded.origin, runtime)?;
        let Live::V1(instance) = &live;
        let descriptor = instance
            .describe(&mut store)
            .map_err(|e| call_error(&loaded.origin, "describe", e, store.data().stderr()))?;
        semver::Version::parse(&descriptor.version).map_err(|e| {
            anyhow!("{}: implementation version {:?} is not semver: {e}", loaded.origin, descriptor.version)
        })?;
        Ok(PolicyComponent { loaded, contract, descriptor, binding, live: Some((store, live)), give_up: GiveUp::default() })
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
            self.live = Some(instantiate(&self.binding, &self.loaded.origin, runtime)?);
        }
        let (store, Live::V1(instance)) = self.live.as_mut().expect("just made");
        store.set_epoch_deadline(runtime.limits().deadline_ticks());
        let started = std::time::Instant::now();
        let answer = instance.decide(store, slice);
        let elapsed = started.elapsed();
        let result = match answer {
            Ok(Ok(d)) => check(d, slice.line.len()),
            Ok(Err(refused)) => Err(anyhow!("{}: refused the batch: {refused:#}", self.loaded.origin)),
            Err(trap) => Err(call_error(&self.loaded.origin, "decide", trap, store.data().stderr())),
        };
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

/// A fresh instance of the bound component in a new store.
fn instantiate(binding: &Binding, origin: &str, runtime: &Runtime) -> Result<(Store<Sandbox>, Live)> {
    let mut store = runtime.store();
    let Binding::V1(pre) = binding;
    let live = pre.instantiate(&mut store).map_err(|e| call_error(origin, "instantiate", e, store.data().stderr()))?;
    Ok((store, Live::V1(live)))
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
        let view = c.view();
        view.check(rows, &name).map_err(|e| anyhow!("malformed answer: {e}"))?;
        // Row by row: a buffer that is UTF-8 as a whole can still be cut inside a character.
        for i in 0..rows {
            view.get(i).map_err(|e| anyhow!("malformed answer: {name} {e}"))?;
        }
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
