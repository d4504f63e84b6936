//! Lineage: what produced an output — recorded in Parquet metadata and in the report.

use serde::Serialize;

/// Which features component produced the rows.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentLineage {
    /// Implementation name.
    pub name: String,
    /// Implementation version.
    pub version: String,
    /// Contract it was bound as, e.g. `streamguard:features@1.0.0`.
    pub contract: String,
    /// sha256 of the component bytes.
    pub sha256: String,
    /// Where it was loaded from.
    pub origin: String,
    /// sha256 of the precompiled code that ran, when it ran from a bundle's `.cwasm` (sealed
    /// with the `.wasm` digest above, which it was checked against).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precompiled_sha256: Option<String>,
}

/// Which detector scored the rows.
#[derive(Clone, Debug, Serialize)]
pub struct DetectorLineage {
    /// `native` or the component's origin.
    pub kind: String,
    /// Component contract and digest when it ran as a component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentLineage>,
    /// Parameters of the model.
    pub params: sg_iforest::Params,
    /// Rows the model was trained on.
    pub n_train: usize,
    /// Threshold (`decision_function = score_samples − offset`).
    pub offset: f64,
    /// Model file it was loaded from, when not trained in this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_file: Option<String>,
    /// sha256 of the model artefact (of the file when one was loaded).
    pub model_sha256: String,
}

/// Everything that produced one output.
#[derive(Clone, Debug, Serialize)]
pub struct Lineage {
    /// `sg-host` version.
    pub host_version: &'static str,
    /// The features component.
    pub features: ComponentLineage,
    /// The detector.
    pub detector: DetectorLineage,
    /// Input name.
    pub input: String,
    /// Valid events processed.
    pub events: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
}

impl Lineage {
    /// Flat key/value pairs for Parquet metadata (`streamguard.*`), plus the whole as JSON.
    pub fn key_values(&self) -> Vec<(String, String)> {
        vec![
            ("streamguard.lineage".into(), serde_json::to_string(self).expect("lineage serializes")),
            ("streamguard.host.version".into(), self.host_version.into()),
            ("streamguard.features.name".into(), self.features.name.clone()),
            ("streamguard.features.version".into(), self.features.version.clone()),
            ("streamguard.features.contract".into(), self.features.contract.clone()),
            ("streamguard.features.sha256".into(), self.features.sha256.clone()),
            ("streamguard.detector.kind".into(), self.detector.kind.clone()),
            ("streamguard.detector.params".into(), serde_json::to_string(&self.detector.params).expect("params serialize")),
        ]
    }
}
