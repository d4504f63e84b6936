//! `sg-host`: runs security-analytics pipelines, calling sandboxed, versioned WASM components
//! for feature extraction, and the Isolation Forest natively or in a component.

pub mod admin;
pub mod bundle;
pub mod bundled;
pub mod cli;
pub mod component;
pub mod dedup;
pub mod detector;
pub mod embed;
pub mod events;
pub mod synthetic;
pub mod lineage;
pub mod metrics;
pub mod pipeline;
pub mod runtime;
pub mod signals;
pub mod sink;
pub mod source;
pub mod swap;
pub mod table_io;
pub mod time;
