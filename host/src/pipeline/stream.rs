//! The streaming anomaly pipeline (`run --follow`): consumer-group membership, micro-batches
//! bounded by size and time, tumbling event-time windows scored and written as they close (one
//! output directory per window), and offsets committed only behind what is durably written.
//!
//! A window closes when every partition read so far has an event at least `lateness` past its
//! end (the watermark is the minimum over partitions of their newest event time). Order of
//! effects, per closed window: the window's directory is staged and renamed into place,
//! dead letters are flushed (file fsync'd, dead-letter topic acknowledged), the closed-window
//! watermark is saved (`OUT/_watermark`), and only then the group's offsets move — to the
//! smallest offset, per partition, of any event still in an open window. A crash or a stop
//! therefore re-reads exactly the events of windows not yet written; a window is never written
//! twice, and events for a window already written are dead-lettered as late.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::Steps;
use super::anomaly::{DEAD_LETTER_FILE, DetectorSettings, score_and_write};
use crate::component::ComponentSource;
use crate::admin::{self, AdminSettings};
use crate::component::features::{Carried, FeatureAggregation, FeatureComponent, Quarantined, Window};
use crate::metrics::{METRICS, SourceLabels};
use crate::swap::{self, AnomalySlots, Role, Upgrades};
use crate::time::iso_utc;
use crate::dead_letter::{DeadLetter, DeadLetterFile, DeadLetterTopic, DeadLetters, Stage};
use crate::detector::{DetectorChoice, ModelSource};
use crate::events::{EventBatch, decode_chunk};
use crate::output::StagedDir;
use crate::runtime::{Limits, Runtime};
use crate::source::group::{self, commit_with_patience};
use crate::source::kafka::KafkaOptions;
use crate::source::Position;

/// File holding the checkpoint of what is written: the end of the last written window and,
/// per partition, the offset below which every event is in a written window.
pub const CHECKPOINT_FILE: &str = "_checkpoint.json";

/// What the output directory already holds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// End (exclusive, epoch ms) of the newest written window; earlier windows are closed.
    pub closed_until: Option<i64>,
    /// Per partition: every event below this offset is in a written window (or dead-lettered).
    pub covered: BTreeMap<i32, i64>,
}

/// Everything a streaming run needs.
#[derive(Clone, Debug)]
pub struct StreamJob {
    /// Features component.
    pub component: ComponentSource,
    /// Topic, group, properties (`start` applies to a group without offsets).
    pub kafka: KafkaOptions,
    /// Output directory; each window is written to `OUT/window=START/`.
    pub out: PathBuf,
    /// Where the Isolation Forest runs.
    pub detector: DetectorChoice,
    /// Train per window, or score with a saved model.
    pub model: ModelSource,
    /// Sandbox limits.
    pub limits: Limits,
    /// Window length, ms.
    pub window_ms: i64,
    /// How far behind the newest event time a window stays open, ms.
    pub lateness_ms: i64,
    /// A micro-batch ends after this many records…
    pub batch_events: usize,
    /// …or after this long.
    pub batch_wait: Duration,
    /// Larger messages are dead-lettered.
    pub max_message_bytes: usize,
    /// Also send dead letters to this topic.
    pub dead_letter_topic: Option<String>,
    /// No progress output.
    pub quiet: bool,
    /// The admin API (list, upload, rollback, metrics), if wanted.
    pub admin: Option<AdminSettings>,
}

/// What a streaming run did.
#[derive(Debug, Default)]
pub struct StreamSummary {
    /// Windows written.
    pub windows: u64,
    /// Events aggregated into written windows.
    pub events: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// Switches to another features version.
    pub swaps: u64,
}

/// A window being aggregated (by one features version).
struct OpenWindow<'r> {
    aggregation: FeatureAggregation<'r>,
    events: u64,
    /// Smallest offset, per partition, of an event in this window.
    first: BTreeMap<i32, i64>,
}

