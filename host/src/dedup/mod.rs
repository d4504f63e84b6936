//! `sg-host dedup`: log lines in, each distinct key embedded once and stored as a Qdrant point
//! with a stable id. Per batch: decode (dead letters) → policy component → ids → existence
//! check → embed only new texts → upsert → (Kafka) store synced, dead letters synced, offsets
//! committed — a position is acknowledged only after its points are stored. Between batches the
//! policy can be upgraded (its file changed; with `--follow` also SIGHUP and the admin API): a
//! candidate is checked on the batch in hand, a batch is decided by one version, and every point
//! names the version that produced it.

mod batch;
pub mod point_id;
mod records;

pub use batch::{BatchCounts, Deduper, Lineage};
pub use point_id::point_id;
pub use records::LogRecords;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use sg_dedup_core::InputFormat;

use crate::admin::{self, AdminSettings};
use crate::component::ComponentSource;
use crate::swap::{self, DedupSlots, Role, Upgrades};
use crate::component::policy::PolicyComponent;
use crate::dead_letter::{DeadLetter, DeadLetterFile, DeadLetterTopic, DeadLetters, Stage};
use crate::pipeline::steps::Steps;
use crate::embed::{Embedder, HttpEmbedder, HttpSettings, MiniLm};
use crate::runtime::{Limits, Runtime};
use crate::source::{Input, Source};
use crate::store::{EdgeStore, PointStore, QdrantServer};

/// Where points are stored.
#[derive(Clone, Debug)]
pub enum StoreChoice {
    /// The embedded Qdrant shard under this directory.
    Embedded(PathBuf),
    /// A Qdrant server (gRPC URL).
    Server(String),
}

/// Who embeds.
#[derive(Clone, Debug)]
pub enum EmbedderChoice {
    /// all-MiniLM-L6-v2 in process, from this model directory.
    InProcess(PathBuf),
    /// A remote `/embed` service.
    Http(HttpSettings),
}

