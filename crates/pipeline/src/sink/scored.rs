//! A feature table with its detector results: what the Parquet, report and alert sinks write.

use sg_core::component::features::Descriptor;
use sg_core::detector::Detection;
use sg_features_core::FeatureTable;
use sg_features_core::columns::ColumnData;

/// One entry of a row's explanation: a feature, the row's value, the training rows' median,
/// and the feature's share of the row's isolation deficit (see `sg_iforest::Contribution`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Explained {
    /// The model input's name (shared by every row that names it).
    pub feature: std::sync::Arc<str>,
    /// The row's value (as the model saw it, f32).
    pub value: f64,
    /// The median over the rows the model was trained on (`null` when unknown).
    pub typical: Option<f64>,
    /// The feature's share of `c(ψ) − E[h(x)]`, path-length units.
    pub contribution: f64,
}

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
    /// The detector's verdict per row (the reference job's meaning: `contamination`).
    pub is_anomaly: Vec<bool>,
    /// Whether the row's anomaly score exceeds [`ScoredTable::alert_threshold`].
    pub is_alert: Vec<bool>,
    /// The anomaly score above which a row alerts (calibrated on the model's training rows).
    pub alert_threshold: f64,
    /// Each row's largest feature contributions, largest first.
    pub explanation: Vec<Vec<Explained>>,
}

impl<'d> ScoredTable<'d> {
    /// Builds the scored table from a detection and the alert threshold.
    pub fn new(descriptor: &'d Descriptor, table: FeatureTable, detection: &Detection, alert_threshold: f64) -> Self {
        let anomaly_score: Vec<f64> = detection.score_samples.iter().map(|s| -s).collect();
        let (lo, hi) = anomaly_score.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let span = hi - lo;
        let anomaly_score_normalized =
            anomaly_score.iter().map(|&v| if span > 0.0 { (v - lo) / span } else { 0.0 }).collect();
        let is_anomaly = detection.score_samples.iter().map(|&s| s - detection.offset < 0.0).collect();
        let is_alert = anomaly_score.iter().map(|&a| a > alert_threshold).collect();
        let inputs = descriptor.model_inputs();
        let names: Vec<std::sync::Arc<str>> = detection.model.feature_names().iter().map(|n| n.as_str().into()).collect();
        let typical = detection.model.typical();
        let explanation = detection
            .explanations
            .iter()
            .enumerate()
            .map(|(r, row)| {
                row.iter()
                    .map(|c| Explained {
                        feature: names[c.feature].clone(),
                        value: model_value(&table.columns[inputs[c.feature]], r),
                        typical: typical.get(c.feature).copied().flatten(),
                        contribution: c.contribution,
                    })
                    .collect()
            })
            .collect();
        ScoredTable { descriptor, table, anomaly_score, anomaly_score_normalized, is_anomaly, is_alert, alert_threshold, explanation }
    }

    /// Number of rows flagged.
    pub fn anomalies(&self) -> usize {
        self.is_anomaly.iter().filter(|&&a| a).count()
    }

    /// Number of rows alerting.
    pub fn alerts(&self) -> usize {
        self.is_alert.iter().filter(|&&a| a).count()
    }

    /// The key (user) of row `r`.
    pub fn key(&self, r: usize) -> Option<String> {
        let ColumnData::Utf8(keys) = &self.table.columns[self.descriptor.key_index()] else {
            unreachable!("the descriptor check makes the key utf8")
        };
        keys.get(r).map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// `user: feature value (typical t), …` for row `r`: the explanation as a summary line.
    pub fn summary_line(&self, r: usize) -> String {
        let parts: Vec<String> = self.explanation[r]
            .iter()
            .filter(|e| e.contribution > 0.0)
            .map(|e| match e.typical {
                Some(t) => format!("{} {} (typical {})", e.feature, short(e.value), short(t)),
                None => format!("{} {}", e.feature, short(e.value)),
            })
            .collect();
        format!("{}: {}", self.key(r).as_deref().unwrap_or("<no user>"), parts.join(", "))
    }
}

/// A model input's value as the forest saw it (an f32).
fn model_value(column: &ColumnData, r: usize) -> f64 {
    match column {
        ColumnData::Int64(v) => f64::from(v[r] as f32),
        ColumnData::Float64(v) => f64::from(v[r] as f32),
        _ => unreachable!("descriptor validation keeps model inputs numeric"),
    }
}

/// A value with at most three significant decimals (`0.42`, `4`, `1530.5`).
fn short(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}
