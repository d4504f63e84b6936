//! The streaming anomaly pipeline (`run --follow`): consumer-group membership, micro-batches
//! bounded by size and time, tumbling event-time windows scored and written as they close (one
//! output directory per window), and offsets committed only behind what is durably written.
//!
//! A window closes when every partition read so far has an event at least `lateness` past its
//! end (the watermark is the minimum over partitions of their newest event time). Order of
//! effects, per closed window: the window's directory is staged and renamed into place,
//! dead letters are flushed (file fsync'd, dead-letter topic acknowledged), the checkpoint is
//! saved (`OUT/_checkpoint.json`, [`sg_pipeline::sink::checkpoint`]), and only then the group's
//! offsets move (through the driver) — to the smallest offset, per partition, of any event
//! still in an open window. The window bookkeeping is [`super::windows`]. A crash or a stop
//! therefore re-reads exactly the events of windows not yet written; a window is never written
//! twice, and events for a window already written are dead-lettered as late.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::bounded::{Coverage, DEAD_LETTER_FILE, DetectorSettings, score_and_write};
use sg_pipeline::driver::{self, Ack, Context, Stage, drive};
use crate::windows::{EventTime, OpenWindow, Room, Route, Windows};
use crate::{EventDecoder, rejects};
use sg_pipeline::retry::while_out_of_space;
use sg_pipeline::steps::Steps;
use sg_pipeline::admin::AdminSettings;
use sg_core::component::ComponentSource;
use sg_core::component::features::{Carried, FeatureAggregation, FeatureComponent, Quarantined};
use sg_core::detector::{AlertRule, DetectorChoice, ModelSource};
use sg_model::events::{DecodedChunk, EventBatch};
use sg_metrics::{METRICS, SourceLabels};
use sg_core::runtime::{Limits, Runtime};
use sg_pipeline::sink::alerts::{AlertOptions, AlertSinks, AlertTarget, Scope};
use sg_pipeline::sink::{Checkpoint, DeadLetter, DeadLetters, LEDGER_FILE, Layout, Period, RefusedBy, Replace, StagedDir, write_ledger};
use sg_model::Position;
use sg_kafka::KafkaOptions;
use sg_pipeline::source::{Framing, Input, Source};
use crate::slots::AnomalySlots;
use sg_core::swap::{self, Role};
use sg_model::time::iso_utc;

/// Everything a streaming run needs.
#[derive(Clone, Debug)]
pub struct StreamJob {
    /// Features component.
    pub component: ComponentSource,
    /// Topic, group, properties (`start` applies to a group without offsets).
    pub kafka: KafkaOptions,
    /// Output directory; each window is written to `OUT/window=START/`.
    pub out: PathBuf,
    /// Where each window's report goes beside its partitions.
    pub layout: Layout,
    /// Where the Isolation Forest runs.
    pub detector: DetectorChoice,
    /// Train per window, or score with a saved model.
    pub model: ModelSource,
    /// When a row alerts.
    pub alert: AlertRule,
    /// Entries of each row's explanation (0: none).
    pub explain: usize,
    /// Where alerts go (`--alerts`).
    pub alerts: Vec<AlertTarget>,
    /// What the alert sinks need besides their URLs.
    pub alert_options: AlertOptions,
    /// Sandbox limits.
    pub limits: Limits,
    /// Window length, ms.
    pub window_ms: i64,
    /// Lateness, future skew and idle timeout.
    pub time: EventTime,
    /// Write each window's ledger: the positions of the events it aggregates.
    pub ledger: bool,
    /// Most windows open at once (each holds a component instance); past it the oldest is
    /// written early.
    pub max_open_windows: usize,
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
    /// Ready only while the output's filesystem has this many bytes free (warned at start).
    pub min_free_space: u64,
    /// Window directories whose window ended this long before the newest written window's end
    /// are deleted (`None`: all are kept).
    pub retain: Option<Duration>,
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

/// Runs until `stop` is set: finishes the micro-batch in hand, commits what is safe, returns.
pub fn run(job: &StreamJob, stop: &AtomicBool) -> Result<StreamSummary> {
    let spare = job.limits.max_instances as usize - job.max_open_windows.min(job.limits.max_instances as usize);
    if job.max_open_windows == 0 || spare < 16 {
        anyhow::bail!(
            "--max-open-windows {} leaves {spare} of the pool's {} instances for upgrades and bisection (at least 16 are needed)",
            job.max_open_windows,
            job.limits.max_instances
        );
    }
    let mut steps = Steps::new(2, job.quiet);
    let runtime = Arc::new(Runtime::new(job.limits)?);
    steps.step(&format!("Loading features component {}", job.component.origin()));
    let slots = AnomalySlots::load(&runtime, &job.component, &job.detector, &job.model, Some(job.window_ms))?;
    let files = swap::files((Role::Features, &job.component), Some(&job.detector), Some(&job.model));
    let (mut upgrades, admin) = driver::upgrades(&runtime, slots, files, true, job.admin.as_ref())?;
    if let Some(address) = admin {
        steps.note(&format!("admin API on http://{address}"));
    }
    std::fs::create_dir_all(&job.out).with_context(|| format!("creating {}", job.out.display()))?;
    check_space(&job.out, job.min_free_space);
    let input = Input::Kafka(KafkaOptions { follow: Some(job.batch_wait), chunk_messages: job.batch_events, ..job.kafka.clone() });
    let name = job.kafka.topic.url();
    let mut dead = driver::dead_letters(&job.out.join(DEAD_LETTER_FILE), true, &input, &name, job.dead_letter_topic.as_deref())?;
    let source = Source::open(&input, Framing::new(0, job.max_message_bytes))?;
    steps.step(&format!("Following {name} as group {} in windows of {} s", job.kafka.group, job.window_ms / 1000));
    let windows = Windows::new(job.window_ms, job.time, Checkpoint::read(&job.out)?).keeping_ledger(job.ledger);
    let alerts = AlertSinks::open(&job.alerts, &job.alert_options)?;
    let mut stage = Windowed { job, runtime: &runtime, name, windows, steps, alerts, summary: StreamSummary::default() };
    drive(source, &mut stage, &mut upgrades, &runtime, &mut dead, stop)?;
    let mut summary = stage.summary;
    summary.dead_lettered = dead.count();
    dead.finish()?;
    Ok(summary)
}

/// The windowed stream as a stage: events routed to their event-time windows (each aggregated
/// by one features version), windows scored and written as the watermark passes them, the
/// checkpoint saved, and the offsets behind written windows acknowledged.
struct Windowed<'j, 'r> {
    job: &'j StreamJob,
    runtime: &'r Runtime,
    name: String,
    windows: Windows<FeatureAggregation<'r>>,
    steps: Steps,
    alerts: AlertSinks,
    summary: StreamSummary,
}

impl<'r> Stage for Windowed<'_, 'r> {
    type Decoder = EventDecoder;
    type Slots = AnomalySlots;