/// Everything a dedup run needs.
#[derive(Clone, Debug)]
pub struct DedupJob {
    /// The policy component.
    pub policy: ComponentSource,
    /// JSON log messages from a file or a Kafka topic, or raw HDFS lines from a file.
    pub input: Input,
    /// JSON messages or raw HDFS lines.
    pub format: InputFormat,
    /// Where points go.
    pub store: StoreChoice,
    /// Collection name.
    pub collection: String,
    /// Who embeds.
    pub embedder: EmbedderChoice,
    /// Dead-letter file (appended to).
    pub dead_letters: PathBuf,
    /// Dead-letter topic (Kafka sources).
    pub dead_letter_topic: Option<String>,
    /// Sandbox limits.
    pub limits: Limits,
    /// Input bytes per batch (files).
    pub batch_bytes: usize,
    /// Messages larger than this are dead-lettered.
    pub max_message_bytes: usize,
    /// Print nothing but errors.
    pub quiet: bool,
    /// The admin API (policy, upload, rollback, metrics), if wanted.
    pub admin: Option<AdminSettings>,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct DedupSummary {
    /// Totals over the batches.
    pub totals: BatchCounts,
    /// Batches processed.
    pub batches: u64,
    /// Points in the collection at the end.
    pub points: u64,
    /// Wall time.
    pub seconds: f64,
    /// `name@version` of the policy.
    pub policy: String,
}

fn open_store(job: &DedupJob) -> Result<Box<dyn PointStore>> {
    Ok(match &job.store {
        StoreChoice::Embedded(dir) => Box::new(EdgeStore::open(dir, &job.collection)?),
        StoreChoice::Server(url) => Box::new(QdrantServer::connect(url, &job.collection)?),
    })
}

fn open_embedder(job: &DedupJob) -> Result<Box<dyn Embedder>> {
    Ok(match &job.embedder {
        EmbedderChoice::InProcess(dir) => Box::new(MiniLm::load(dir)?),
        EmbedderChoice::Http(settings) => Box::new(HttpEmbedder::new(settings.clone())?),
    })
}

/// Runs a dedup job to the end of its input, or (following a topic) until `stop` is set: the
/// batch in hand is finished and committed.
pub fn run(job: &DedupJob, stop: &AtomicBool) -> Result<DedupSummary> {
    let started = Instant::now();
    let runtime = Arc::new(Runtime::new(job.limits)?);
    let policy = PolicyComponent::load(&runtime, &job.policy)?;
    let mut upgrades = Upgrades::new(runtime.clone(), DedupSlots::new(policy), swap::files((Role::Policy, &job.policy), None, None));
    if matches!(&job.input, Input::Kafka(k) if k.follow.is_some()) {
        upgrades.reload_on_sighup();
    }
    if let Some(admin) = &job.admin {
        let address = admin::serve(admin.clone(), upgrades.status(), upgrades.requests())?;
        if !job.quiet {
            eprintln!("dedup: admin API on http://{address}");
        }
    }
    let mut store = open_store(job)?;
    let mut embedder = open_embedder(job)?;
    let mut source = Source::open(&job.input, job.batch_bytes)?;
    let topic = match (&job.input, &job.dead_letter_topic) {
        (Input::Kafka(k), Some(t)) => Some(DeadLetterTopic::open(&k.topic, &k.properties, t)?),
        _ => None,
    };
    let file = DeadLetterFile::append(&job.dead_letters, &source.name())
        .with_context(|| format!("dead-letter file {}", job.dead_letters.display()))?;
    let mut dead_letters = DeadLetters::new(file, topic);
    let say = |line: String| {
        if !job.quiet {
            eprintln!("{line}");
        }
    };
    {
        let serving = upgrades.slots.policy.current().lock().expect("not poisoned");
        say(format!("dedup: {} ({}) → {}; embeddings: {}", serving.label(), serving.origin(), store.describe(), embedder.describe()));
    }
    let bar = Steps::new(0, job.quiet).progress(source.total_bytes());
    let progress = source.progress();
    let mut totals = BatchCounts::default();
    let mut batches = 0u64;
    while !stop.load(Ordering::SeqCst)
        && let Some(chunk) = source.next_chunk()?
    {
        let mut dead = Vec::new();
        let records = LogRecords::decode(&chunk, job.format, job.max_message_bytes, &mut dead);
        // Between batches: a validated candidate becomes the policy serving this batch.
        upgrades.poll(&records, &runtime);
        if chunk.is_empty() {
            continue;
        }
        let policy = upgrades.slots.policy.current().clone();
        let mut policy = policy.lock().expect("not poisoned");
        let lineage = Lineage::of(&policy);
        let mut deduper = Deduper { policy: &mut policy, store: store.as_mut(), embedder: embedder.as_mut(), lineage };
        let (mut counts, failed) = deduper.process(&runtime, &records)?;
        crate::metrics::METRICS.dead(&deduper.lineage.policy, failed.len());
        for f in &failed {
            let stage = Stage::Component(deduper.lineage.policy.clone());
            dead.push(DeadLetter::new(records.position(&chunk, f.row), stage, f.reason.clone(), chunk.message(records.message[f.row])));
        }
        counts.records = chunk.len() as u64;
        counts.dead_lettered = dead.len() as u64;
        for letter in &dead {
            dead_letters.write(letter)?;
        }
        if source.commits() {
            // Points and dead letters durable first; then the offsets move past them.
            deduper.store.sync()?;
            dead_letters.sync()?;
            source.acknowledge()?;
        }
        batches += 1;
        totals += counts;
        bar.set_position(progress.bytes());
        let line = format!(
            "batch {batches}: {} records, {} duplicates skipped, {} new, {} embedded, {} inserted ({} filtered, {} dead-lettered)",
            counts.records,
            counts.duplicates,
            counts.new,
            counts.embedded,
            counts.inserted,
            counts.filtered,
            counts.dead_lettered
        );
        bar.suspend(|| say(line));
    }
    bar.finish_and_clear();
    store.sync()?;
    dead_letters.finish()?;
    let points = store.count()?;
    let policy = upgrades.slots.policy.current().lock().expect("not poisoned").label();
    Ok(DedupSummary { totals, batches, points, seconds: started.elapsed().as_secs_f64(), policy })
}

/// Dry run: what the policy decides for every record, one JSON line each to `out` —
/// `{"position":…,"keep":…,"key":…,"id":…}`, or `{"position":…,"dead_letter":reason}` — with
/// no store and no embedder. Returns the records seen.
pub fn plan(job: &DedupJob, out: &mut dyn std::io::Write) -> Result<u64> {
    let runtime = Runtime::new(job.limits)?;
    let mut policy = PolicyComponent::load(&runtime, &job.policy)?;
    let mut source = Source::open(&job.input, job.batch_bytes)?;
    let mut seen = 0u64;
    while let Some(chunk) = source.next_chunk()? {
        let mut dead = Vec::new();
        let records = LogRecords::decode(&chunk, job.format, job.max_message_bytes, &mut dead);
        let (decisions, failed) = policy.decide(&runtime, &records.batch())?;
        let mut lines: Vec<(crate::source::Position, serde_json::Value)> = dead
            .iter()
            .map(|d| (d.position, serde_json::json!({ "dead_letter": d.reason })))
            .collect();
        lines.extend(failed.iter().map(|f| (records.position(&chunk, f.row), serde_json::json!({ "dead_letter": f.reason }))));
        for row in 0..records.len() {
            if failed.iter().any(|f| f.row == row) {
                continue;
            }
            let key = decisions.key.get(row);
            let value = if decisions.keep[row] {
                serde_json::json!({ "keep": true, "key": key, "id": point_id(key) })
            } else {
                serde_json::json!({ "keep": false })
            };
            lines.push((records.position(&chunk, row), value));
        }
        lines.sort_by_key(|(p, _)| position_order(p));
        for (position, mut value) in lines {
            value["position"] = serde_json::to_value(position_order(&position)).expect("plain numbers");
            writeln!(out, "{value}")?;
        }
        seen += chunk.len() as u64;
    }
    out.flush()?;
    Ok(seen)
}

/// Line number, or (partition, offset).
fn position_order(p: &crate::source::Position) -> (i64, i64) {
    match *p {
        crate::source::Position::Line(l) => (l as i64, 0),
        crate::source::Position::Kafka { partition, offset } => (partition as i64, offset),
    }
}
