//! Features components: load, check the contract, describe, aggregate.
//!
//! One binding module per contract major (`v1`, `v2`), dispatched through [`Binding`]; a
//! component exporting a major this host does not know is refused with both versions named.

/// The host's column specs from a contract major's wire `columns` (`$wire`: its `types`).
macro_rules! column_specs {
    ($wire:ident, $columns:expr) => {
        $columns
            .into_iter()
            .map(|c| super::ColumnSpec {
                name: c.name,
                ty: match c.ty {
                    $wire::ColumnType::Int64 => sg_features_core::ColumnType::Int64,
                    $wire::ColumnType::Float64 => sg_features_core::ColumnType::Float64,
                    $wire::ColumnType::TimestampMs => sg_features_core::ColumnType::TimestampMs,
                    $wire::ColumnType::Utf8 => sg_features_core::ColumnType::Utf8,
                },
                role: match c.role {
                    $wire::ColumnRole::Key => sg_features_core::ColumnRole::Key,
                    $wire::ColumnRole::ModelInput => sg_features_core::ColumnRole::ModelInput,
                    $wire::ColumnRole::Output => sg_features_core::ColumnRole::Output,
                    $wire::ColumnRole::Internal => sg_features_core::ColumnRole::Internal,
                },
                doc: c.doc,
            })
            .collect()
    };
}

/// The host's feature table from a contract major's wire `feature-table`.
macro_rules! feature_table {
    ($wire:ident, $table:expr) => {{
        let t = $table;
        sg_features_core::FeatureTable {
            rows: t.rows as usize,
            columns: t
                .columns
                .into_iter()
                .map(|c| match c {
                    $wire::ColumnData::Int64(v) => sg_features_core::ColumnData::Int64(v),
                    $wire::ColumnData::Float64(v) => sg_features_core::ColumnData::Float64(v),
                    $wire::ColumnData::TimestampMs(v) => sg_features_core::ColumnData::TimestampMs(v),
                    $wire::ColumnData::Utf8(d) => sg_features_core::ColumnData::Utf8(sg_features_core::columns::OwnedDict {
                        dict_bytes: d.dict_bytes,
                        dict_offsets: d.dict_offsets,
                        codes: d.codes,
                    }),
                })
                .collect(),
        }
    }};
}

mod aggregation;
mod v1;
mod v2;

pub use aggregation::{BatchFailures, Carried, FailedEvent, FeatureAggregation, Migrated, Quarantined, Reread, Taken};

use std::sync::Arc;

use anyhow::{Result, bail};
use sg_features_core::columns::{ColumnData, ColumnRole, ColumnType, FeatureTable};
use wasmtime::Store;

use super::{ComponentSource, Contract, LoadedComponent, call_error};
use sg_model::events::EventBatch;
use crate::runtime::{Runtime, Sandbox};

/// WIT package of the features contract.
pub const PACKAGE: &str = "streamguard:features";
/// Contract majors this host accepts.
pub const ACCEPTED_MAJORS: &[u64] = &[v1::MAJOR, v2::MAJOR];

/// The event-time window an aggregation covers, `[start_ms, end_ms)`; `features@2` components
/// see it (and refuse events outside it), 1.x components do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First millisecond in the window.
    pub start_ms: i64,
    /// First millisecond after it.
    pub end_ms: i64,
}

/// One output column, as the component describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ColumnSpec {
    /// Column name.
    pub name: String,
    /// Physical type.
    #[serde(serialize_with = "ser_type")]
    pub ty: ColumnType,
    /// What the host does with it.
    #[serde(serialize_with = "ser_role")]
    pub role: ColumnRole,
    /// What it means.
    pub doc: String,
}

fn ser_type<S: serde::Serializer>(t: &ColumnType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(type_name(*t))
}

fn ser_role<S: serde::Serializer>(r: &ColumnRole, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match r {
        ColumnRole::Key => "key",
        ColumnRole::ModelInput => "model-input",
        ColumnRole::Output => "output",
        ColumnRole::Internal => "internal",
    })
}

/// WIT name of a column type.
pub fn type_name(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Int64 => "int64",
        ColumnType::Float64 => "float64",
        ColumnType::TimestampMs => "timestamp-ms",
        ColumnType::Utf8 => "utf8",
    }
}

