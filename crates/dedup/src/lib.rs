//! `sg-host dedup`: log lines in, each distinct key embedded once and stored as a Qdrant point
//! with a stable id. Per batch: decode (dead letters) → policy component → ids → existence
//! check → embed only new texts → upsert → (Kafka) store synced, dead letters synced, offsets
//! committed — a position is acknowledged only after its points are stored. Between batches the
//! policy can be upgraded (its file changed; with `--follow` also SIGHUP and the admin API): a
//! candidate is checked on the batch in hand, a batch is decided by one version, and every point
//! names the version that produced it.

#![deny(missing_docs)]

mod batch;
pub mod index;
pub mod embed;
pub mod learned;
pub mod point_id;
pub mod slots;
pub mod store;

pub use batch::{BatchCounts, Deduper, Lineage};
pub use point_id::point_id;
pub use sg_model::LogRecords;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context as _, Result};
use sg_dedup_core::InputFormat;

use sg_pipeline::admin::AdminSettings;
use sg_core::component::{ComponentSource, Role};
use sg_core::component::policy::PolicyComponent;
use crate::embed::{Embedder, HttpEmbedder, HttpSettings, Memoized, MiniLm, Precision};
use sg_pipeline::driver::{self, Ack, Context, Decoder, Stage, drive};
use sg_pipeline::steps::Steps;
use sg_core::runtime::{Limits, Runtime};
use crate::index::SharedStore;
use crate::store::{EdgeStore, PayloadFilter, PointStore, QdrantServer};
use sg_pipeline::sink::{DeadLetter, DeadLetters, RefusedBy};
use sg_pipeline::source::{Chunk, Framing, Input, InputProgress, Source};
use crate::learned::StateFile;
use crate::slots::DedupSlots;
use sg_core::swap;

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
    /// all-MiniLM-L6-v2 in process, from this model directory, in this precision.
    InProcess(PathBuf, Precision),
    /// A remote `/embed` service.
    Http(HttpSettings),
}

/// Everything a dedup run needs.
#[derive(Clone, Debug)]
pub struct DedupJob {
    /// The policy component.
    pub policy: ComponentSource,
    /// Parameters for a learning (2.x) policy that starts afresh (JSON; its default when none).
    pub policy_config: Option<String>,
    /// Where a learning policy's state is kept between runs.
    pub policy_state: StateFile,
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

impl StoreChoice {
    /// Opens `collection` there, shared between the writer and a server.
    pub fn open(&self, collection: &str) -> Result<SharedStore> {
        let store: Box<dyn PointStore> = match self {
            StoreChoice::Embedded(dir) => Box::new(EdgeStore::open(dir, collection)?),
            StoreChoice::Server(url) => Box::new(QdrantServer::connect(url, collection)?),
        };
        Ok(Arc::new(Mutex::new(store)))
    }
}

impl EmbedderChoice {
    /// Loads the model or connects to the service, behind the memo of normalized texts.
    pub fn open(&self) -> Result<Box<dyn Embedder>> {
        Ok(match self {
            EmbedderChoice::InProcess(dir, precision) => Box::new(Memoized::new(MiniLm::load(dir, *precision)?)),
            EmbedderChoice::Http(settings) => Box::new(Memoized::new(HttpEmbedder::new(settings.clone())?)),
        })
    }
}

/// Runs a dedup job to the end of its input, or (following a topic) until `stop` is set: the
/// batch in hand is finished and committed.
pub fn run(job: &DedupJob, stop: &AtomicBool) -> Result<DedupSummary> {
    run_on(job, job.store.open(&job.collection)?, stop)
}

/// [`run`] over a store already open (one a server reads too: see [`index::LogIndex`]).
pub fn run_on(job: &DedupJob, store: SharedStore, stop: &AtomicBool) -> Result<DedupSummary> {
    let started = Instant::now();
    let runtime = Arc::new(Runtime::new(job.limits)?);
    let mut policy = PolicyComponent::load(&runtime, &job.policy)?;
    let resumed = job.policy_state.resume(&mut policy, &runtime, job.policy_config.clone())?;
    if !job.quiet {
        tracing::info!("dedup: {resumed}");
    }
    let follows = matches!(&job.input, Input::Kafka(k) if k.follow.is_some());
    let files = swap::files((Role::Policy, &job.policy), None, None);
    let (mut upgrades, admin) = driver::upgrades(&runtime, DedupSlots::new(policy), files, follows, job.admin.as_ref())?;
    if let Some(address) = admin
        && !job.quiet
    {
        tracing::info!("dedup: admin API on http://{address}");
    }
    let embedder = job.embedder.open()?;
    let source = Source::open(&job.input, Framing::new(job.batch_bytes, job.max_message_bytes))?;
    let mut dead = driver::dead_letters(&job.dead_letters, true, &job.input, &source.name(), job.dead_letter_topic.as_deref())
        .with_context(|| format!("dead-letter file {}", job.dead_letters.display()))?;
    if !job.quiet {
        let serving = upgrades.slots.policy.current().lock().expect("not poisoned");
        let store = store.lock().expect("not poisoned").describe();
        tracing::info!("dedup: {} ({}) → {store}; embeddings: {}", serving.label(), serving.origin(), embedder.describe());
    }
    let bar = Steps::new(0, job.quiet).progress(source.total_bytes());
    let mut stage = Dedup { job, store, embedder, progress: source.progress(), bar, totals: BatchCounts::default(), batches: 0 };
    drive(source, &mut stage, &mut upgrades, &runtime, &mut dead, stop)?;
    dead.finish()?;
    let points = stage.store.lock().expect("not poisoned").count(&PayloadFilter::default())?;
    let policy = upgrades.slots.policy.current().lock().expect("not poisoned").label();
    Ok(DedupSummary { totals: stage.totals, batches: stage.batches, points, seconds: started.elapsed().as_secs_f64(), policy })
}

/// Decodes chunks of log messages into policy records.
#[derive(Clone, Copy, Debug)]
pub struct LogDecoder {
    /// JSON messages or raw HDFS lines.
    pub format: InputFormat,
    /// Larger messages are dead-lettered unread.
    pub max_message_bytes: usize,
}

/// A chunk of log messages: the records, and the messages that are not records.
pub struct DecodedLogs {
    /// The chunk (dead letters and points refer to its messages).
    pub chunk: Chunk,
    /// The records.
    pub records: LogRecords,
    /// Messages that are not log records.
    pub dead: Vec<DeadLetter>,
}

impl Decoder for LogDecoder {
    type Output = DecodedLogs;

