//! The component runtime of sg-host, modelled on Spin's `spin-core`: the one wasmtime engine
//! and its sandbox ([`runtime`], the only place that touches `wasmtime::Config`), the
//! versioned WIT contracts and their containment ([`component`]: features, detector, dedup
//! policy, one bisection), the Isolation Forest detector in either engine ([`detector`]),
//! bundles and built-in components ([`bundle`], [`bundled`]), and live upgrades between
//! batches ([`swap`]).

#![deny(missing_docs)]

pub mod artefact;
pub mod bundle;
pub mod bundled;
pub mod component;
pub mod detector;
pub mod lineage;
pub mod runtime;
pub mod signals;
pub mod swap;
