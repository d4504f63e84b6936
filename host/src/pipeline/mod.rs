//! Pipelines: each wires a source, components, the detector and sinks.

pub mod anomaly;
pub mod stream;
mod steps;

pub use steps::Steps;