    fn decoder(&self) -> EventDecoder {
        EventDecoder { max_message_bytes: self.job.max_message_bytes }
    }

    fn sample(decoded: &DecodedChunk) -> &EventBatch {
        &decoded.batch
    }

    fn process(&mut self, mut decoded: DecodedChunk, cx: &mut Context<'_, AnomalySlots>) -> Result<Ack> {
        let runtime = self.runtime;
        METRICS.batches.get_or_create(&SourceLabels { source: self.name.clone() }).inc();
        let now = wall_clock_ms();
        self.windows.read(cx.read.clone(), now);
        for letter in &decoded.dead {
            cx.dead.write(letter)?;
        }
        let batch = std::mem::take(&mut decoded.batch);
        if let Some((Role::Features, pause)) = cx.switched {
            self.summary.swaps += 1;
            tracing::info!(
                "switch pause {:.2} ms (candidate checked on {} events; {} open windows move to it as they next receive events)",
                pause.as_secs_f64() * 1e3,
                batch.len().min(swap::SAMPLE_RECORDS),
                self.windows.open_windows()
            );
        }
        let mut features = cx.slots.features.current().clone();
        // Route events to their windows; events of written windows are late.
        let mut by_window: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, &ts) in batch.timestamp_ms.iter().enumerate() {
            match self.windows.route(batch.positions[i], ts, now) {
                Route::Covered => {}
                Route::Late(w) => {
                    let reason = format!("late event: window {} is already written", iso_utc(w));
                    cx.dead.write(&DeadLetter::new(batch.positions[i], RefusedBy::Late, reason, decoded.raw(&batch, i)))?;
                }
                Route::Future(limit) => {
                    let reason = format!("event time {} is past the future-skew limit {}", iso_utc(ts), iso_utc(limit));
                    cx.dead.write(&DeadLetter::new(batch.positions[i], RefusedBy::Future, reason, decoded.raw(&batch, i)))?;
                }
                Route::Open(w) => by_window.entry(w).or_default().push(i),
            }
        }
        let mut commit = None;
        for (w, rows) in by_window {
            // Each open window holds a component instance: at the limit the oldest is written
            // early (its later events are late), or a window older than all is refused.
            match self.windows.room(w, self.job.max_open_windows) {
                Room::Fits => {}
                Room::CloseOldest(oldest) => {
                    tracing::warn!("{} windows open (the limit): writing window {} early", self.windows.open_windows(), iso_utc(oldest));
                    METRICS.windows_closed_early.inc();
                    commit = Some(self.close(oldest, cx)?);
                }
                Room::Refuse => {
                    let reason = format!("{} windows are open (the limit) and window {} is older than each", self.windows.open_windows(), iso_utc(w));
                    for &i in &rows {
                        cx.dead.write(&DeadLetter::new(batch.positions[i], RefusedBy::Late, reason.clone(), decoded.raw(&batch, i)))?;
                    }
                    continue;
                }
            }
            let window = self.windows.window(w, |bounds| features.windowed_aggregation(runtime, bounds))?;
            if !Arc::ptr_eq(window.state.component(), &features) {
                move_window(w, window, &features, cx.dead)?;
            }
            let sub: Arc<EventBatch> = Arc::new(batch.select(&rows));
            let failed = match window.state.push(&sub) {
                Ok(failed) => failed,
                Err(e) => {
                    // A version failing every record is given up on: the batch is pushed to
                    // the previous one (which serves from now on).
                    features = fall_back(e, cx.slots, w, window, cx.dead)?;
                    window.state.push(&sub)?
                }
            };
            rejects::failed_events(cx.dead, &window.state.component().label(), &sub, &failed, |i| decoded.raw(&sub, i))?;
            // Failed events are dead letters (durable before any commit): the window holds the rest.
            let accepted: Vec<Position> = match failed.is_empty() {
                true => sub.positions.clone(),
                false => {
                    let failed: HashSet<usize> = failed.iter().map(|f| f.index).collect();
                    sub.positions.iter().enumerate().filter(|(i, _)| !failed.contains(i)).map(|(_, p)| *p).collect()
                }
            };
            self.windows.hold(w, &accepted);
        }
        // Close every window the watermark has passed, oldest first.
        if self.windows.open_windows() > 0 {
            let assigned = cx.assignment.assigned()?;
            let watermark = self.windows.watermark(&assigned, |p| cx.assignment.is_idle(p), now);
            if watermark > i64::MIN {
                METRICS.watermark.set(watermark as f64 / 1000.0);
            }
            for w in self.windows.closing(watermark) {
                commit = Some(self.close(w, cx)?);
            }
        }
        Ok(match commit {
            Some(safe) => Ack::Commit(safe),
            None => Ack::Safe(self.windows.safe_offsets()),
        })
    }

    fn revoked(&mut self) {
        // What is not written is re-read by whoever owns the partitions now.
        self.windows.revoked();
    }

    fn finish(&mut self, cx: &mut Context<'_, AnomalySlots>) -> Result<Ack> {
        cx.dead.sync()?;
        Ok(Ack::Commit(self.windows.safe_offsets()))
    }
}

