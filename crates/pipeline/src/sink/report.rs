//! `anomaly_report.json`, in the reference job's format plus lineage.

use serde::Serialize;
use sg_features_core::columns::ColumnData;

use super::ScoredTable;
use sg_core::lineage::Lineage;

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
    pub fn new(scored: &ScoredTable<'_>, lineage: Lineage) -> AnomalyReport {
        let total = scored.table.rows;
        let anomalous = scored.anomalies();
        let ColumnData::Utf8(keys) = &scored.table.columns[scored.descriptor.key_index()] else {
            unreachable!("the descriptor check makes the key utf8")
        };
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
                user: keys.get(r).map(|b| String::from_utf8_lossy(b).into_owned()),
                anomaly_score: scored.anomaly_score_normalized[r],
                total_events: totals.map(|t| t[r]),
                avg_threat_score: threat.map(|t| t[r]),
            })
            .collect();
        AnomalyReport {
            total_users: total,
            anomalous_users: anomalous,
            anomaly_rate: if total > 0 { anomalous as f64 / total as f64 } else { 0.0 },
            top_anomalies,
            lineage,
        }
    }
}