/// A features component's self-description, checked by the host.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Descriptor {
    /// Implementation name.
    pub name: String,
    /// Implementation version.
    pub version: String,
    /// What it computes.
    pub description: String,
    /// Output columns, in order.
    pub columns: Vec<ColumnSpec>,
    /// Format of the state its aggregations export and import (`features@2`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_format: Option<String>,
}

impl Descriptor {
    /// Index of the key column.
    pub fn key_index(&self) -> usize {
        self.columns.iter().position(|c| c.role == ColumnRole::Key).expect("validated: one key column")
    }

    /// Indices of the model inputs, in order.
    pub fn model_inputs(&self) -> Vec<usize> {
        self.columns.iter().enumerate().filter(|(_, c)| c.role == ColumnRole::ModelInput).map(|(i, _)| i).collect()
    }

    /// Names of the model inputs, in order.
    pub fn model_input_names(&self) -> Vec<String> {
        self.model_inputs().into_iter().map(|i| self.columns[i].name.clone()).collect()
    }

    fn validate(&self) -> Result<(), String> {
        let keys: Vec<_> = self.columns.iter().filter(|c| c.role == ColumnRole::Key).collect();
        match keys.as_slice() {
            [k] if k.ty == ColumnType::Utf8 => {}
            [k] => return Err(format!("key column `{}` is {}, must be utf8", k.name, type_name(k.ty))),
            _ => return Err(format!("{} key columns, must be exactly one", keys.len())),
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.columns {
            if c.name.is_empty() || !seen.insert(c.name.as_str()) {
                return Err(format!("column name {:?} is empty or repeated", c.name));
            }
            if c.role == ColumnRole::ModelInput && !matches!(c.ty, ColumnType::Int64 | ColumnType::Float64) {
                return Err(format!("model input `{}` is {}, must be int64 or float64", c.name, type_name(c.ty)));
            }
        }
        if self.model_inputs().is_empty() {
            return Err("no model-input columns".into());
        }
        if self.version.trim().is_empty() || self.name.trim().is_empty() {
            return Err("empty implementation name or version".into());
        }
        Ok(())
    }

    /// Checks a table against this description: column count, types, lengths, and finite
    /// model inputs (the detector cannot rank NaN or infinity).
    pub fn check_table(&self, table: &FeatureTable) -> Result<(), String> {
        if table.columns.len() != self.columns.len() {
            return Err(format!("{} columns, the descriptor lists {}", table.columns.len(), self.columns.len()));
        }
        for (spec, data) in self.columns.iter().zip(&table.columns) {
            let (ty, len) = match data {
                ColumnData::Int64(v) => (ColumnType::Int64, v.len()),
                ColumnData::Float64(v) => (ColumnType::Float64, v.len()),
                ColumnData::TimestampMs(v) => (ColumnType::TimestampMs, v.len()),
                ColumnData::Utf8(d) => {
                    if d.view().codes.iter().any(|&c| c != u32::MAX && c as usize >= d.view().entries()) {
                        return Err(format!("column `{}`: code outside its dictionary", spec.name));
                    }
                    (ColumnType::Utf8, d.codes.len())
                }
            };
            if ty != spec.ty {
                return Err(format!("column `{}` is {}, the descriptor says {}", spec.name, type_name(ty), type_name(spec.ty)));
            }
            if len != table.rows {
                return Err(format!("column `{}` has {len} values for {} rows", spec.name, table.rows));
            }
            if spec.role == ColumnRole::ModelInput
                && let ColumnData::Float64(v) = data
                && let Some(row) = v.iter().position(|x| !x.is_finite())
            {
                return Err(format!("model input `{}` is {} in row {row}", spec.name, v[row]));
            }
        }
        Ok(())
    }
}

/// An event a component refused, by index in the pushed batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedEvent {
    /// Index in the batch.
    pub index: u32,
    /// Why.
    pub reason: String,
}

/// The binding of the contract major the component exports.
enum Binding {
    V1(v1::Pre),
    V2(v2::Pre),
}

/// A loaded, type-checked features component that described itself.
pub struct FeatureComponent {
    loaded: LoadedComponent,
    contract: Contract,
    binding: Binding,
    descriptor: Descriptor,
}