impl<'r> Windowed<'_, 'r> {
    /// Writes the open window starting at `w` and saves the checkpoint; returns the offsets that
    /// are then safe (dead letters durable, then the checkpoint, then — by the driver — offsets).
    fn close(&mut self, w: i64, cx: &mut Context<'_, AnomalySlots>) -> Result<BTreeMap<i32, i64>> {
        let mut window = self.windows.remove(w).expect("an open window");
        self.write_window(w, &mut window, cx)?;
        let stop = cx.stop;
        while_out_of_space("syncing the dead letters", stop, || cx.dead.sync())?;
        let (checkpoint, safe) = self.windows.written(w);
        let out = &self.job.out;
        while_out_of_space("saving the checkpoint", stop, || checkpoint.write(out))?;
        if let Some(retain) = self.job.retain {
            let horizon = w + self.job.window_ms - retain.as_millis() as i64;
            if let Err(e) = remove_windows_before(out, horizon, self.job.window_ms) {
                tracing::warn!("--retain: {e:#}");
            }
            if let Err(e) = cx.dead.rotate(DEAD_LETTER_ROTATE_BYTES, retain) {
                tracing::warn!("--retain: {e:#}");
            }
        }
        Ok(safe)
    }

    /// Takes a closed window's table and writes it as `OUT/window=START/`; while the disk is
    /// full, the write is repeated from the table (the take is not).
    fn write_window(&mut self, w: i64, window: &mut OpenWindow<FeatureAggregation<'r>>, cx: &mut Context<'_, AnomalySlots>) -> Result<()> {
        let taken = match window.state.take() {
            Ok(taken) => taken,
            Err(e) => {
                // A version whose take fails whatever it is given is given up on: the
                // window, with its events, is taken by the previous one.
                fall_back(e, cx.slots, w, window, cx.dead)?;
                window.state.take()?
            }
        };
        let label = window.state.component().label();
        window.refused(&rejects::batch_failures(cx.dead, &label, &taken.failed, " (at take)")?);
        let table = taken.table;
        if table.rows == 0 {
            return Ok(());
        }
        let length = self.job.window_ms;
        let dir = self.job.out.join(format!("window={}", iso_utc(w)));
        let input = format!("{} [{}, {})", self.name, iso_utc(w), iso_utc(w + length));
        let version = window.state.component().clone();
        let coverage = Coverage {
            input,
            scope: Scope::Window { start: w, end: w + length },
            events: window.events,
            dead_lettered: cx.dead.count(),
            span_ms: Some(length),
            period: Some(Period { start: w, end: w + length }),
        };
        let (engine, model) = (cx.slots.detector.current(), cx.slots.model.current());
        let (report, anomalies) = while_out_of_space(&format!("writing window {}", iso_utc(w)), cx.stop, || {
            let staged = StagedDir::new(&dir, Replace::OnlyOutput)?;
            let mut settings = DetectorSettings {
                engine,
                model,
                save_model: None,
                alert: self.job.alert,
                explain: self.job.explain,
                alerts: &mut self.alerts,
                layout: self.job.layout,
            };
            let (report, _, anomalies) = score_and_write(cx.runtime, &version, table.clone(), &mut settings, staged.path(), coverage.clone(), &self.steps)?;
            if let Some(ledger) = &window.ledger {
                write_ledger(&staged.path().join(LEDGER_FILE), ledger)?;
            }
            staged.commit()?;
            Ok((report, anomalies))
        })?;
        self.steps.note(&format!("window {}: {} events, {} users, {anomalies} anomalous", iso_utc(w), window.events, report.total_users));
        self.summary.windows += 1;
        self.summary.events += window.events;
        Ok(())
    }
}

