//! The anomaly pipeline: security events → features component → Isolation Forest →
//! `is_anomaly=0|1/` Parquet + `_anomaly_report.json` (or the reference's `anomaly_report.json`,
//! [`Layout`]), alerts to their sinks, written atomically.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, Result, bail};
use sg_features_core::columns::ColumnData;

use sg_pipeline::driver::{self, Ack, Context, Stage, drive};
use crate::reread::InputFile;
use crate::{EventDecoder, rejects};
use sg_pipeline::steps::Steps;
use sg_core::component::ComponentSource;
use sg_core::component::features::{FeatureAggregation, FeatureComponent, Taken};
use sg_features_core::{Aggregator, Flavor};
use sg_core::detector::{self, AlertRule, DetectorChoice, DetectorEngine, ModelChoice, ModelSource};
use sg_model::events::{DecodedChunk, EventBatch};
use sg_core::lineage::{ComponentLineage, Lineage};
use sg_core::runtime::{Limits, Runtime};
use sg_pipeline::sink::alerts::{self, AlertOptions, AlertSinks, AlertTarget, Scope};
use sg_pipeline::sink::{AnomalyReport, Layout, Period, Replace, ScoredTable, StagedDir, write_partitioned};
use sg_pipeline::source::{Framing, Input, InputProgress, Source};
use crate::slots::AnomalySlots;

/// Name of the dead-letter file inside the output directory (ignored by Hive-style readers).
pub const DEAD_LETTER_FILE: &str = "_dead_letters.jsonl";

/// Everything a run of the anomaly pipeline needs.
#[derive(Clone, Debug)]
pub struct AnomalyJob {
    /// Features component.
    pub component: ComponentSource,
    /// What to read: JSON lines (`-` for stdin; gzip detected) or a Kafka topic.
    pub input: Input,
    /// Output directory (replaced atomically).
    pub out: PathBuf,
    /// What `out` may be for the run to replace it.
    pub replace: Replace,
    /// Where the report goes beside the partitions.
    pub layout: Layout,
    /// Where the Isolation Forest runs.
    pub detector: DetectorChoice,
    /// Train or load a model.
    pub model: ModelSource,
    /// Save the model here.
    pub save_model: Option<PathBuf>,
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
    /// Input bytes per batch.
    pub batch_bytes: usize,
    /// Larger messages are dead-lettered.
    pub max_message_bytes: usize,
    /// With a Kafka source: also send dead letters to this topic.
    pub dead_letter_topic: Option<String>,
    /// No progress output.
    pub quiet: bool,
    /// Aggregate with the builtin component's feature code compiled into the host, outside
    /// the sandbox: only what a benchmark runs to measure what the sandbox costs end to end.
    pub native_features: bool,
}

