//! The run's report (`_anomaly_report.json`), in the reference job's format plus lineage, and
//! where an output directory puts it.

use serde::{Deserialize, Serialize};
use sg_features_core::columns::ColumnData;

use super::alerts::Delivered;
use super::{Explained, ScoredTable};
use sg_core::lineage::Lineage;

/// Where an output directory puts the files that are not Parquet partitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// Every other file under a `_` name, which Spark, Hive, pandas, pyarrow and DuckDB skip:
    /// the directory opens as a dataset with no flags.
    #[default]
    Dataset,
    /// The reference job's paths (`anomaly_report.json` beside the partitions), for scripts that
    /// read them; dataset readers must then be given the partitions' files.
    Reference,
}

impl Layout {
    /// The report's file name.
    pub fn report_file(self) -> &'static str {
        match self {
            Layout::Dataset => "_anomaly_report.json",
            Layout::Reference => "anomaly_report.json",
        }
    }
}

/// The event time an output covers, epoch ms, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// First millisecond.
    pub start: i64,
    /// First millisecond after.
    pub end: i64,
}

/// Users in `top_anomalies`.
const TOP: usize = 10;

/// One flagged key in the report.
#[derive(Debug, Serialize)]
pub struct TopAnomaly {
    /// The key (user).
    pub user: Option<String>,
    /// Normalized anomaly score (1.0 = most anomalous of the run).
    pub anomaly_score: f64,
    /// `total_events`, when the component produces it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_events: Option<i64>,
    /// `avg_threat_score`, when the component produces it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg_threat_score: Option<f64>,
    /// The raw anomaly score (`−score_samples`).
    pub raw_score: f64,
    /// Whether the row alerts.
    pub is_alert: bool,
    /// The features that drove the score, largest contribution first.
    pub explanation: Vec<Explained>,
}

/// The report: the reference fields first, then what sg-host adds.
#[derive(Debug, Serialize)]
pub struct AnomalyReport {
    /// Rows (keys) scored.
    pub total_users: usize,
    /// Rows flagged.
    pub anomalous_users: usize,
    /// anomalous / total (0 when there are no rows).
    pub anomaly_rate: f64,
    /// Up to 10 flagged rows by normalized score, highest first.
    pub top_anomalies: Vec<TopAnomaly>,
    /// Rows whose anomaly score exceeds `alert_threshold`.
    pub alerts: usize,
    /// The anomaly score above which a row alerts.
    pub alert_threshold: f64,
    /// What each alert sink acknowledged.
    pub alerts_delivered: Vec<Delivered>,
    /// The event time covered: the window, or a bounded run's first to last event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// What produced this output.
    pub lineage: Lineage,
}

fn int_column<'t>(scored: &'t ScoredTable<'_>, name: &str) -> Option<&'t [i64]> {
    let i = scored.descriptor.columns.iter().position(|c| c.name == name)?;
    match &scored.table.columns[i] {
        ColumnData::Int64(v) => Some(v),
        _ => None,
    }
}

fn float_column<'t>(scored: &'t ScoredTable<'_>, name: &str) -> Option<&'t [f64]> {
    let i = scored.descriptor.columns.iter().position(|c| c.name == name)?;
    match &scored.table.columns[i] {
        ColumnData::Float64(v) => Some(v),
        _ => None,
    }
}

impl AnomalyReport {
    /// Builds the report of a scored table.
    pub fn new(scored: &ScoredTable<'_>, lineage: Lineage, alerts_delivered: Vec<Delivered>, period: Option<Period>) -> AnomalyReport {
        let total = scored.table.rows;
        let anomalous = scored.anomalies();
        let mut flagged: Vec<usize> = (0..total).filter(|&r| scored.is_anomaly[r]).collect();
        flagged.sort_by(|&a, &b| {
            scored.anomaly_score_normalized[b].total_cmp(&scored.anomaly_score_normalized[a]).then(a.cmp(&b))
        });
        let totals = int_column(scored, "total_events");
        let threat = float_column(scored, "avg_threat_score");
        let top_anomalies = flagged
            .into_iter()
            .take(TOP)
            .map(|r| TopAnomaly {
                user: scored.key(r),
                anomaly_score: scored.anomaly_score_normalized[r],
                total_events: totals.map(|t| t[r]),
                avg_threat_score: threat.map(|t| t[r]),
                raw_score: scored.anomaly_score[r],
                is_alert: scored.is_alert[r],
                explanation: scored.explanation[r].clone(),
            })
            .collect();
        AnomalyReport {
            total_users: total,
            anomalous_users: anomalous,
            anomaly_rate: if total > 0 { anomalous as f64 / total as f64 } else { 0.0 },
            top_anomalies,
            alerts: scored.alerts(),
            alert_threshold: scored.alert_threshold,
            alerts_delivered,
            period,
            lineage,
        }
    }
}
