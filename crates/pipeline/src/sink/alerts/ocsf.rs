//! Alerts as OCSF 1.4 Detection Findings (class 2004, activity 1 "Create"): one per alerting
//! row, with a stable `finding_info.uid`, the user as the evidence's actor, the explanation as
//! the evidence's data, and the lineage (features component, detector, model, window or input)
//! under `unmapped`.

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sg_core::lineage::Lineage;
use sg_features_core::columns::ColumnData;

use crate::sink::ScoredTable;

/// The OCSF version the findings follow.
pub const OCSF_VERSION: &str = "1.4.0";

/// What the scored rows cover: a window of a stream, or the input of a bounded run.
#[derive(Clone, Debug, PartialEq)]
pub enum Scope {
    /// The window `[start, end)`, epoch ms.
    Window {
        /// First millisecond.
        start: i64,
        /// First millisecond after.
        end: i64,
    },
    /// A bounded run over this input.
    Input(String),
}

impl Scope {
    /// The part of an alert's identity that names what it covers.
    fn identity(&self) -> String {
        match self {
            Scope::Window { start, end } => format!("window:{start}:{end}"),
            Scope::Input(name) => format!("input:{name}"),
        }
    }
}

/// One alert: its stable id and its OCSF record.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// `finding_info.uid`: the same user, scope and model give the same id.
    #[serde(skip)]
    pub uid: String,
    /// The Detection Finding, as JSON.
    #[serde(flatten)]
    pub record: serde_json::Value,
}

/// The stable id of the alert on `user` over `scope` by the model with digest `model_sha256`.
pub fn alert_uid(user: &str, scope: &Scope, model_sha256: &str) -> String {
    let mut h = Sha256::new();
    for part in ["sg-host alert 1", user, &scope.identity(), model_sha256] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// OCSF `severity_id` of an anomaly score (`−score_samples`; 0.5 is an average point's): Low
/// below 0.55, Medium below 0.62, High below 0.70, Critical from 0.70.
pub fn severity(anomaly_score: f64) -> (u8, &'static str) {
    match anomaly_score {
        s if s >= 0.70 => (5, "Critical"),
        s if s >= 0.62 => (4, "High"),
        s if s >= 0.55 => (3, "Medium"),
        _ => (2, "Low"),
    }
}

/// A timestamp column of the features (e.g. `first_seen`), when the component has it.
fn time_column<'t>(scored: &'t ScoredTable<'_>, name: &str) -> Option<&'t [i64]> {
    let i = scored.descriptor.columns.iter().position(|c| c.name == name)?;
    match &scored.table.columns[i] {
        ColumnData::TimestampMs(v) => Some(v),
        _ => None,
    }
}

/// The findings of every alerting row of `scored`, highest anomaly score first.
pub fn findings(scored: &ScoredTable<'_>, lineage: &Lineage, scope: &Scope) -> Vec<Finding> {
    let mut rows: Vec<usize> = (0..scored.table.rows).filter(|&r| scored.is_alert[r]).collect();
    rows.sort_by(|&a, &b| scored.anomaly_score[b].total_cmp(&scored.anomaly_score[a]).then(a.cmp(&b)));
    let (first, last) = (time_column(scored, "first_seen"), time_column(scored, "last_seen"));
    let model = &lineage.detector.model_sha256;
    rows.into_iter()
        .map(|r| {
            let user = scored.key(r).unwrap_or_default();
            let uid = alert_uid(&user, scope, model);
            let score = scored.anomaly_score[r];
            let (severity_id, severity) = severity(score);
            let last_seen = last.map(|t| t[r]);
            let time = match scope {
                Scope::Window { end, .. } => *end,
                Scope::Input(_) => last_seen.unwrap_or(0),
            };
            let (window_start, window_end) = match scope {
                Scope::Window { start, end } => (Some(*start), Some(*end)),
                Scope::Input(_) => (None, None),
            };
            let mut info = json!({
                "uid": uid,
                "title": format!("Anomalous activity of user {user}"),
                "desc": scored.summary_line(r),
                "types": ["Behavioral anomaly"],
                "analytic": {
                    "name": "Isolation Forest",
                    "type_id": 4,
                    "type": "Learning (ML/DL)",
                    "uid": model,
                    "version": lineage.features.version,
                },
            });
            if let (Some(f), Some(l)) = (first, last) {
                info["first_seen_time"] = json!(f[r]);
                info["last_seen_time"] = json!(l[r]);
            }
            let record = json!({
                "class_uid": 2004,
                "class_name": "Detection Finding",
                "category_uid": 2,
                "category_name": "Findings",
                "activity_id": 1,
                "activity_name": "Create",
                "type_uid": 200401,
                "type_name": "Detection Finding: Create",
                "time": time,
                "severity_id": severity_id,
                "severity": severity,
                "status_id": 1,
                "status": "New",
                "is_alert": true,
                "message": scored.summary_line(r),
                "finding_info": info,
                "evidences": [{
                    "actor": {"user": {"name": user}},
                    "data": {"explanation": scored.explanation[r]},
                }],
                "metadata": {
                    "version": OCSF_VERSION,
                    "product": {"name": "sg-host", "vendor_name": "StreamGuard", "version": lineage.host_version},
                    "uid": uid,
                },
                "unmapped": {
                    "anomaly_score": score,
                    "alert_threshold": scored.alert_threshold,
                    "is_anomaly": scored.is_anomaly[r],
                    "window_start": window_start,
                    "window_end": window_end,
                    "input": lineage.input,
                    "features": {
                        "name": lineage.features.name,
                        "version": lineage.features.version,
                        "sha256": lineage.features.sha256,
                    },
                    "detector": lineage.detector.kind,
                    "model_sha256": model,
                },
            });
            Finding { uid, record }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_id_names_user_scope_and_model_and_nothing_else() {
        let w = Scope::Window { start: 0, end: 60_000 };
        let a = alert_uid("admin", &w, "abc");
        assert_eq!(a, alert_uid("admin", &w, "abc"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, alert_uid("admin", &Scope::Window { start: 60_000, end: 120_000 }, "abc"));
        assert_ne!(a, alert_uid("admin", &w, "abd"));
        assert_ne!(a, alert_uid("admin2", &w, "abc"));
        // Length-prefixed parts: moving a boundary changes the id.
        assert_ne!(alert_uid("ab", &Scope::Input("c".into()), "d"), alert_uid("a", &Scope::Input("bc".into()), "d"));
    }

    #[test]
    fn severity_rises_with_the_score() {
        assert_eq!(severity(0.5).0, 2);
        assert_eq!(severity(0.6).0, 3);
        assert_eq!(severity(0.65).0, 4);
        assert_eq!(severity(0.8).0, 5);
    }
}