/// What a run did.
#[derive(Debug)]
pub struct RunSummary {
    /// Valid events processed.
    pub events: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// Rows (users) scored.
    pub users: usize,
    /// Rows flagged.
    pub anomalies: usize,
    /// The committed output directory.
    pub out: PathBuf,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Runs the pipeline end to end.
pub fn run(job: &AnomalyJob) -> Result<RunSummary> {
    let mut steps = Steps::new(4, job.quiet);
    let runtime = Arc::new(Runtime::new(job.limits)?);

    steps.step(&format!("Loading features component {}", job.component.origin()));
    let slots = AnomalySlots::load(&runtime, &job.component, &job.detector, &job.model, None)?;
    let features = slots.features.current().clone();
    let d = features.descriptor();
    steps.note(&format!(
        "{} {} ({}), sha256 {}…, {} columns, {} model inputs",
        d.name,
        d.version,
        features.contract(),
        &features.digest()[..12],
        d.columns.len(),
        d.model_inputs().len()
    ));
    // A bounded run is one version from start to end: nothing is watched, nothing swapped.
    let (mut upgrades, _) = driver::upgrades(&runtime, slots, Vec::new(), false, None)?;

    let alerts = AlertSinks::open(&job.alerts, &job.alert_options)?;
    let staged = StagedDir::new(&job.out, job.replace)?;
    let source = Source::open(&job.input, Framing::new(job.batch_bytes, job.max_message_bytes))?;
    let source_name = source.name();
    let decoder = EventDecoder { max_message_bytes: job.max_message_bytes };
    // A file's chunks are journaled by where they lie, and read again if a replay needs them.
    let input = source.spanned_file()?.map(|file| InputFile::new(file, source_name.clone(), decoder)).transpose()?;
    let mut dead = driver::dead_letters(
        &staged.path().join(DEAD_LETTER_FILE),
        false,
        &job.input,
        &source_name,
        job.dead_letter_topic.as_deref(),
    )?;

    steps.step(&format!("Reading events from {source_name} and extracting features"));
    let bar = steps.progress(source.total_bytes());
    let mut stage = Bounded {
        job,
        aggregation: Some(match job.native_features {
            false => Aggregation::Sandboxed(features.aggregation(&runtime)?),
            true => Aggregation::Native(Aggregator::new(native_flavor(&job.component)?)),
        }),
        features,
        decoder,
        input,
        events: 0,
        event_times: None,
        progress: source.progress(),
        bar,
        steps,
        staged: Some(staged),
        alerts,
        source_name,
        summary: None,
    };
    drive(source, &mut stage, &mut upgrades, &runtime, &mut dead, &AtomicBool::new(false))?;
    dead.finish()?;
    let (summary, report) = stage.summary.take().expect("finish ran");
    let steps = &mut stage.steps;
    steps.step("Done");
    for (i, a) in report.top_anomalies.iter().take(5).enumerate() {
        steps.note(&format!(
            "{}. {} (score {:.3}, events {}, threat {:.3})",
            i + 1,
            a.user.as_deref().unwrap_or("<no user>"),
            a.anomaly_score,
            a.total_events.map_or("-".into(), |v| v.to_string()),
            a.avg_threat_score.unwrap_or(f64::NAN)
        ));
    }
    Ok(RunSummary { seconds: steps.elapsed(), ..summary })
}

/// The bounded run as a stage: every chunk into one aggregation; at the end, score and write
/// the output (staged, then renamed into place) and acknowledge everything read.
struct Bounded<'j, 'r> {
    job: &'j AnomalyJob,
    features: Arc<FeatureComponent>,
    /// Until the input ends; dropped after its table is taken, so the instance's memory (the
    /// per-user state) is released before scoring needs memory of its own.
    aggregation: Option<Aggregation<'r>>,
    decoder: EventDecoder,
    /// The input file, when its chunks can be read again.
    input: Option<Arc<InputFile>>,
    events: u64,
    /// The first and the last event time read (ms).
    event_times: Option<(i64, i64)>,
    progress: InputProgress,
    bar: indicatif::ProgressBar,
    steps: Steps,
    staged: Option<StagedDir>,
    alerts: AlertSinks,
    source_name: String,
    summary: Option<(RunSummary, AnomalyReport)>,
}

impl Stage for Bounded<'_, '_> {
    type Decoder = EventDecoder;
    type Slots = AnomalySlots;

    fn decoder(&self) -> EventDecoder {
        self.decoder
    }

    fn sample(decoded: &DecodedChunk) -> &EventBatch {
        &decoded.batch
    }

