//! `streamguard:features@1.0.0` bindings and the glue from the wire types to [`Aggregator`].
//!
//! A component crate is one line: `sg_features_core::features_component!(Streamguard);`.

use std::cell::RefCell;

use crate::columns::{ColumnData, ColumnRole, ColumnType, DictColumn, EventColumns};
use crate::{Aggregator, Flavor};

/// Generated bindings of the `features` world.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/features-1",
        world: "features",
        pub_export_macro: true,
        default_bindings_module: "sg_features_core::component::bindings",
    });
}

use bindings::exports::streamguard::features::extractor::{Guest, GuestAggregation};
use bindings::streamguard::features::types as wire;

/// A component type bound to one flavor; `features_component!` declares one.
pub trait FlavorComponent: 'static {
    /// The flavor this component computes.
    const FLAVOR: Flavor;
}

fn dict(c: &wire::DictColumn) -> DictColumn<'_> {
    DictColumn { dict_bytes: &c.dict_bytes, dict_offsets: &c.dict_offsets, codes: &c.codes }
}

/// The wire column specs of `flavor`'s schema, in the `types` module `$wire` of a contract major.
macro_rules! wire_columns {
    ($wire:ident, $flavor:expr) => {
        $flavor
            .schema()
            .iter()
            .map(|c| $wire::ColumnSpec {
                name: c.name.into(),
                ty: match c.ty {
                    ColumnType::Int64 => $wire::ColumnType::Int64,
                    ColumnType::Float64 => $wire::ColumnType::Float64,
                    ColumnType::TimestampMs => $wire::ColumnType::TimestampMs,
                    ColumnType::Utf8 => $wire::ColumnType::Utf8,
                },
                role: match c.role {
                    ColumnRole::Key => $wire::ColumnRole::Key,
                    ColumnRole::ModelInput => $wire::ColumnRole::ModelInput,
                    ColumnRole::Output => $wire::ColumnRole::Output,
                    ColumnRole::Internal => $wire::ColumnRole::Internal,
                },
                doc: c.doc.into(),
            })
            .collect()
    };
}

/// A [`crate::FeatureTable`] as the `feature-table` of the `types` module `$wire`.
macro_rules! wire_table {
    ($wire:ident, $table:expr) => {{
        let table = $table;
        $wire::FeatureTable {
            rows: table.rows as u32,
            columns: table
                .columns
                .into_iter()
                .map(|c| match c {
                    ColumnData::Int64(v) => $wire::ColumnData::Int64(v),
                    ColumnData::Float64(v) => $wire::ColumnData::Float64(v),
                    ColumnData::TimestampMs(v) => $wire::ColumnData::TimestampMs(v),
                    ColumnData::Utf8(d) => $wire::ColumnData::Utf8($wire::DictColumn {
                        dict_bytes: d.dict_bytes,
                        dict_offsets: d.dict_offsets,
                        codes: d.codes,
                    }),
                })
                .collect(),
        }
    }};
}

pub(crate) use {wire_columns, wire_table};

impl<T: FlavorComponent> Guest for T {
    type Aggregation = Aggregation<T>;

    fn describe() -> wire::Descriptor {
        let flavor = T::FLAVOR;
        wire::Descriptor {
            name: flavor.name().into(),
            version: flavor.version().into(),
            description: flavor.description().into(),
            columns: wire_columns!(wire, flavor),
        }
    }
}

/// The `aggregation` resource.
pub struct Aggregation<T> {
    inner: RefCell<Aggregator>,
    _flavor: std::marker::PhantomData<T>,
}

impl<T: FlavorComponent> GuestAggregation for Aggregation<T> {
    fn new() -> Self {
        Aggregation { inner: RefCell::new(Aggregator::new(T::FLAVOR)), _flavor: Default::default() }
    }

    fn push(&self, batch: wire::EventBatch) -> Vec<wire::RejectedEvent> {
        let events = EventColumns {
            timestamp_ms: &batch.timestamp_ms,
            event_type: dict(&batch.event_type),
            user: dict(&batch.user),
            source_ip: dict(&batch.source_ip),
            status: dict(&batch.status),
            threat_score: &batch.threat_score,
            location: dict(&batch.location),
            geo_location: dict(&batch.geo_location),
            destination_ip: None,
        };
        if let Err(e) = self.inner.borrow_mut().push(&events) {
            // A malformed batch is a host bug, not bad data: trap with the reason.
            panic!("malformed event batch: {e}");
        }
        Vec::new()
    }

    fn take(&self) -> wire::FeatureTable {
        wire_table!(wire, self.inner.borrow_mut().take())
    }
}

/// Declares the component type for a flavor and exports it.
#[macro_export]
macro_rules! features_component {
    ($flavor:ident) => {
        struct Component;
        impl $crate::component::FlavorComponent for Component {
            const FLAVOR: $crate::Flavor = $crate::Flavor::$flavor;
        }
        $crate::component::bindings::export!(Component with_types_in $crate::component::bindings);
    };
}