fn read_checkpoint(out: &Path) -> Result<Checkpoint> {
    match std::fs::read(out.join(CHECKPOINT_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("reading {}", out.join(CHECKPOINT_FILE).display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint::default()),
        Err(e) => Err(e.into()),
    }
}

fn write_checkpoint(out: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let tmp = out.join(format!(".{CHECKPOINT_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(checkpoint)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, out.join(CHECKPOINT_FILE))?;
    std::fs::File::open(out)?.sync_all()?;
    Ok(())
}

/// Runs until `stop` is set: finishes the micro-batch in hand, commits what is safe, returns.
pub fn run(job: &StreamJob, stop: &AtomicBool) -> Result<StreamSummary> {
    let mut steps = Steps::new(2, job.quiet);
    let runtime = Arc::new(Runtime::new(job.limits)?);
    steps.step(&format!("Loading features component {}", job.component.origin()));
    let slots = AnomalySlots::load(&runtime, &job.component, &job.detector, &job.model)?;
    let files = swap::files((Role::Features, &job.component), Some(&job.detector), Some(&job.model));
    let mut upgrades = Upgrades::new(runtime.clone(), slots, files);
    upgrades.reload_on_sighup();
    if let Some(admin) = &job.admin {
        let address = admin::serve(admin.clone(), upgrades.status(), upgrades.requests())?;
        steps.note(&format!("admin API on http://{address}"));
    }
    std::fs::create_dir_all(&job.out).with_context(|| format!("creating {}", job.out.display()))?;
    let topic = job.kafka.topic.topic.clone();
    let name = job.kafka.topic.url();
    let dead_file = DeadLetterFile::append(&job.out.join(DEAD_LETTER_FILE), &name)?;
    let dead_topic = match &job.dead_letter_topic {
        Some(t) => Some(DeadLetterTopic::open(&job.kafka.topic, &job.kafka.properties, t)?),
        None => None,
    };
    let mut dead = DeadLetters::new(dead_file, dead_topic);

    let (consumer, shared) = group::join(&job.kafka)?;
    steps.step(&format!("Following {name} as group {} in windows of {} s", job.kafka.group, job.window_ms / 1000));

    let mut windows: BTreeMap<i64, OpenWindow<'_>> = BTreeMap::new();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut checkpoint = read_checkpoint(&job.out)?;
    let mut closed_until = checkpoint.closed_until.unwrap_or(i64::MIN);
    // Newest event time per partition; the watermark is their minimum, so a partition that is
    // read ahead of another does not close windows the other still feeds.
    let mut newest: BTreeMap<i32, i64> = BTreeMap::new();
    let mut summary = StreamSummary::default();

    while !stop.load(Ordering::SeqCst) {
        // One micro-batch.
        let Some((chunk, read)) = group::fill(&consumer, &shared, job.batch_events, job.batch_wait, Some(stop)) else {
            // Partitions moved: what is not written is re-read by whoever owns them now.
            windows.clear();
            next.clear();
            newest.clear();
            continue;
        };
        next.extend(read);
        METRICS.batches.get_or_create(&SourceLabels { source: name.clone() }).inc();
        let mut decoded = decode_chunk(chunk, job.max_message_bytes);
        for letter in &decoded.dead {
            dead.write(letter)?;
        }
        let batch = std::mem::take(&mut decoded.batch);
        // Between batches: a validated candidate becomes the version serving; open windows move
        // to it as they take their next events (see `move_window`).
        let pause = Instant::now();
        if upgrades.poll(&batch, &runtime) == Some(Role::Features) {
            summary.swaps += 1;
            eprintln!(
                "sg-host: switch pause {:.2} ms (candidate checked on {} events; {} open windows move to it as they next receive events)",
                pause.elapsed().as_secs_f64() * 1e3,
                batch.len().min(swap::SAMPLE_RECORDS),
                windows.len()
            );
        }
        let mut features = upgrades.slots.features.current().clone();
        // Route events to their windows. Events below the checkpoint are in the output already
        // (re-read after a commit that did not happen); events of written windows are late.
        let mut by_window: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, &ts) in batch.timestamp_ms.iter().enumerate() {
            if let Position::Kafka { partition, offset } = batch.positions[i]
                && checkpoint.covered.get(&partition).is_some_and(|&c| offset < c)
            {
                continue;
            }
            let w = ts.div_euclid(job.window_ms) * job.window_ms;
            if w + job.window_ms <= closed_until {
                let reason = format!("late event: window {} is already written", iso_utc(w));
                dead.write(&DeadLetter::new(batch.positions[i], Stage::Late, reason, decoded.raw(&batch, i)))?;
            } else {
                by_window.entry(w).or_default().push(i);
            }
            if let Position::Kafka { partition, .. } = batch.positions[i] {
                let n = newest.entry(partition).or_insert(ts);
                *n = (*n).max(ts);
            }
        }
        for (w, rows) in by_window {
            let window = match windows.entry(w) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let bounds = Window { start_ms: w, end_ms: w + job.window_ms };
                    let aggregation = features.windowed_aggregation(&runtime, bounds)?;
                    e.insert(OpenWindow { aggregation, events: 0, first: BTreeMap::new() })
                }
            };
            if !Arc::ptr_eq(window.aggregation.component(), &features) {
                move_window(w, window, &features, &mut dead)?;
            }
            let sub: Arc<EventBatch> = Arc::new(batch.select(&rows));
            let failed = match window.aggregation.push(&sub) {
                Ok(failed) => failed,
                Err(e) => {
                    // A version failing every record is given up on: the batch is pushed to
                    // the previous one (which serves from now on).
                    features = fall_back(e, &mut upgrades.slots, w, window, &mut dead)?;
                    window.aggregation.push(&sub)?
                }
            };
            dead.write_failed(&window.aggregation.component().label(), &sub, &failed, |i| decoded.raw(&sub, i))?;
            window.events += (sub.len() - failed.len()) as u64;
            for pos in &sub.positions {
                if let Position::Kafka { partition, offset } = *pos {
                    let first = window.first.entry(partition).or_insert(offset);
                    *first = (*first).min(offset);
                }
            }
        }
        // Close every window the watermark has passed, oldest first.
        let watermark = match unseen_busy_partition(&consumer, &topic, &newest)? {
            true => i64::MIN,
            false => newest.values().copied().min().unwrap_or(i64::MIN).saturating_sub(job.lateness_ms),
        };
        let closing: Vec<i64> = windows.keys().copied().filter(|&w| w + job.window_ms <= watermark).collect();
        for w in closing {
            let mut window = windows.remove(&w).expect("listed above");
            let taken = match window.aggregation.take() {
                Ok(taken) => taken,
                Err(e) => {
                    // A version whose take fails whatever it is given is given up on: the
                    // window, with its events, is taken by the previous one.
                    fall_back(e, &mut upgrades.slots, w, &mut window, &mut dead)?;
                    window.aggregation.take()?
                }
            };
            let label = window.aggregation.component().label();
            window.events -= dead.write_batch_failures(&label, &taken.failed, " (at take)")?;
            let table = taken.table;
            if table.rows > 0 {
                let dir = job.out.join(format!("window={}", iso_utc(w)));
                let staged = StagedDir::new(&dir)?;
                let input = format!("{name} [{}, {})", iso_utc(w), iso_utc(w + job.window_ms));
                let version = window.aggregation.component().clone();
                let settings = DetectorSettings {
                    engine: upgrades.slots.detector.current(),
                    model: upgrades.slots.model.current(),
                    save_model: None,
                };
                let (report, _, anomalies) = score_and_write(
                    &runtime, &version, table, &settings, staged.path(), input, window.events, dead.count(), &steps,
                )?;
                std::fs::write(staged.path().join("_SUCCESS"), b"")?;
                staged.commit()?;
                steps.note(&format!(
                    "window {}: {} events, {} users, {anomalies} anomalous",
                    iso_utc(w),
                    window.events,
                    report.total_users
                ));
                summary.windows += 1;
                summary.events += window.events;
            }
            closed_until = closed_until.max(w + job.window_ms);
            dead.sync()?;
            let safe = safe_offsets(&next, &windows);
            checkpoint.closed_until = Some(closed_until);
            for (&p, &o) in &safe {
                let c = checkpoint.covered.entry(p).or_insert(o);
                *c = (*c).max(o);
            }
            write_checkpoint(&job.out, &checkpoint)?;
            // The checkpoint, not the group's offsets, is what keeps a window from being written
            // twice: a commit that fails (coordinator moving, membership lost) only means more
            // re-reading, which the checkpoint skips.
            match commit_with_patience(&consumer, &topic, &safe, Duration::from_secs(5)) {
                Ok(()) => {
                    METRICS.commits.get_or_create(&SourceLabels { source: name.clone() }).inc();
                }
                Err(e) => eprintln!("sg-host: {e:#}; will commit with the next window"),
            }
        }
        *shared.safe.lock().expect("not poisoned") = safe_offsets(&next, &windows);
    }
    dead.sync()?;
    if let Err(e) = commit_with_patience(&consumer, &topic, &safe_offsets(&next, &windows), Duration::from_secs(20)) {
        eprintln!("sg-host: {e:#}; the next run re-reads from the last commit and skips what {} holds", CHECKPOINT_FILE);
    }
    summary.dead_lettered = dead.count();
    dead.finish()?;
    Ok(summary)
}

