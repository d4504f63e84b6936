//! Pipelines: each wires a source, components, the detector and sinks.

pub mod anomaly;
pub mod stream;
pub mod steps;

pub use steps::Steps;