    fn process(&mut self, mut decoded: DecodedChunk, cx: &mut Context<'_, AnomalySlots>) -> Result<Ack> {
        for letter in &decoded.dead {
            cx.dead.write(letter)?;
        }
        if !decoded.batch.is_empty() {
            let batch = Arc::new(std::mem::take(&mut decoded.batch));
            let (lo, hi) = batch.timestamp_ms.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
            self.event_times = Some(self.event_times.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            let failed = match (self.aggregation.as_mut().expect("pushes come before finish"), &self.input, decoded.span) {
                (Aggregation::Sandboxed(a), Some(input), Some(span)) => a.push_rereadable(&batch, &input.chunk(span))?,
                (Aggregation::Sandboxed(a), ..) => a.push(&batch)?,
                (Aggregation::Native(a), ..) => {
                    a.push(&batch.columns()).map_err(|e| anyhow::anyhow!("native features: {e}"))?;
                    Vec::new()
                }
            };
            rejects::failed_events(cx.dead, &self.features.label(), &batch, &failed, |i| decoded.raw(&batch, i))?;
            self.events += (batch.len() - failed.len()) as u64;
        }
        self.bar.set_position(self.progress.bytes());
        Ok(Ack::Nothing)
    }

    fn finish(&mut self, cx: &mut Context<'_, AnomalySlots>) -> Result<Ack> {
        self.bar.finish_and_clear();
        let (features, steps, job) = (&self.features, &mut self.steps, self.job);
        let (taken, restarts) = match self.aggregation.take().expect("finish runs once") {
            Aggregation::Sandboxed(mut a) => (a.take()?, a.restarts()),
            Aggregation::Native(mut a) => (Taken { table: a.take(), failed: Vec::new() }, 0),
        };
        self.events -= rejects::batch_failures(cx.dead, &features.label(), &taken.failed, " (at take)")?.len() as u64;
        let (events, table) = (self.events, taken.table);
        let dead_lettered = cx.dead.count();
        steps.note(&format!("{events} events, {dead_lettered} dead-lettered, {} users", table.rows));
        if restarts > 0 {
            steps.note(&format!("the component faulted; its instance was replaced {restarts} times"));
        }
        if table.rows == 0 {
            bail!("no valid events in {} ({dead_lettered} dead-lettered): nothing to score", self.source_name);
        }
        steps.step(&format!("Detecting anomalies (Isolation Forest); writing Parquet and report to {}", job.out.display()));
        let staged = self.staged.take().expect("finish runs once");
        let mut settings = DetectorSettings {
            engine: cx.slots.detector.current(),
            model: cx.slots.model.current(),
            save_model: job.save_model.as_deref(),
            alert: job.alert,
            explain: job.explain,
            alerts: &mut self.alerts,
            layout: job.layout,
        };
        let coverage = Coverage {
            input: self.source_name.clone(),
            scope: Scope::Input(self.source_name.clone()),
            events,
            dead_lettered,
            span_ms: self.event_times.map(|(first, last)| last - first),
            period: self.event_times.map(|(first, last)| Period { start: first, end: last + 1 }),
        };
        let (report, users, anomalies) = score_and_write(cx.runtime, features, table, &mut settings, staged.path(), coverage, steps)?;
        // The dead letters live in the staged directory: durable before it is renamed in.
        cx.dead.sync()?;
        let out = staged.commit()?;
        let summary = RunSummary { events, dead_lettered, users, anomalies, out, seconds: 0.0 };
        self.summary = Some((summary, report));
        // Only now that the output is durable: acknowledge the input (Kafka offsets).
        Ok(Ack::Commit(std::mem::take(&mut cx.read)))
    }
}

/// Where a bounded run aggregates its features.
enum Aggregation<'r> {
    /// In a sandboxed instance of the features component: every real run.
    Sandboxed(FeatureAggregation<'r>),
    /// The same feature code compiled into the host ([`AnomalyJob::native_features`]).
    Native(Aggregator),
}

/// The feature code of a builtin features component, for [`AnomalyJob::native_features`].
fn native_flavor(component: &ComponentSource) -> Result<Flavor> {
    match component {
        ComponentSource::Builtin(b) if b.name == "streamguard" => Ok(Flavor::Streamguard),
        ComponentSource::Builtin(b) if b.name == "spark-compat" => Ok(Flavor::SparkCompat),
        other => bail!("native features are the builtin streamguard or spark-compat code, not {}", other.origin()),
    }
}

/// How a pipeline scores a table and writes what it found.
pub struct DetectorSettings<'a> {
    /// Native or a component.
    pub engine: &'a DetectorEngine,
    /// Train, or a saved model.
    pub model: &'a ModelChoice,
    /// Save the trained model here.
    pub save_model: Option<&'a std::path::Path>,
    /// When a row alerts.
    pub alert: AlertRule,
    /// Entries of each row's explanation (0: none).
    pub explain: usize,
    /// Where alerts go; each acknowledges them before the output is committed.
    pub alerts: &'a mut AlertSinks,
    /// Where the report goes beside the partitions.
    pub layout: Layout,
}

/// What a scored table covers: its input, the alerts' scope, what was read.
#[derive(Clone)]
pub struct Coverage {
    /// The source, as the lineage names it.
    pub input: String,
    /// A window or a bounded input (part of each alert's id).
    pub scope: Scope,
    /// Events aggregated.
    pub events: u64,
    /// Messages dead-lettered so far.
    pub dead_lettered: u64,
    /// Event-time span, ms, of the events (recorded in a model trained on them).
    pub span_ms: Option<i64>,
    /// The event time covered (in the report).
    pub period: Option<Period>,
}

/// Flagged rows whose explanation a run prints.
const SUMMARY_LINES: usize = 5;

/// The model input of a feature table: row-major f32 over the descriptor's model inputs.
fn model_matrix(d: &sg_core::component::features::Descriptor, table: &sg_features_core::FeatureTable) -> Vec<f32> {
    let inputs = d.model_inputs();
    let mut matrix = vec![0f32; table.rows * inputs.len()];
    for (j, &c) in inputs.iter().enumerate() {
        match &table.columns[c] {
            ColumnData::Int64(v) => v.iter().enumerate().for_each(|(r, &x)| matrix[r * inputs.len() + j] = x as f32),
            ColumnData::Float64(v) => v.iter().enumerate().for_each(|(r, &x)| matrix[r * inputs.len() + j] = x as f32),
            _ => unreachable!("descriptor validation keeps model inputs numeric"),
        }
    }
    matrix
}

/// Scores a feature table and writes the partitions and the report into `dir` (a staging
/// directory); returns the report, the rows and the rows flagged.
pub fn score_and_write(
    runtime: &Runtime,
    features: &FeatureComponent,
    table: sg_features_core::FeatureTable,
    settings: &mut DetectorSettings<'_>,
    dir: &std::path::Path,
    coverage: Coverage,
    steps: &Steps,
) -> Result<(AnomalyReport, usize, usize)> {
    let Coverage { input, scope, events, dead_lettered, span_ms, period } = coverage;
    let d = features.descriptor();
    let matrix = model_matrix(d, &table);
    let options = detector::RunOptions { explain: settings.explain, span_ms };
    let detection = detector::run(runtime, settings.engine, settings.model, &matrix, &d.model_input_names(), options)?;
    if let Some(path) = settings.save_model {
        detector::save_model(path, &detection.model_bytes)?;
        steps.note(&format!("model saved to {}", path.display()));
    }
    let threshold = settings.alert.threshold(&detection.model)?;
    let scored = ScoredTable::new(d, table, &detection, threshold);
    steps.note(&format!(
        "{} of {} users flagged (detector {}, offset {:.6}); {} alert (anomaly score above {threshold:.4}); fit {:.3} s, score {:.3} s, explain {:.3} s",
        scored.anomalies(),
        scored.table.rows,
        detection.lineage.kind,
        detection.offset,
        scored.alerts(),
        detection.fit_seconds,
        detection.score_seconds,
        detection.explain_seconds,
    ));
    let mut ranked: Vec<usize> = (0..scored.table.rows).filter(|&r| scored.is_alert[r] || scored.is_anomaly[r]).collect();
    ranked.sort_by(|&a, &b| scored.anomaly_score[b].total_cmp(&scored.anomaly_score[a]).then(a.cmp(&b)));
    for &r in ranked.iter().take(SUMMARY_LINES) {
        steps.note(&scored.summary_line(r));
    }
    let lineage = Lineage {
        host_version: env!("CARGO_PKG_VERSION"),
        features: ComponentLineage {
            name: d.name.clone(),
            version: d.version.clone(),
            contract: features.contract().to_string(),
            sha256: features.digest().into(),
            origin: features.origin().into(),
            precompiled_sha256: features.precompiled_digest().map(str::to_string),
        },
        detector: detection.lineage,
        input,
        events,
        dead_lettered,
    };
    write_partitioned(dir, &scored, &lineage.key_values())?;
    let findings = alerts::ocsf::findings(&scored, &lineage, &scope);
    let delivered = settings.alerts.send(&findings)?;
    for d in &delivered {
        steps.note(&format!("{} alerts delivered to {} ({} retries)", d.sent, d.sink, d.retried));
    }
    let report = AnomalyReport::new(&scored, lineage, delivered, period);
    std::fs::write(dir.join(settings.layout.report_file()), serde_json::to_vec_pretty(&report)?).context("writing the report")?;
    Ok((report, scored.table.rows, scored.anomalies()))
}
