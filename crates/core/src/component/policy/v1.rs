//! Bindings for `streamguard:dedup@1.x`.

use anyhow::Result;
use sg_dedup_core::{Decisions, InputFormat, TextColumn, TextColumnBuf};
use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use super::{Descriptor, RecordSlice};
use crate::runtime::Sandbox;

wasmtime::component::bindgen!({
    path: "../../wit/dedup-1",
    world: "dedup",
    // Batches are lowered straight from the host's buffers; a sub-batch is a slice of offsets.
    ownership: Borrowing { duplicate_if_necessary: true },
});

use streamguard::dedup::types as wire;

/// The contract major this module binds.
pub const MAJOR: u64 = 1;

/// Pre-instantiated component (linking done once).
pub struct Pre(DedupPre<Sandbox>);

/// A live instance.
pub struct Instance(Dedup);

fn column<'a>(c: TextColumn<'a>) -> wire::TextColumnParam<'a> {
    wire::TextColumnParam { bytes: c.bytes, offsets: c.offsets }
}

fn owned(c: wire::TextColumnResult) -> TextColumnBuf {
    TextColumnBuf { bytes: c.bytes, offsets: c.offsets }
}

impl Pre {
    /// Links and type-checks.
    pub fn new(linker: &Linker<Sandbox>, component: &Component) -> wasmtime::Result<Pre> {
        Ok(Pre(DedupPre::new(linker.instantiate_pre(component)?)?))
    }

    /// A fresh instance in `store`.
    pub fn instantiate(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<Instance> {
        Ok(Instance(self.0.instantiate(store)?))
    }
}

impl Instance {
    /// `describe`.
    pub fn describe(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<Descriptor> {
        let d = self.0.streamguard_dedup_policy().call_describe(store)?;
        Ok(Descriptor { name: d.name, version: d.version, description: d.description, state_format: None, default_config: None })
    }

    /// `decide` over the records of `slice`.
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
        let r = self.0.streamguard_dedup_policy().call_decide(store, batch)?;
        Ok(r.map_err(anyhow::Error::msg).map(|d| Decisions {
            keep: d.keep,
            key: owned(d.key),
            embed_text: owned(d.embed_text),
            payload: d.payload.into_iter().map(|p| (p.name, owned(p.values))).collect(),
        }))
    }
}
