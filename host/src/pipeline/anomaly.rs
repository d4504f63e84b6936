//! The anomaly pipeline: security events → features component → Isolation Forest →
//! `is_anomaly=0|1/` Parquet + `anomaly_report.json`, written atomically.

use std::path::PathBuf;
use std::sync::mpsc::sync_channel;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use sg_features_core::columns::ColumnData;

use super::Steps;
use crate::component::ComponentSource;
use crate::component::features::FeatureComponent;
use crate::dead_letter::{DeadLetterFile, DeadLetterTopic, DeadLetters};
use crate::detector::{self, DetectorChoice, DetectorEngine, ModelChoice, ModelSource};
use crate::events::{DecodedChunk, decode_chunk};
use crate::lineage::{ComponentLineage, Lineage};
use crate::output::{AnomalyReport, ScoredTable, StagedDir, write_partitioned};
use crate::runtime::{Limits, Runtime};
use crate::source::{Input, Source};

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
    let runtime = Runtime::new(job.limits)?;

    steps.step(&format!("Loading features component {}", job.component.origin()));
    let features = FeatureComponent::load(&runtime, &job.component)?;
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

    let staged = StagedDir::new(&job.out)?;
    let mut source = Source::open(&job.input, job.batch_bytes)?;
    let source_name = source.name();
    let dead_file = DeadLetterFile::create(&staged.path().join(DEAD_LETTER_FILE), &source_name)?;
    let dead_topic = match (&job.input, &job.dead_letter_topic) {
        (Input::Kafka(k), Some(topic)) => Some(DeadLetterTopic::open(&k.topic, &k.properties, topic)?),
        _ => None,
    };
    let mut dead = DeadLetters::new(dead_file, dead_topic);

    steps.step(&format!("Reading events from {source_name} and extracting features"));
    let bar = steps.progress(source.total_bytes());
    let progress = source.progress();
    let mut aggregation = features.aggregation(&runtime)?;
    let mut events = 0u64;
    let (tx, rx) = sync_channel::<Result<DecodedChunk>>(4);
    let max_message_bytes = job.max_message_bytes;
    let source = std::thread::scope(|scope| -> Result<Source> {
        // Reads and decodes (in parallel) ahead of the component; hands the source back at the end.
        let reader = scope.spawn(move || {
            let group = rayon::current_num_threads().max(1) * 2;
            loop {
                let mut chunks = Vec::with_capacity(group);
                while chunks.len() < group {
                    match source.next_chunk() {
                        Ok(Some(c)) => chunks.push(c),
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return source;
                        }
                    }
                }
                if chunks.is_empty() {
                    return source;
                }
                let decoded: Vec<DecodedChunk> = chunks.into_par_iter().map(|c| decode_chunk(c, max_message_bytes)).collect();
                for d in decoded {
                    if tx.send(Ok(d)).is_err() {
                        return source;
                    }
                }
            }
        });
        for decoded in rx {
            let mut decoded = decoded?;
            for letter in &decoded.dead {
                dead.write(letter)?;
            }
            if !decoded.batch.is_empty() {
                let batch = std::sync::Arc::new(std::mem::take(&mut decoded.batch));
                let failed = aggregation.push(&batch)?;
                dead.write_failed(&features.label(), &batch, &failed, |i| decoded.raw(&batch, i))?;
                events += (batch.len() - failed.len()) as u64;
            }
            bar.set_position(progress.bytes());
        }
        Ok(reader.join().expect("the reader thread does not panic"))
    })?;
    bar.finish_and_clear();
    let taken = aggregation.take()?;
    events -= dead.write_batch_failures(&features.label(), &taken.failed, " (at take)")?;
    let table = taken.table;
    let dead_lettered = dead.count();
    steps.note(&format!("{events} events, {dead_lettered} dead-lettered, {} users", table.rows));
    if aggregation.restarts() > 0 {
        steps.note(&format!("the component faulted; its instance was replaced {} times", aggregation.restarts()));
    }
    if table.rows == 0 {
        bail!("no valid events in {source_name} ({dead_lettered} dead-lettered): nothing to score");
    }

    steps.step(&format!("Detecting anomalies (Isolation Forest); writing Parquet and report to {}", job.out.display()));
    let (engine, model) = (DetectorEngine::load(&runtime, &job.detector)?, ModelChoice::load(&job.model)?);
    let settings = DetectorSettings { engine: &engine, model: &model, save_model: job.save_model.as_deref() };
    let (report, scored_rows, anomalies) =
        score_and_write(&runtime, &features, table, &settings, staged.path(), source_name, events, dead_lettered, &steps)?;
    dead.finish()?;
    std::fs::write(staged.path().join("_SUCCESS"), b"")?;
    let out = staged.commit()?;
    // Only now that the output is durable: acknowledge the input (Kafka offsets).
    source.acknowledge()?;

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
    Ok(RunSummary {
        events,
        dead_lettered,
        users: scored_rows,
        anomalies,
        out,
        seconds: steps.elapsed(),
    })
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
fn model_matrix(d: &crate::component::features::Descriptor, table: &sg_features_core::FeatureTable) -> Vec<f32> {
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