impl FeatureComponent {
    /// Loads, checks the contract version, links with no capabilities, and reads the descriptor.
    /// Shared (`Arc`): open aggregations keep their version alive across a swap.
    pub fn load(runtime: &Runtime, source: &ComponentSource) -> Result<Arc<FeatureComponent>> {
        let loaded = LoadedComponent::load(runtime, source)?;
        let (contract, binding) = loaded.bind(runtime, PACKAGE, ACCEPTED_MAJORS, |major, linker, c| {
            Ok(match major {
                v1::MAJOR => Binding::V1(v1::Pre::new(linker, c)?),
                v2::MAJOR => Binding::V2(v2::Pre::new(linker, c)?),
                other => unreachable!("major {other} passed the contract check"),
            })
        })?;
        let mut store = runtime.store();
        let descriptor = match &binding {
            Binding::V1(pre) => pre.describe(&mut store),
            Binding::V2(pre) => pre.describe(&mut store),
        }
        .map_err(|e| call_error(&loaded.origin, "describe", e, store.data().stderr()))?;
        if let Err(e) = descriptor.validate() {
            bail!("{} describes an unusable schema: {e}", loaded.origin);
        }
        Ok(Arc::new(FeatureComponent { loaded, contract, binding, descriptor }))
    }

    /// The component's self-description.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The contract it was bound as.
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// Where it came from.
    pub fn origin(&self) -> &str {
        &self.loaded.origin
    }

    /// sha256 of its bytes.
    pub fn digest(&self) -> &str {
        &self.loaded.digest
    }

    /// sha256 of the precompiled code it runs, when it was loaded from a bundle's.
    pub fn precompiled_digest(&self) -> Option<&str> {
        self.loaded.precompiled.as_deref()
    }

    /// `name@version` for messages and dead letters.
    pub fn label(&self) -> String {
        format!("{}@{}", self.descriptor.name, self.descriptor.version)
    }

    /// A fresh sandboxed instance with an empty aggregation (no window: a bounded run),
    /// contained: see [`FeatureAggregation`].
    pub fn aggregation<'r>(self: &Arc<Self>, runtime: &'r Runtime) -> Result<FeatureAggregation<'r>> {
        FeatureAggregation::new(self.clone(), runtime, None)
    }

    /// As [`FeatureComponent::aggregation`], for the events of one window.
    pub fn windowed_aggregation<'r>(self: &Arc<Self>, runtime: &'r Runtime, window: Window) -> Result<FeatureAggregation<'r>> {
        FeatureAggregation::new(self.clone(), runtime, Some(window))
    }

    /// A new store and instance with an empty aggregation over `window`.
    fn instantiate(&self, runtime: &Runtime, window: Option<Window>) -> Result<(Store<Sandbox>, Instance)> {
        let mut store = runtime.store();
        let instance = match &self.binding {
            Binding::V1(pre) => pre.aggregation(&mut store).map(Instance::V1),
            Binding::V2(pre) => pre.aggregation(&mut store, window).map(Instance::V2),
        }
        .map_err(|e| call_error(&self.loaded.origin, "instantiate", e, store.data().stderr()))?;
        Ok((store, instance))
    }

    /// A new store and instance holding `state` exported in `format`: `Ok(Err(reason))` when
    /// this component does not take state (1.x) or refuses this state.
    fn import(
        &self,
        runtime: &Runtime,
        window: Option<Window>,
        format: &str,
        state: &[u8],
    ) -> Result<Result<(Store<Sandbox>, Instance), String>> {
        let Binding::V2(pre) = &self.binding else {
            return Ok(Err(format!("{} is bound as {}, which carries no state", self.label(), self.contract)));
        };
        let mut store = runtime.store();
        store.set_epoch_deadline(runtime.limits().deadline_ticks());
        let imported = pre
            .import(&mut store, window, format, state)
            .map_err(|e| call_error(&self.loaded.origin, "import-state", e, store.data().stderr()))?;
        Ok(imported.map(|i| (store, Instance::V2(i))))
    }
}

enum Instance {
    V1(v1::Instance),
    V2(v2::Instance),
}

impl Instance {
    fn push(&self, store: &mut Store<Sandbox>, batch: &EventBatch) -> wasmtime::Result<Vec<RejectedEvent>> {
        match self {
            Instance::V1(i) => i.push(store, batch),
            Instance::V2(i) => i.push(store, batch),
        }
    }

    fn take(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<FeatureTable> {
        match self {
            Instance::V1(i) => i.take(store),
            Instance::V2(i) => i.take(store),
        }
    }

    /// The state, when the contract carries it.
    fn export_state(&self, store: &mut Store<Sandbox>) -> Option<wasmtime::Result<Vec<u8>>> {
        match self {
            Instance::V1(_) => None,
            Instance::V2(i) => Some(i.export_state(store)),
        }
    }
}
