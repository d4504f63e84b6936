//! One batch through dedup: policy → stable ids → in-batch and stored duplicates skipped →
//! only new texts embedded → points upserted with payload and lineage.

use std::collections::HashSet;

use anyhow::{Result, bail};
use serde_json::{Map, Value};

use super::point_id::point_id;
use sg_model::LogRecords;
use sg_core::component::policy::{FailedRecord, PolicyComponent};
use crate::embed::Embedder;
use sg_core::runtime::Runtime;
use crate::store::{Point, PointStore};

/// What a batch did, as the reference job printed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Records decoded.
    pub records: u64,
    /// Messages refused (decode or policy failures).
    pub dead_lettered: u64,
    /// Records the policy filtered out.
    pub filtered: u64,
    /// Records whose key was already in this batch or in the store.
    pub duplicates: u64,
    /// Distinct new keys.
    pub new: u64,
    /// Texts embedded.
    pub embedded: u64,
    /// Points upserted.
    pub inserted: u64,
}

impl std::ops::AddAssign for BatchCounts {
    fn add_assign(&mut self, o: BatchCounts) {
        self.records += o.records;
        self.dead_lettered += o.dead_lettered;
        self.filtered += o.filtered;
        self.duplicates += o.duplicates;
        self.new += o.new;
        self.embedded += o.embedded;
        self.inserted += o.inserted;
    }
}

/// Lineage written into every point's payload.
#[derive(Clone, Debug)]
pub struct Lineage {
    /// `name@version` of the policy.
    pub policy: String,
    /// sha256 of the policy component.
    pub policy_digest: String,
    /// Contract it was bound as.
    pub contract: String,
}

impl Lineage {
    /// The lineage of points decided by `policy`.
    pub fn of(policy: &PolicyComponent) -> Lineage {
        Lineage { policy: policy.label(), policy_digest: policy.digest().to_string(), contract: policy.contract().to_string() }
    }
}

/// The dedup step with its policy, store and embedder.
pub struct Deduper<'a> {
    /// The policy component.
    pub policy: &'a mut PolicyComponent,
    /// Where points go.
    pub store: &'a mut dyn PointStore,
    /// Who embeds new texts.
    pub embedder: &'a mut dyn Embedder,
    /// Lineage for payloads.
    pub lineage: Lineage,
}

/// Empty strings are absent fields.
fn text_or_null(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { Value::String(s.to_string()) }
}

impl Deduper<'_> {
    /// Processes `records`; rows the policy failed on are returned (to be dead-lettered).
    pub fn process(&mut self, runtime: &Runtime, records: &LogRecords) -> Result<(BatchCounts, Vec<FailedRecord>)> {
        let mut counts = BatchCounts { records: records.len() as u64, ..Default::default() };
        if records.is_empty() {
            return Ok((counts, Vec::new()));
        }
        let (decisions, failed) = self.policy.decide(runtime, &records.batch())?;
        let failed_rows: HashSet<usize> = failed.iter().map(|f| f.row).collect();
        counts.dead_lettered = failed.len() as u64;

        // Distinct keys of the batch, first occurrence kept.
        let mut seen = HashSet::with_capacity(records.len());
        let mut candidates: Vec<(usize, u64)> = Vec::with_capacity(records.len());
        for row in 0..records.len() {
            if failed_rows.contains(&row) {
                continue;
            }
            if !decisions.keep[row] {
                counts.filtered += 1;
                continue;
            }
            let id = point_id(decisions.key.get(row));
            if seen.insert(id) {
                candidates.push((row, id));
            } else {
                counts.duplicates += 1;
            }
        }
        let ids: Vec<u64> = candidates.iter().map(|&(_, id)| id).collect();
        let stored = self.store.existing(&ids)?;
        counts.duplicates += stored.len() as u64;
        let new: Vec<(usize, u64)> = candidates.into_iter().filter(|(_, id)| !stored.contains(id)).collect();
        counts.new = new.len() as u64;
        if new.is_empty() {
            return Ok((counts, failed));
        }

        let texts: Vec<&str> = new.iter().map(|&(row, _)| decisions.embed_text.get(row)).collect();
        let vectors = self.embedder.embed(&texts)?;
        if vectors.len() != texts.len() {
            bail!("{}: {} vectors for {} texts", self.embedder.describe(), vectors.len(), texts.len());
        }
        counts.embedded = vectors.len() as u64;

        let points: Vec<Point> = new
            .iter()
            .zip(vectors)
            .map(|(&(row, id), vector)| Point { id, vector, payload: self.payload(records, &decisions, row) })
            .collect();
        counts.inserted = points.len() as u64;
        self.store.upsert(points)?;
        Ok((counts, failed))
    }

    /// Passthrough fields, then the policy's fields over them, then lineage.
    fn payload(&self, r: &LogRecords, d: &sg_dedup_core::Decisions, row: usize) -> Map<String, Value> {
        let line = r.line.get(row);
        let original = r.original_text.get(row);
        let mut p = Map::new();
        p.insert("text".into(), Value::String(line.to_string()));
        p.insert("original_text".into(), Value::String(if original.is_empty() { line } else { original }.to_string()));
        p.insert("timestamp".into(), text_or_null(r.timestamp.get(row)));
        p.insert("log_level".into(), text_or_null(r.log_level.get(row)));
        p.insert("source".into(), text_or_null(r.source.get(row)));
        p.insert("node_type".into(), text_or_null(r.node_type.get(row)));
        p.insert("label".into(), r.label[row].map_or(Value::Null, Value::from));
        for (name, column) in &d.payload {
            p.insert(name.clone(), text_or_null(column.get(row)));
        }
        p.insert("dedup_key".into(), Value::String(d.key.get(row).to_string()));
        p.insert("policy".into(), Value::String(self.lineage.policy.clone()));
        p.insert("policy_digest".into(), Value::String(self.lineage.policy_digest.clone()));
        p.insert("contract".into(), Value::String(self.lineage.contract.clone()));
        p
    }
}
