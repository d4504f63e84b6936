//! The anomaly pipeline: security events → features component → Isolation Forest →
//! `is_anomaly=0|1/` Parquet + `anomaly_report.json`, written atomically.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, Result, bail};
use sg_features_core::columns::ColumnData;

use sg_pipeline::driver::{self, Ack, Context, Stage, drive};
use crate::{EventDecoder, rejects};
use sg_pipeline::steps::Steps;
use sg_core::component::ComponentSource;
use sg_core::component::features::{FeatureAggregation, FeatureComponent};
use sg_core::detector::{self, DetectorChoice, DetectorEngine, ModelChoice, ModelSource};
use sg_model::events::{DecodedChunk, EventBatch};
use sg_core::lineage::{ComponentLineage, Lineage};
use sg_core::runtime::{Limits, Runtime};
use sg_pipeline::sink::{AnomalyReport, Replace, ScoredTable, StagedDir, write_partitioned};
use sg_pipeline::source::{Framing, Input, InputProgress, Source};
use crate::slots::AnomalySlots;

/// Name of the dead-letter file inside the output directory (ignored by Hive-style readers).
pub const DEAD_LETTER_FILE: &str = "_dead_letters.jsonl";
/// Name of the report inside the output directory.
pub const REPORT_FILE: &str = "anomaly_report.json";

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
    /// Where the Isolation Forest runs.
    pub detector: DetectorChoice,
    /// Train or load a model.
    pub model: ModelSource,
    /// Save the model here.
    pub save_model: Option<PathBuf>,
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
    let slots = AnomalySlots::load(&runtime, &job.component, &job.detector, &job.model)?;
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

    let staged = StagedDir::new(&job.out, job.replace)?;
    let source = Source::open(&job.input, Framing::new(job.batch_bytes, job.max_message_bytes))?;
    let source_name = source.name();
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
        aggregation: features.aggregation(&runtime)?,
        features,
        events: 0,
        progress: source.progress(),
        bar,
        steps,
        staged: Some(staged),
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
    aggregation: FeatureAggregation<'r>,
    events: u64,
    progress: InputProgress,
    bar: indicatif::ProgressBar,
    steps: Steps,
    staged: Option<StagedDir>,
    source_name: String,
    summary: Option<(RunSummary, AnomalyReport)>,
}

impl Stage for Bounded<'_, '_> {
    type Decoder = EventDecoder;
    type Slots = AnomalySlots;

    fn decoder(&self) -> EventDecoder {
        EventDecoder { max_message_bytes: self.job.max_message_bytes }
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
            let failed = self.aggregation.push(&batch)?;
            rejects::failed_events(cx.dead, &self.features.label(), &batch, &failed, |i| decoded.raw(&batch, i))?;
            self.events += (batch.len() - failed.len()) as u64;
        }
        self.bar.set_position(self.progress.bytes());
        Ok(Ack::Nothing)
    }

    fn finish(&mut self, cx: &mut Context<'_, AnomalySlots>) -> Result<Ack> {
        self.bar.finish_and_clear();
        let (features, steps, job) = (&self.features, &mut self.steps, self.job);
        let taken = self.aggregation.take()?;
        self.events -= rejects::batch_failures(cx.dead, &features.label(), &taken.failed, " (at take)")?.len() as u64;
        let (events, table) = (self.events, taken.table);
        let dead_lettered = cx.dead.count();
        steps.note(&format!("{events} events, {dead_lettered} dead-lettered, {} users", table.rows));
        if self.aggregation.restarts() > 0 {
            steps.note(&format!("the component faulted; its instance was replaced {} times", self.aggregation.restarts()));
        }
        if table.rows == 0 {
            bail!("no valid events in {} ({dead_lettered} dead-lettered): nothing to score", self.source_name);
        }
        steps.step(&format!("Detecting anomalies (Isolation Forest); writing Parquet and report to {}", job.out.display()));
        let staged = self.staged.take().expect("finish runs once");
        let settings = DetectorSettings {
            engine: cx.slots.detector.current(),
            model: cx.slots.model.current(),
            save_model: job.save_model.as_deref(),
        };
        let input = self.source_name.clone();
        let (report, users, anomalies) =
            score_and_write(cx.runtime, features, table, &settings, staged.path(), input, events, dead_lettered, steps)?;
        // The dead letters live in the staged directory: durable before it is renamed in.
        cx.dead.sync()?;
        let out = staged.commit()?;
        let summary = RunSummary { events, dead_lettered, users, anomalies, out, seconds: 0.0 };
        self.summary = Some((summary, report));
        // Only now that the output is durable: acknowledge the input (Kafka offsets).
        Ok(Ack::Commit(std::mem::take(&mut cx.read)))
    }
}

/// How the detector runs for a pipeline.
pub struct DetectorSettings<'a> {
    /// Native or a component.
    pub engine: &'a DetectorEngine,
    /// Train, or a saved model.
    pub model: &'a ModelChoice,
    /// Save the trained model here.
    pub save_model: Option<&'a std::path::Path>,
}

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
#[allow(clippy::too_many_arguments)]
pub fn score_and_write(
    runtime: &Runtime,
    features: &FeatureComponent,
    table: sg_features_core::FeatureTable,
    settings: &DetectorSettings<'_>,
    dir: &std::path::Path,
    input: String,
    events: u64,
    dead_lettered: u64,
    steps: &Steps,
) -> Result<(AnomalyReport, usize, usize)> {
    let d = features.descriptor();
    let matrix = model_matrix(d, &table);
    let detection = detector::run(runtime, settings.engine, settings.model, &matrix, &d.model_input_names())?;
    if let Some(path) = settings.save_model {
        detector::save_model(path, &detection.model_bytes)?;
        steps.note(&format!("model saved to {}", path.display()));
    }
    let scored = ScoredTable::new(d, table, &detection.score_samples, detection.offset);
    steps.note(&format!(
        "{} of {} users flagged (detector {}, offset {:.6})",
        scored.anomalies(),
        scored.table.rows,
        detection.lineage.kind,
        detection.offset
    ));
    let lineage = Lineage {
        host_version: env!("CARGO_PKG_VERSION"),
        features: ComponentLineage {
            name: d.name.clone(),
            version: d.version.clone(),
            contract: features.contract().to_string(),
            sha256: features.digest().into(),
            origin: features.origin().into(),
        },
        detector: detection.lineage,
        input,
        events,
        dead_lettered,
    };
    write_partitioned(dir, &scored, &lineage.key_values())?;
    let report = AnomalyReport::new(&scored, lineage);
    std::fs::write(dir.join(REPORT_FILE), serde_json::to_vec_pretty(&report)?).context("writing the report")?;
    Ok((report, scored.table.rows, scored.anomalies()))
}
