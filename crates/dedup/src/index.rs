//! Search and scoring over a dedup store — the reference scoring service's job, in process.
//! A query line goes through the same policy and embedder as `dedup` (its key, its point id,
//! the text the policy embeds, normalized), so a line already stored finds itself first.
//!
//! Scoring: a line whose key is stored under a label (0 or 1) takes that label as its score —
//! it is a known template. Any other line gets a similarity-weighted vote of the nearest
//! labelled points: over the `k` nearest points whose `label` is 0 or 1 and whose cosine
//! similarity is at least `min_similarity`, `anomaly_score = Σ sim·label / Σ sim`. A line is
//! anomalous when its score is at least `threshold`. A line with no stored point that close is `novel` (no score: nothing like it
//! has been seen) and counts as anomalous — a log line unlike any stored one is what an
//! analyst wants to look at.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Result, bail};
use serde::Serialize;
use sg_core::component::policy::PolicyComponent;
use sg_core::component::ComponentSource;
use sg_core::runtime::{Limits, Runtime};
use sg_dedup_core::{InputFormat, LogBatch, TextColumnBuf};

use crate::EmbedderChoice;
use crate::embed::Embedder;
use crate::point_id::point_id;
use crate::store::{Found, PayloadFilter, PointStore};

/// A store shared by a follower that writes it and a server that reads it.
pub type SharedStore = Arc<Mutex<Box<dyn PointStore>>>;

/// Most lines one request scores, and most neighbours it asks for.
pub const MAX_LINES: usize = 10_000;
/// Most neighbours one query asks for.
pub const MAX_K: usize = 100;

/// How lines are scored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreSettings {
    /// Neighbours that vote.
    pub k: usize,
    /// Less similar points neither vote nor make a line familiar.
    pub min_similarity: f32,
    /// A score at least this is anomalous.
    pub threshold: f64,
}

impl Default for ScoreSettings {
    fn default() -> Self {
        ScoreSettings { k: 10, min_similarity: 0.8, threshold: 0.5 }
    }
}

/// A stored point near a query, as the API answers it.
#[derive(Clone, Debug, Serialize)]
pub struct Neighbour {
    /// Its point id.
    pub id: u64,
    /// Cosine similarity to the query.
    pub similarity: f32,
    /// Its payload (text, level, node type, label, policy, …).
    pub payload: serde_json::Map<String, serde_json::Value>,
}

impl From<Found> for Neighbour {
    fn from(f: Found) -> Neighbour {
        Neighbour { id: f.id, similarity: f.similarity.unwrap_or(0.0), payload: f.payload }
    }
}

/// What scoring says of one line.
#[derive(Clone, Debug, Serialize)]
pub struct LineScore {
    /// The dedup key the policy gives it (none when the policy filters the line out).
    pub key: Option<String>,
    /// Its point id.
    pub id: Option<u64>,
    /// Whether that key is stored already.
    pub seen: bool,
    /// The vote (none for a novel line).
    pub anomaly_score: Option<f64>,
    /// No stored point is within `min_similarity`.
    pub novel: bool,
    /// Score at least the threshold, or novel.
    pub is_anomaly: bool,
    /// The nearest points, most similar first.
    pub neighbours: Vec<Neighbour>,
}

/// The store with the policy and embedder that wrote it.
pub struct LogIndex {
    store: SharedStore,
    embedder: Mutex<Box<dyn Embedder>>,
    policy: Mutex<PolicyComponent>,
    runtime: Arc<Runtime>,
    /// How lines are scored.
    pub settings: ScoreSettings,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the policy makes of query lines: per line, its key and point id (if kept) and the
/// text to embed.
struct Queried {
    key: Vec<Option<String>>,
    id: Vec<Option<u64>>,
    embed_text: Vec<String>,
}

/// A point's `label` when it is 0 or 1.
fn label_of(n: &Neighbour) -> Option<i64> {
    n.payload.get("label").and_then(serde_json::Value::as_i64).filter(|l| *l == 0 || *l == 1)
}

impl LogIndex {
    /// An index over `store`, keyed by `policy` and embedded by `embedder`.
    pub fn new(store: SharedStore, embedder: Box<dyn Embedder>, policy: PolicyComponent, runtime: Arc<Runtime>) -> LogIndex {
        LogIndex { store, embedder: Mutex::new(embedder), policy: Mutex::new(policy), runtime, settings: ScoreSettings::default() }
    }

    /// An index over `store` with the policy of `policy` and the embedder `embedder` chooses,
    /// in a sandbox of `limits`.
    pub fn open(store: SharedStore, policy: &ComponentSource, embedder: &EmbedderChoice, limits: Limits) -> Result<LogIndex> {
        let runtime = Arc::new(Runtime::new(limits)?);
        let policy = PolicyComponent::load(&runtime, policy)?;
        lock(&store).build_index()?;
        Ok(LogIndex::new(store, embedder.open()?, policy, runtime))
    }

    /// Points stored.
    pub fn count(&self) -> Result<u64> {
        lock(&self.store).count(&PayloadFilter::default())
    }

    /// `name@version` of the policy keying queries.
    pub fn policy(&self) -> String {
        lock(&self.policy).label()
    }

