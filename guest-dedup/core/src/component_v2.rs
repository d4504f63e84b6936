//! `streamguard:dedup@2.0.0` bindings: the `drain` template miner as a `learner` resource whose
//! state is exported and imported ([`crate::drain`]).
//!
//! A component crate is one line: `sg_dedup_core::learning_dedup_component!();`.

use std::cell::RefCell;

use crate::drain::{Config, Drain, STATE_FORMAT};
use crate::{InputFormat, LogBatch, TextColumn, TextColumnBuf, decide_learning};

/// Generated bindings of the `learning-dedup` world.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/dedup-2",
        world: "learning-dedup",
        pub_export_macro: true,
        default_bindings_module: "sg_dedup_core::component_v2::bindings",
    });
}

use bindings::exports::streamguard::dedup::policy::{self as policy, Guest, GuestLearner};
use bindings::streamguard::dedup::types as wire;

/// The policy's name.
pub const NAME: &str = "drain";

fn view(c: &wire::TextColumn) -> TextColumn<'_> {
    TextColumn { bytes: &c.bytes, offsets: &c.offsets }
}

fn wire_column(c: TextColumnBuf) -> wire::TextColumn {
    wire::TextColumn { bytes: c.bytes, offsets: c.offsets }
}

/// A `drain` policy component type, reported under `VERSION`; `learning_dedup_component!`
/// declares one.
pub trait LearningComponent: 'static {
    /// The implementation version it reports.
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
}

impl<T: LearningComponent> Guest for T {
    type Learner = Learner;

    fn describe() -> wire::Descriptor {
        wire::Descriptor {
            name: NAME.into(),
            version: T::VERSION.into(),
            description: "One point per log template, mined online with Drain (He et al., ICWS 2017; \
                          drain3's tree and masks): the key is the template's first form, kept as it \
                          generalises, so a line keeps its key when read again; the embedded text \
                          is the template; the payload adds `template` and `template_params`."
                .into(),
            state_format: STATE_FORMAT.into(),
            default_config: serde_json::to_string(&Config::default()).expect("serializable"),
        }
    }
}

/// The `learner` resource: a [`Drain`] miner.
pub struct Learner(RefCell<Drain>);

impl GuestLearner for Learner {
    fn create(config: String) -> Result<policy::Learner, String> {
        let config: Config = serde_json::from_str(&config).map_err(|e| format!("config: {e}"))?;
        Ok(policy::Learner::new(Learner(RefCell::new(Drain::new(config)?))))
    }

    fn import_state(format: String, state: Vec<u8>) -> Result<policy::Learner, String> {
        if format != STATE_FORMAT {
            return Err(format!("state format {format:?}; this policy reads {STATE_FORMAT:?}"));
        }
        Ok(policy::Learner::new(Learner(RefCell::new(Drain::import_state(&state)?))))
    }

    fn decide(&self, batch: wire::LogBatch) -> Result<wire::Decisions, String> {
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
        let d = decide_learning(&mut self.0.borrow_mut(), &view)?;
        Ok(wire::Decisions {
            keep: d.keep,
            key: wire_column(d.key),
            embed_text: wire_column(d.embed_text),
            payload: d.payload.into_iter().map(|(name, values)| wire::PayloadColumn { name, values: wire_column(values) }).collect(),
        })
    }

    fn export_state(&self) -> Vec<u8> {
        self.0.borrow().export_state()
    }
}

/// Exports the `drain` policy component (optionally under another version).
#[macro_export]
macro_rules! learning_dedup_component {
    () => {
        struct Component;
        impl $crate::component_v2::LearningComponent for Component {}
        $crate::component_v2::bindings::export!(Component with_types_in $crate::component_v2::bindings);
    };
    ($version:literal) => {
        struct Component;
        impl $crate::component_v2::LearningComponent for Component {
            const VERSION: &'static str = $version;
        }
        $crate::component_v2::bindings::export!(Component with_types_in $crate::component_v2::bindings);
    };
}
