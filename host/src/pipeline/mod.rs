//! Pipelines: each wires a source, components, the detector and sinks.

pub mod anomaly;
mod steps;

pub use steps::Steps;
