//! Bindings for `streamguard:features@2.x`: `destination-ip`, window-bounded aggregations, and
//! state export/import.

use anyhow::Result;
use sg_features_core::columns::{FeatureTable, OwnedDict};
use wasmtime::Store;
use wasmtime::component::{Linker, ResourceAny};

use super::{Descriptor, RejectedEvent, Window};
use sg_model::events::EventBatch;
use crate::runtime::Sandbox;

wasmtime::component::bindgen!({
    path: "../../wit/features-2",
    world: "feature-extractor",
    // Batches are lowered straight from the host's vectors, not copied into owned records first.
    ownership: Borrowing { duplicate_if_necessary: true },
});

use exports::streamguard::features::extractor::Guest;
use streamguard::features::types as wire;

/// The contract major this module binds.
pub const MAJOR: u64 = 2;

/// A live v2 instance and its aggregation resource.
pub struct Instance {
    bindings: FeatureExtractor,
    aggregation: ResourceAny,
}

fn extractor(bindings: &FeatureExtractor) -> &Guest {
    bindings.streamguard_features_extractor()
}

fn window(w: Option<Window>) -> Option<wire::Window> {
    w.map(|w| wire::Window { start_ms: w.start_ms, end_ms: w.end_ms })
}

/// Pre-instantiated component (linking done once).
pub struct Pre(FeatureExtractorPre<Sandbox>);

impl Pre {
    /// Links `component` against WASI (which grants nothing) and type-checks its exports.
    pub fn new(linker: &Linker<Sandbox>, component: &wasmtime::component::Component) -> Result<Pre> {
        Ok(Pre(FeatureExtractorPre::new(linker.instantiate_pre(component)?)?))
    }

    /// Instantiates and asks the component to describe itself.
    pub fn describe(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<Descriptor> {
        let bindings = self.0.instantiate(&mut *store)?;
        let d = extractor(&bindings).call_describe(&mut *store)?;
        Ok(Descriptor {
            name: d.name,
            version: d.version,
            description: d.description,
            columns: column_specs!(wire, d.columns),
            state_format: d.state_format,
        })
    }

    /// Instantiates and opens an empty aggregation over `w`.
    pub fn aggregation(&self, store: &mut Store<Sandbox>, w: Option<Window>) -> wasmtime::Result<Instance> {
        let bindings = self.0.instantiate(&mut *store)?;
        let aggregation = extractor(&bindings).aggregation().call_constructor(&mut *store, window(w))?;
        Ok(Instance { bindings, aggregation })
    }

    /// Instantiates and opens an aggregation over `w` holding `state` (in `format`); the inner
    /// error is the component's reason for refusing the state.
    pub fn import(
        &self,
        store: &mut Store<Sandbox>,
        w: Option<Window>,
        format: &str,
        state: &[u8],
    ) -> wasmtime::Result<Result<Instance, String>> {
        let bindings = self.0.instantiate(&mut *store)?;
        let imported = extractor(&bindings).aggregation().call_import_state(&mut *store, window(w), format, state)?;
        Ok(imported.map(|aggregation| Instance { bindings, aggregation }))
    }
}

fn dict(d: &OwnedDict) -> wire::DictColumnParam<'_> {
    wire::DictColumnParam { dict_bytes: &d.dict_bytes, dict_offsets: &d.dict_offsets, codes: &d.codes }
}

impl Instance {
    /// Pushes a batch; returns the events the component refused.
    pub fn push(&self, store: &mut Store<Sandbox>, batch: &EventBatch) -> wasmtime::Result<Vec<RejectedEvent>> {
        let wire_batch = wire::EventBatch {
            timestamp_ms: &batch.timestamp_ms,
            event_type: dict(&batch.event_type),
            user: dict(&batch.user),
            source_ip: dict(&batch.source_ip),
            status: dict(&batch.status),
            threat_score: &batch.threat_score,
            location: dict(&batch.location),
            geo_location: dict(&batch.geo_location),
            destination_ip: dict(&batch.destination_ip),
        };
        let rejected = extractor(&self.bindings).aggregation().call_push(&mut *store, self.aggregation, wire_batch)?;
        Ok(rejected.into_iter().map(|r| RejectedEvent { index: r.index, reason: r.reason }).collect())
    }

    /// Takes the per-key table and resets the aggregation.
    pub fn take(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<FeatureTable> {
        let t = extractor(&self.bindings).aggregation().call_take(&mut *store, self.aggregation)?;
        Ok(feature_table!(wire, t))
    }

    /// The aggregation's state, in the descriptor's format.
    pub fn export_state(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<Vec<u8>> {
        extractor(&self.bindings).aggregation().call_export_state(&mut *store, self.aggregation)
    }
}