    fn decode(&self, chunk: Chunk) -> DecodedLogs {
        let mut dead = Vec::new();
        let records = LogRecords::decode(&chunk, self.format, self.max_message_bytes, &mut dead);
        DecodedLogs { chunk, records, dead }
    }
}

/// The dedup job as a stage: each batch decided by one policy version, new keys embedded and
/// stored; with a Kafka source, the store is synced before the driver commits.
struct Dedup<'j> {
    job: &'j DedupJob,
    store: SharedStore,
    embedder: Box<dyn Embedder>,
    progress: InputProgress,
    bar: indicatif::ProgressBar,
    totals: BatchCounts,
    batches: u64,
}

impl Stage for Dedup<'_> {
    type Decoder = LogDecoder;
    type Slots = DedupSlots;

    fn decoder(&self) -> LogDecoder {
        LogDecoder { format: self.job.format, max_message_bytes: self.job.max_message_bytes }
    }

    fn sample(decoded: &DecodedLogs) -> &LogRecords {
        &decoded.records
    }

    fn process(&mut self, decoded: DecodedLogs, cx: &mut Context<'_, DedupSlots>) -> Result<Ack> {
        let DecodedLogs { chunk, records, mut dead } = decoded;
        if chunk.is_empty() {
            return Ok(Ack::Nothing);
        }
        let policy = cx.slots.policy.current().clone();
        let mut policy = policy.lock().expect("not poisoned");
        let lineage = Lineage::of(&policy);
        let mut store = self.store.lock().expect("not poisoned");
        let mut deduper = Deduper { policy: &mut policy, store: store.as_mut(), embedder: self.embedder.as_mut(), lineage };
        let (mut counts, failed) = deduper.process(cx.runtime, &records)?;
        sg_metrics::METRICS.dead(&deduper.lineage.policy, failed.len());
        for f in &failed {
            let stage = RefusedBy::Component(deduper.lineage.policy.clone());
            dead.push(DeadLetter::new(records.position(&chunk, f.row), stage, f.reason.clone(), chunk.message(records.message[f.row])));
        }
        counts.records = chunk.len() as u64;
        counts.dead_lettered = dead.len() as u64;
        for letter in &dead {
            cx.dead.write(letter)?;
        }
        self.batches += 1;
        self.totals += counts;
        self.bar.set_position(self.progress.bytes());
        if !self.job.quiet {
            let line = format!(
                "batch {}: {} records, {} duplicates skipped, {} new, {} embedded, {} inserted ({} filtered, {} dead-lettered)",
                self.batches, counts.records, counts.duplicates, counts.new, counts.embedded, counts.inserted, counts.filtered, counts.dead_lettered
            );
            self.bar.suspend(|| tracing::info!("{line}"));
        }
        if !cx.commits {
            return Ok(Ack::Nothing);
        }
        // Points durable first, then what the policy learned from them; then (the driver) dead
        // letters, and the offsets move past them.
        store.sync()?;
        self.job.policy_state.save(&policy)?;
        Ok(Ack::Commit(std::mem::take(&mut cx.read)))
    }

    fn finish(&mut self, cx: &mut Context<'_, DedupSlots>) -> Result<Ack> {
        self.bar.finish_and_clear();
        let mut store = self.store.lock().expect("not poisoned");
        store.sync()?;
        self.job.policy_state.save(&cx.slots.policy.current().lock().expect("not poisoned"))?;
        // At the end of the input (or a follower's stop): the search index for what was added.
        store.build_index()?;
        Ok(Ack::Nothing)
    }
}

