//! `streamguard:dedup@1.0.0` bindings and the glue from the wire types to [`decide`].
//!
//! A component crate is one line: `sg_dedup_core::dedup_component!(Template);`.

use crate::{InputFormat, LogBatch, Policy, TextColumn, TextColumnBuf, decide};

/// Generated bindings of the `dedup` world.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/dedup-1",
        world: "dedup",
        pub_export_macro: true,
        default_bindings_module: "sg_dedup_core::component::bindings",
    });
}

use bindings::exports::streamguard::dedup::policy::Guest;
use bindings::streamguard::dedup::types as wire;

/// A component type bound to one policy; `dedup_component!` declares one.
pub trait PolicyComponent: 'static {
    /// The policy this component applies.
    const POLICY: Policy;
}

fn view(c: &wire::TextColumn) -> TextColumn<'_> {
    TextColumn { bytes: &c.bytes, offsets: &c.offsets }
}

fn wire_column(c: TextColumnBuf) -> wire::TextColumn {
    wire::TextColumn { bytes: c.bytes, offsets: c.offsets }
}

impl<T: PolicyComponent> Guest for T {
    fn describe() -> wire::Descriptor {
        wire::Descriptor {
            name: T::POLICY.name().into(),
            version: T::POLICY.version().into(),
            description: T::POLICY.description().into(),
        }
    }

    fn decide(batch: wire::LogBatch) -> Result<wire::Decisions, String> {
        let view = LogBatch {
            format: match batch.format {
                wire::InputFormat::Json => InputFormat::Json,
                wire::InputFormat::RawHdfs => InputFormat::RawHdfs,
            },
            line: view(&batch.line),
            original_text: view(&batch.original_text),
            timestamp: view(&batch.timestamp),
            log_level: view(&batch.log_level),
            source: view(&batch.source),
            node_type: view(&batch.node_type),
        };
        let d = decide(T::POLICY, &view)?;
        Ok(wire::Decisions {
            keep: d.keep,
            key: wire_column(d.key),
            embed_text: wire_column(d.embed_text),
            payload: d
                .payload
                .into_iter()
                .map(|(name, values)| wire::PayloadColumn { name, values: wire_column(values) })
                .collect(),
        })
    }
}

/// Declares the component type for a policy and exports it.
#[macro_export]
macro_rules! dedup_component {
    ($policy:ident) => {
        /// The component: the dedup policy it is named after.
        pub struct Component;

        impl $crate::component::PolicyComponent for Component {
            const POLICY: $crate::Policy = $crate::Policy::$policy;
        }

        $crate::component::bindings::export!(Component);
    };
}