/// With `--retain`, the dead-letter file is rotated once it holds this much.
const DEAD_LETTER_ROTATE_BYTES: u64 = 64 << 20;

/// Warns when the output's filesystem has fewer than `min_free` bytes free, and makes `/readyz`
/// say so while it does: the stream starts anyway, and waits for space when a write fails.
fn check_space(out: &std::path::Path, min_free: u64) {
    use sg_metrics::health::{HEALTH, free_bytes};
    match free_bytes(out) {
        Ok(free) if free < min_free => {
            tracing::warn!("{free} bytes free on the filesystem of {} (under --min-free-space {min_free}): writes will wait for space", out.display());
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot read the free space of {}: {e}", out.display()),
    }
    HEALTH.watch_space(out.to_path_buf(), min_free);
}

/// Deletes the window directories of `out` whose window ended before `horizon` (epoch ms);
/// they are behind the checkpoint, so nothing re-reads them.
fn remove_windows_before(out: &std::path::Path, horizon: i64, window_ms: i64) -> Result<()> {
    for entry in std::fs::read_dir(out).with_context(|| format!("listing {}", out.display()))? {
        let path = entry?.path();
        let Some(start) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("window=")) else { continue };
        let Ok(start) = sg_model::time::parse_time(start) else { continue };
        if start + window_ms <= horizon && path.is_dir() {
            std::fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
            tracing::info!("--retain: removed {}", path.display());
        }
    }
    Ok(())
}

/// After the error `e` of a window's aggregation: when it gave up on its version
/// ([`Quarantined`]) and a previous version exists, that version serves again and the window
/// moves to it (for the caller to repeat the call there); otherwise `e`.
fn fall_back(
    e: anyhow::Error,
    slots: &mut AnomalySlots,
    w: i64,
    window: &mut OpenWindow<FeatureAggregation<'_>>,
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
fn move_window(w: i64, window: &mut OpenWindow<FeatureAggregation<'_>>, to: &Arc<FeatureComponent>, dead: &mut DeadLetters) -> Result<()> {
    let started = Instant::now();
    let from = window.state.component().label();
    let moved = window.state.migrate(to).unwrap_or_else(|e| {
        tracing::warn!("window {} stays on {from}: moving it failed: {e:#}", iso_utc(w));
        None
    });
    let Some(moved) = moved else {
        tracing::info!("window {} finishes on {from}", iso_utc(w));
        return Ok(());
    };
    let how = match &moved.how {
        Carried::State { bytes } => format!("state carried, {bytes} bytes"),
        Carried::Replayed { events, failed } => {
            let note = format!(" (after the upgrade from {from} to {})", to.label());
            window.refused(&rejects::batch_failures(dead, &to.label(), failed, &note)?);
            format!("{events} events replayed")
        }
    };
    window.state = moved.aggregation;
    tracing::info!(
        "window {} moved from {from} to {} in {:.2} ms ({how})",
        iso_utc(w),
        to.label(),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// The wall clock, epoch ms (what event time is judged against).
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
