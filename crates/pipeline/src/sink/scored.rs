//! A feature table with its detector results: what the Parquet and report sinks write.

use sg_features_core::FeatureTable;

use sg_core::component::features::Descriptor;

/// A feature table with its detector results.
pub struct ScoredTable<'d> {
    /// How the component described the table.
    pub descriptor: &'d Descriptor,
    /// Per-key features.
    pub table: FeatureTable,
    /// `-score_samples` (higher = more anomalous).
    pub anomaly_score: Vec<f64>,
    /// Min-max of `anomaly_score` over the run; all 0 when every score is equal.
    pub anomaly_score_normalized: Vec<f64>,
    /// The detector's verdict per row.
    pub is_anomaly: Vec<bool>,
}

impl<'d> ScoredTable<'d> {
    /// Builds the scored table from `score_samples` and the model's offset.
    pub fn new(descriptor: &'d Descriptor, table: FeatureTable, score_samples: &[f64], offset: f64) -> Self {
        let anomaly_score: Vec<f64> = score_samples.iter().map(|s| -s).collect();
        let (lo, hi) = anomaly_score.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let span = hi - lo;
        let anomaly_score_normalized =
            anomaly_score.iter().map(|&v| if span > 0.0 { (v - lo) / span } else { 0.0 }).collect();
        let is_anomaly = score_samples.iter().map(|&s| s - offset < 0.0).collect();
        ScoredTable { descriptor, table, anomaly_score, anomaly_score_normalized, is_anomaly }
    }

    /// Number of rows flagged.
    pub fn anomalies(&self) -> usize {
        self.is_anomaly.iter().filter(|&&a| a).count()
    }
}
