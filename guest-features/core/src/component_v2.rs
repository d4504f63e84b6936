//! `streamguard:features@2.0.0` bindings: events with `destination-ip`, aggregations bounded to
//! an event-time window, and state export/import ([`crate::state`]).
//!
//! A component crate is one line: `sg_features_core::features_component_v2!(Streamguard2);`.

use std::cell::RefCell;

use crate::columns::{ColumnData, ColumnRole, ColumnType, DictColumn, EventColumns};
use crate::component::{wire_columns, wire_table};
use crate::{Aggregator, Flavor, state};

/// Generated bindings of the `features@2.0.0` world.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/features-2",
        world: "feature-extractor",
        pub_export_macro: true,
        default_bindings_module: "sg_features_core::component_v2::bindings",
    });
}

use bindings::exports::streamguard::features::extractor::{self as extractor, Guest, GuestAggregation};
use bindings::streamguard::features::types as wire;

/// A `features@2` component type: one flavor, reported under `VERSION`.
pub trait FlavorComponentV2: 'static {
    /// The flavor this component computes.
    const FLAVOR: Flavor;
    /// The implementation version it reports.
    const VERSION: &'static str = Self::FLAVOR.version();
}

fn dict(c: &wire::DictColumn) -> DictColumn<'_> {
    DictColumn { dict_bytes: &c.dict_bytes, dict_offsets: &c.dict_offsets, codes: &c.codes }
}

impl<T: FlavorComponentV2> Guest for T {
    type Aggregation = Aggregation<T>;

    fn describe() -> wire::Descriptor {
        let flavor = T::FLAVOR;
        wire::Descriptor {
            name: flavor.name().into(),
            version: T::VERSION.into(),
            description: flavor.description().into(),
            columns: wire_columns!(wire, flavor),
            state_format: Some(state::FORMAT.into()),
        }
    }
}

/// The `aggregation` resource: an [`Aggregator`] bounded to a window.
pub struct Aggregation<T> {
    inner: RefCell<Aggregator>,
    window: Option<wire::Window>,
    _flavor: std::marker::PhantomData<T>,
}

/// Row `i` of every column of `batch` for the rows in `keep`, as owned columns.
struct Selected {
    timestamp_ms: Vec<i64>,
    threat_score: Vec<f64>,
    codes: [Vec<u32>; 7],
}

impl Selected {
    fn of(batch: &wire::EventBatch, keep: &[usize]) -> Selected {
        let pick = |c: &wire::DictColumn| keep.iter().map(|&i| c.codes[i]).collect::<Vec<u32>>();
        Selected {
            timestamp_ms: keep.iter().map(|&i| batch.timestamp_ms[i]).collect(),
            threat_score: keep.iter().map(|&i| batch.threat_score[i]).collect(),
            codes: [
                pick(&batch.event_type),
                pick(&batch.user),
                pick(&batch.source_ip),
                pick(&batch.status),
                pick(&batch.location),
                pick(&batch.geo_location),
                pick(&batch.destination_ip),
            ],
        }
    }
}

fn columns<'a>(batch: &'a wire::EventBatch, rows: Option<&'a Selected>) -> EventColumns<'a> {
    let column = |c: &'a wire::DictColumn, k: usize| match rows {
        Some(s) => DictColumn { codes: &s.codes[k], ..dict(c) },
        None => dict(c),
    };
    EventColumns {
        timestamp_ms: rows.map_or(&batch.timestamp_ms, |s| &s.timestamp_ms),
        event_type: column(&batch.event_type, 0),
        user: column(&batch.user, 1),
        source_ip: column(&batch.source_ip, 2),
        status: column(&batch.status, 3),
        threat_score: rows.map_or(&batch.threat_score, |s| &s.threat_score),
        location: column(&batch.location, 4),
        geo_location: column(&batch.geo_location, 5),
        destination_ip: Some(column(&batch.destination_ip, 6)),
    }
}

impl<T: FlavorComponentV2> GuestAggregation for Aggregation<T> {
    fn new(window: Option<wire::Window>) -> Self {
        Aggregation { inner: RefCell::new(Aggregator::new(T::FLAVOR)), window, _flavor: Default::default() }
    }

    fn push(&self, batch: wire::EventBatch) -> Vec<wire::RejectedEvent> {
        let outside: Vec<usize> = match self.window {
            Some(w) => (0..batch.timestamp_ms.len())
                .filter(|&i| !(w.start_ms..w.end_ms).contains(&batch.timestamp_ms[i]))
                .collect(),
            None => Vec::new(),
        };
        let pushed = if outside.is_empty() {
            self.inner.borrow_mut().push(&columns(&batch, None))
        } else {
            let mut out = outside.iter().peekable();
            let keep: Vec<usize> =
                (0..batch.timestamp_ms.len()).filter(|i| out.next_if_eq(&i).is_none()).collect();
            let selected = Selected::of(&batch, &keep);
            self.inner.borrow_mut().push(&columns(&batch, Some(&selected)))
        };
        if let Err(e) = pushed {
            // A malformed batch is a host bug, not bad data: trap with the reason.
            panic!("malformed event batch: {e}");
        }
        let w = self.window.unwrap_or(wire::Window { start_ms: 0, end_ms: 0 });
        outside
            .into_iter()
            .map(|i| wire::RejectedEvent {
                index: i as u32,
                reason: format!(
                    "event time {} ms is outside the window [{}, {}) ms",
                    batch.timestamp_ms[i], w.start_ms, w.end_ms
                ),
            })
            .collect()
    }

    fn take(&self) -> wire::FeatureTable {
        wire_table!(wire, self.inner.borrow_mut().take())
    }

    fn export_state(&self) -> Vec<u8> {
        self.inner.borrow().export_state()
    }

    fn import_state(window: Option<wire::Window>, format: String, state: Vec<u8>) -> Result<extractor::Aggregation, String> {
        let inner = Aggregator::import_state(T::FLAVOR, &format, &state)?;
        Ok(extractor::Aggregation::new(Aggregation::<T> { inner: RefCell::new(inner), window, _flavor: Default::default() }))
    }
}

/// Declares the `features@2` component type for a flavor (optionally under another
/// implementation version) and exports it.
#[macro_export]
macro_rules! features_component_v2 {
    ($flavor:ident) => {
        struct Component;
        impl $crate::component_v2::FlavorComponentV2 for Component {
            const FLAVOR: $crate::Flavor = $crate::Flavor::$flavor;
        }
        $crate::component_v2::bindings::export!(Component with_types_in $crate::component_v2::bindings);
    };
    ($flavor:ident, $version:literal) => {
        struct Component;
        impl $crate::component_v2::FlavorComponentV2 for Component {
            const FLAVOR: $crate::Flavor = $crate::Flavor::$flavor;
            const VERSION: &'static str = $version;
        }
        $crate::component_v2::bindings::export!(Component with_types_in $crate::component_v2::bindings);
    };
}