/// After the error `e` of a window's aggregation: when it gave up on its version
/// ([`Quarantined`]) and a previous version exists, that version serves again and the window
/// moves to it (for the caller to repeat the call there); otherwise `e`.
fn fall_back(
    e: anyhow::Error,
    slots: &mut AnomalySlots,
    w: i64,
    window: &mut OpenWindow<'_>,
    dead: &mut DeadLetters,
) -> Result<Arc<FeatureComponent>> {
    let Some(previous) = e.downcast_ref::<Quarantined>().and_then(|q| slots.quarantine(q)) else { return Err(e) };
    move_window(w, window, &previous, dead)?;
    Ok(previous)
}

/// Moves an open window to the version serving before it takes more events, so each batch is
/// processed by one version: by its exported state when both versions carry state in the same
/// format, else by replaying its accepted batches into a fresh instance of `to`. Events `to`
/// fails on in a replay are dead-lettered (their messages stay re-readable: offsets are
/// committed only behind written windows). A window that cannot be moved (journal over budget,
/// or the move fails) finishes on its version, which the log says.
fn move_window(w: i64, window: &mut OpenWindow<'_>, to: &Arc<FeatureComponent>, dead: &mut DeadLetters) -> Result<()> {
    let started = Instant::now();
    let from = window.aggregation.component().label();
    let moved = window.aggregation.migrate(to).unwrap_or_else(|e| {
        eprintln!("sg-host: window {} stays on {from}: moving it failed: {e:#}", iso_utc(w));
        None
    });
    let Some(moved) = moved else {
        eprintln!("sg-host: window {} finishes on {from}", iso_utc(w));
        return Ok(());
    };
    let how = match &moved.how {
        Carried::State { bytes } => format!("state carried, {bytes} bytes"),
        Carried::Replayed { events, failed } => {
            let note = format!(" (after the upgrade from {from} to {})", to.label());
            window.events -= dead.write_batch_failures(&to.label(), failed, &note)?;
            format!("{events} events replayed")
        }
    };
    window.aggregation = moved.aggregation;
    eprintln!(
        "sg-host: window {} moved from {from} to {} in {:.2} ms ({how})",
        iso_utc(w),
        to.label(),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// Whether an assigned partition has not delivered an event yet but may still hold records
/// for the open windows (so none may close). A partition counts as idle only while it is empty
/// or committed at its end — checked afresh each time, since records may arrive at any moment.
fn unseen_busy_partition<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    newest: &BTreeMap<i32, i64>,
) -> Result<bool> {
    let assignment = consumer.assignment().context("reading the assignment")?;
    for e in assignment.elements() {
        let p = e.partition();
        if newest.contains_key(&p) {
            continue;
        }
        let Ok((low, high)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(2)) else { return Ok(true) };
        if high <= low {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, p);
        let Ok(committed) = consumer.committed_offsets(tpl, Duration::from_secs(2)) else { return Ok(true) };
        let at = committed.find_partition(topic, p).and_then(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        });
        if !at.is_some_and(|o| o >= high) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Per partition: the smallest offset of an event still in an open window, else the next
/// offset to read.
fn safe_offsets(next: &BTreeMap<i32, i64>, windows: &BTreeMap<i64, OpenWindow<'_>>) -> BTreeMap<i32, i64> {
    let mut safe = next.clone();
    for w in windows.values() {
        for (&p, &o) in &w.first {
            let s = safe.entry(p).or_insert(o);
            *s = (*s).min(o);
        }
    }
    safe
}
