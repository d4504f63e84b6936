//! Bindings for `streamguard:features@1.x`.

use anyhow::Result;
use sg_features_core::columns::{FeatureTable, OwnedDict};
use wasmtime::Store;
use wasmtime::component::{Linker, ResourceAny};

use super::{Descriptor, RejectedEvent};
use sg_model::events::EventBatch;
use crate::runtime::Sandbox;

wasmtime::component::bindgen!({
    path: "../../wit/features-1",
    world: "features",
    // Batches are lowered straight from the host's vectors, not copied into owned records first.
    ownership: Borrowing { duplicate_if_necessary: true },
});

use exports::streamguard::features::extractor::Guest;
use streamguard::features::types as wire;

/// The contract major this module binds.
pub const MAJOR: u64 = 1;

/// A live v1 instance and its aggregation resource.
pub struct Instance {
    bindings: Features,
    aggregation: ResourceAny,
}

fn extractor(bindings: &Features) -> &Guest {
    bindings.streamguard_features_extractor()
}

/// Pre-instantiated component (linking done once).
pub struct Pre(FeaturesPre<Sandbox>);

impl Pre {
    /// Links `component` against WASI (which grants nothing) and type-checks its exports.
    pub fn new(linker: &Linker<Sandbox>, component: &wasmtime::component::Component) -> Result<Pre> {
        Ok(Pre(FeaturesPre::new(linker.instantiate_pre(component)?)?))
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
            state_format: None,
        })
    }

    /// Instantiates and opens an empty aggregation.
    pub fn aggregation(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<Instance> {
        let bindings = self.0.instantiate(&mut *store)?;
        let aggregation = extractor(&bindings).aggregation().call_constructor(&mut *store)?;
        Ok(Instance { bindings, aggregation })
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
        };
        let rejected = extractor(&self.bindings).aggregation().call_push(&mut *store, self.aggregation, wire_batch)?;
        Ok(rejected.into_iter().map(|r| RejectedEvent { index: r.index, reason: r.reason }).collect())
    }

    /// Takes the per-key table and resets the aggregation.
    pub fn take(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<FeatureTable> {
        let t = extractor(&self.bindings).aggregation().call_take(&mut *store, self.aggregation)?;
        Ok(feature_table!(wire, t))
    }
}