/// Dry run: what the policy decides for every record (a learning policy continues from its
/// saved state, and saves nothing), one JSON line each to `out` —
/// `{"position":…,"keep":…,"key":…,"id":…}`, or `{"position":…,"dead_letter":reason}` — with
/// no store and no embedder. Returns the records seen.
pub fn plan(job: &DedupJob, out: &mut dyn std::io::Write) -> Result<u64> {
    let runtime = Arc::new(Runtime::new(job.limits)?);
    let mut policy = PolicyComponent::load(&runtime, &job.policy)?;
    job.policy_state.resume(&mut policy, &runtime, job.policy_config.clone())?;
    let (mut upgrades, _) = driver::upgrades(&runtime, DedupSlots::new(policy), Vec::new(), false, None)?;
    let source = Source::open(&job.input, Framing::new(job.batch_bytes, job.max_message_bytes))?;
    let mut dead = DeadLetters::printed_elsewhere();
    let mut stage = Plan { job, out, seen: 0 };
    drive(source, &mut stage, &mut upgrades, &runtime, &mut dead, &AtomicBool::new(false))?;
    stage.out.flush()?;
    Ok(stage.seen)
}

/// The dry run as a stage: decisions printed, nothing stored, nothing acknowledged.
struct Plan<'j, 'w> {
    job: &'j DedupJob,
    out: &'w mut dyn std::io::Write,
    seen: u64,
}

impl Stage for Plan<'_, '_> {
    type Decoder = LogDecoder;
    type Slots = DedupSlots;

    fn decoder(&self) -> LogDecoder {
        LogDecoder { format: self.job.format, max_message_bytes: self.job.max_message_bytes }
    }

    fn sample(decoded: &DecodedLogs) -> &LogRecords {
        &decoded.records
    }

    fn process(&mut self, decoded: DecodedLogs, cx: &mut Context<'_, DedupSlots>) -> Result<Ack> {
        let DecodedLogs { chunk, records, dead } = decoded;
        let policy = cx.slots.policy.current().clone();
        let (decisions, failed) = policy.lock().expect("not poisoned").decide(cx.runtime, &records.batch())?;
        let mut lines: Vec<(sg_pipeline::source::Position, serde_json::Value)> = dead
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
            writeln!(self.out, "{value}")?;
        }
        self.seen += chunk.len() as u64;
        Ok(Ack::Nothing)
    }

    fn finish(&mut self, _cx: &mut Context<'_, DedupSlots>) -> Result<Ack> {
        Ok(Ack::Nothing)
    }
}

/// Line number, or (partition, offset).
fn position_order(p: &sg_pipeline::source::Position) -> (i64, i64) {
    match *p {
        sg_pipeline::source::Position::Line(l) => (l as i64, 0),
        sg_pipeline::source::Position::Kafka { partition, offset } => (partition as i64, offset),
    }
}
