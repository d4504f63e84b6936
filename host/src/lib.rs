//! `sg-host`: runs security-analytics pipelines, calling sandboxed, versioned WASM components
//! for feature extraction, and the Isolation Forest natively or in a component.

pub mod admin;
pub mod bundle;
pub mod bundled;
pub mod cli;
pub mod component;
pub mod dead_letter;
pub mod dedup;
pub mod detector;
pub mod embed;
pub mod events;
pub mod synthetic;
pub mod lineage;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod produce;
pub mod runtime;
pub mod source;
pub mod store;
pub mod swap;
pub mod table_io;
pub mod time;
