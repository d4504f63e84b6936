//! Bindings for `streamguard:dedup@2.x`: stateful policies (a `learner` resource whose state is
//! exported and imported).

use anyhow::Result;
use sg_dedup_core::{Decisions, InputFormat, TextColumn, TextColumnBuf};
use wasmtime::Store;
use wasmtime::component::{Component, Linker, ResourceAny};

use super::{Descriptor, RecordSlice};
use crate::runtime::Sandbox;

wasmtime::component::bindgen!({
    path: "../../wit/dedup-2",
    world: "learning-dedup",
    // Batches are lowered straight from the host's buffers; a sub-batch is a slice of offsets.
    ownership: Borrowing { duplicate_if_necessary: true },
});

use exports::streamguard::dedup::policy::Guest;
use streamguard::dedup::types as wire;

/// The contract major this module binds.
pub const MAJOR: u64 = 2;

/// Pre-instantiated component (linking done once).
pub struct Pre(LearningDedupPre<Sandbox>);

/// A live instance and its learner.
pub struct Instance {
    bindings: LearningDedup,
    learner: ResourceAny,
}

fn policy(bindings: &LearningDedup) -> &Guest {
    bindings.streamguard_dedup_policy()
}

fn column<'a>(c: TextColumn<'a>) -> wire::TextColumnParam<'a> {
    wire::TextColumnParam { bytes: c.bytes, offsets: c.offsets }
}

fn owned(c: wire::TextColumnResult) -> TextColumnBuf {
    TextColumnBuf { bytes: c.bytes, offsets: c.offsets }
}

impl Pre {
    /// Links and type-checks.
    pub fn new(linker: &Linker<Sandbox>, component: &Component) -> wasmtime::Result<Pre> {
        Ok(Pre(LearningDedupPre::new(linker.instantiate_pre(component)?)?))
    }

    /// Instantiates and asks the component to describe itself.
    pub fn describe(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<Descriptor> {
        let bindings = self.0.instantiate(&mut *store)?;
        let d = policy(&bindings).call_describe(&mut *store)?;
        Ok(Descriptor {
            name: d.name,
            version: d.version,
            description: d.description,
            state_format: Some(d.state_format),
            default_config: Some(d.default_config),
        })
    }

    /// A fresh instance with a learner that knows nothing, with `config`; the inner error is
    /// the component's reason for refusing the parameters.
    pub fn create(&self, store: &mut Store<Sandbox>, config: &str) -> wasmtime::Result<Result<Instance, String>> {
        let bindings = self.0.instantiate(&mut *store)?;
        let created = policy(&bindings).learner().call_create(&mut *store, config)?;
        Ok(created.map(|learner| Instance { bindings, learner }))
    }

    /// A fresh instance whose learner continues from `state` (in `format`).
    pub fn import(&self, store: &mut Store<Sandbox>, format: &str, state: &[u8]) -> wasmtime::Result<Result<Instance, String>> {
        let bindings = self.0.instantiate(&mut *store)?;
        let imported = policy(&bindings).learner().call_import_state(&mut *store, format, state)?;
        Ok(imported.map(|learner| Instance { bindings, learner }))
    }
}

impl Instance {
    /// `decide` over the records of `slice`, learning from them.
    pub fn decide(&self, store: &mut Store<Sandbox>, slice: &RecordSlice<'_>) -> wasmtime::Result<Result<Decisions>> {
        let batch = wire::LogBatch {
            format: match slice.format {
                InputFormat::Json => wire::InputFormat::Json,
                InputFormat::RawHdfs => wire::InputFormat::RawHdfs,
            },
            line: column(slice.line),
            original_text: column(slice.original_text),
            timestamp: column(slice.timestamp),
            log_level: column(slice.log_level),
            source: column(slice.source),
            node_type: column(slice.node_type),
        };
        let r = policy(&self.bindings).learner().call_decide(&mut *store, self.learner, batch)?;
        Ok(r.map_err(anyhow::Error::msg).map(|d| Decisions {
            keep: d.keep,
            key: owned(d.key),
            embed_text: owned(d.embed_text),
            payload: d.payload.into_iter().map(|p| (p.name, owned(p.values))).collect(),
        }))
    }

    /// Everything the learner learned, in its descriptor's state format.
    pub fn export_state(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<Vec<u8>> {
        policy(&self.bindings).learner().call_export_state(&mut *store, self.learner)
    }
}