    fn query(&self, texts: &[&str]) -> Result<Queried> {
        let mut line = TextColumnBuf::default();
        let mut empty = TextColumnBuf::default();
        for t in texts {
            line.push(t);
            empty.push("");
        }
        let e = empty.view();
        let batch = LogBatch { format: InputFormat::Json, line: line.view(), original_text: e, timestamp: e, log_level: e, source: e, node_type: e };
        let (decisions, failed) = lock(&self.policy).decide(&self.runtime, &batch)?;
        let mut key = Vec::with_capacity(texts.len());
        let mut embed_text = Vec::with_capacity(texts.len());
        for (row, text) in texts.iter().enumerate() {
            let kept = decisions.keep.get(row).copied().unwrap_or(false) && !failed.iter().any(|f| f.row == row);
            key.push(kept.then(|| decisions.key.get(row).to_string()));
            embed_text.push(if kept { decisions.embed_text.get(row).to_string() } else { text.to_string() });
        }
        let id = key.iter().map(|k| k.as_deref().map(point_id)).collect();
        Ok(Queried { key, id, embed_text })
    }

    /// One vector per line: a stored key's own vector, else the embedding of what the policy
    /// embeds (each distinct text embedded once).
    fn vectors(&self, q: &Queried) -> Result<(Vec<Vec<f32>>, Vec<bool>)> {
        let ids: Vec<u64> = q.id.iter().flatten().copied().collect();
        let stored = lock(&self.store).vectors(&ids)?;
        let mut seen = Vec::with_capacity(q.id.len());
        let mut missing: Vec<&str> = Vec::new();
        let mut slot: HashMap<&str, usize> = HashMap::new();
        for (id, text) in q.id.iter().zip(&q.embed_text) {
            let known = id.is_some_and(|id| stored.contains_key(&id));
            seen.push(known);
            if !known && !slot.contains_key(text.as_str()) {
                slot.insert(text, missing.len());
                missing.push(text);
            }
        }
        let embedded = if missing.is_empty() { Vec::new() } else { lock(&self.embedder).embed(&missing)? };
        if embedded.len() != missing.len() {
            bail!("{} vectors for {} texts", embedded.len(), missing.len());
        }
        let vectors = q
            .id
            .iter()
            .zip(&q.embed_text)
            .map(|(id, text)| match id.and_then(|id| stored.get(&id)) {
                Some(v) => v.clone(),
                None => embedded[slot[text.as_str()]].clone(),
            })
            .collect();
        Ok((vectors, seen))
    }

    /// The `k` stored lines nearest to `text`, most similar first.
    pub fn search(&self, text: &str, k: usize, filter: &PayloadFilter) -> Result<Vec<Neighbour>> {
        let q = self.query(&[text])?;
        let (vectors, _) = self.vectors(&q)?;
        let found = lock(&self.store).nearest(&vectors[0], k.clamp(1, MAX_K), filter)?;
        Ok(found.into_iter().map(Neighbour::from).collect())
    }

    /// Scores each of `texts` (see the module doc).
    pub fn score(&self, texts: &[&str]) -> Result<Vec<LineScore>> {
        if texts.len() > MAX_LINES {
            bail!("{} lines: at most {MAX_LINES} per request", texts.len());
        }
        let q = self.query(texts)?;
        let (vectors, seen) = self.vectors(&q)?;
        let s = self.settings;
        let mut memo: HashMap<u64, (Vec<Neighbour>, Option<f64>, bool)> = HashMap::new();
        let mut out = Vec::with_capacity(texts.len());
        for row in 0..texts.len() {
            let id = q.id[row];
            // Lines with one key share a vector, so they share neighbours (unkept lines do not).
            let answer = match id.and_then(|id| memo.get(&id)) {
                Some(a) => a.clone(),
                None => {
                    let found = lock(&self.store).nearest(&vectors[row], s.k.clamp(1, MAX_K), &PayloadFilter::default())?;
                    let neighbours: Vec<Neighbour> = found.into_iter().map(Neighbour::from).collect();
                    let close: Vec<&Neighbour> = neighbours.iter().filter(|n| n.similarity >= s.min_similarity).collect();
                    let novel = close.is_empty();
                    let (mut weight, mut anomalous) = (0.0, 0.0);
                    for (n, label) in close.iter().filter_map(|n| Some((n, label_of(n)?))) {
                        weight += n.similarity as f64;
                        anomalous += n.similarity as f64 * label as f64;
                    }
                    // A stored key with a label is its own answer: the line is a known template.
                    let own = neighbours.iter().find(|n| Some(n.id) == id).and_then(label_of);
                    let score = match own {
                        Some(label) => Some(label as f64),
                        None => (weight > 0.0).then(|| anomalous / weight),
                    };
                    let a = (neighbours, score, novel);
                    if let Some(id) = id {
                        memo.insert(id, a.clone());
                    }
                    a
                }
            };
            let (neighbours, anomaly_score, novel) = answer;
            out.push(LineScore {
                key: q.key[row].clone(),
                id,
                seen: seen[row],
                anomaly_score,
                novel,
                is_anomaly: novel || anomaly_score.is_some_and(|v| v >= s.threshold),
                neighbours,
            });
        }
        Ok(out)
    }
}
