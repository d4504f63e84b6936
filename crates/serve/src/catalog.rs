//! What `serve` serves: the outputs under each `--data` directory — a bounded run's directory
//! (`DIR/_SUCCESS`) or a stream's windows (`DIR/window=…/_SUCCESS`) — rescanned at most once a
//! second, so windows a running stream writes appear without a restart. An output is read
//! when first asked for (its report at once, its Parquet partitions on the first query that
//! needs rows) and read again when its `_SUCCESS` changes (a window rewritten after a restart).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use sg_pipeline::sink::{Layout, Period, SUCCESS_FILE};

/// How often the directories are listed again, at most.
const RESCAN: Duration = Duration::from_secs(1);

/// The partition directories of an output, with the `is_anomaly` value each stands for.
const PARTITIONS: [(&str, bool); 2] = [("is_anomaly=0", false), ("is_anomaly=1", true)];

/// A bounded run's output or one window of a stream.
pub struct Output {
    /// How the API names it: the `--data` directory, plus `/window=…` for a window.
    pub id: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Whether it is a window of a stream (else a bounded run).
    pub is_window: bool,
    /// Its report (`_anomaly_report.json`, or the reference layout's name).
    pub report: Value,
    /// The event time it covers, from the report.
    pub period: Option<Period>,
    /// When it was committed (`_SUCCESS`'s modification time).
    written: SystemTime,
    /// Its rows, read on first use.
    table: OnceLock<Result<Arc<Table>, String>>,
}

/// An output's rows: both partitions, with `is_anomaly` as a column.
pub struct Table {
    /// The schema of every batch: the Parquet columns, then `is_anomaly`.
    pub schema: Arc<Schema>,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// The flagged rows (`is_anomaly` or `is_alert`) as JSON objects, highest score first:
    /// what `/api/anomalies` answers from, built once.
    pub flagged: Vec<serde_json::Map<String, Value>>,
    /// Every row's `anomaly_score`.
    pub scores: Vec<f64>,
}

impl Output {
    /// Reads the output in `dir` (committed: it has `_SUCCESS`).
    fn open(id: String, dir: &Path, is_window: bool, written: SystemTime) -> Result<Output> {
        let report_path = [Layout::Dataset, Layout::Reference]
            .iter()
            .map(|l| dir.join(l.report_file()))
            .find(|p| p.is_file())
            .with_context(|| format!("{} has no report", dir.display()))?;
        let report: Value = serde_json::from_slice(&std::fs::read(&report_path)?).with_context(|| format!("reading {}", report_path.display()))?;
        let period = serde_json::from_value(report["period"].clone()).ok();
        Ok(Output { id, dir: dir.to_path_buf(), is_window, report, period, written, table: OnceLock::new() })
    }

    /// When it was committed, epoch ms.
    pub fn written_ms(&self) -> i64 {
        self.written.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }

    /// Whether its period overlaps `[from, to)` (an output without a period always does).
    pub fn overlaps(&self, from: Option<i64>, to: Option<i64>) -> bool {
        match self.period {
            None => true,
            Some(p) => from.is_none_or(|f| p.end > f) && to.is_none_or(|t| p.start < t),
        }
    }

    /// Its rows (read once).
    pub fn table(&self) -> Result<Arc<Table>> {
        self.table.get_or_init(|| read_table(&self.dir).map(Arc::new).map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
    }
}

/// Both partitions of the output in `dir`, with `is_anomaly` appended.
fn read_table(dir: &Path) -> Result<Table> {
    let mut schema: Option<Arc<Schema>> = None;
    let mut batches = Vec::new();
    for (part, flag) in PARTITIONS {
        let Ok(entries) = std::fs::read_dir(dir.join(part)) else { continue };
        let mut files: Vec<PathBuf> =
            entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "parquet")).collect();
        files.sort();
        for file in files {
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file)?)
                .with_context(|| format!("reading {}", file.display()))?
                .build()?;
            for batch in reader {
                let batch = batch.with_context(|| format!("reading {}", file.display()))?;
                let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
                fields.push(Arc::new(Field::new("is_anomaly", DataType::Boolean, false)));
                let with = Arc::new(Schema::new(fields));
                match &schema {
                    None => schema = Some(with.clone()),
                    Some(s) if s.fields() != with.fields() => bail!("{} has another schema than the rest of {}", file.display(), dir.display()),
                    Some(_) => {}
                }
                let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
                columns.push(Arc::new(BooleanArray::from(vec![flag; batch.num_rows()])));
                batches.push(RecordBatch::try_new(with, columns)?);
            }
        }
    }
    let schema = schema.with_context(|| format!("{} has no Parquet rows", dir.display()))?;
    let mut flagged = Vec::new();
    let mut scores = Vec::new();
    for batch in &batches {
        flagged.extend(crate::rows::select(batch, |r| crate::rows::flag(batch, "is_anomaly", r) || crate::rows::flag(batch, "is_alert", r))?);
        if let Some(s) = batch.column_by_name("anomaly_score").and_then(|c| c.as_primitive_opt::<arrow::datatypes::Float64Type>()) {
            scores.extend(s.values().iter().copied());
        }
    }
    let score = |m: &serde_json::Map<String, Value>| m.get("anomaly_score").and_then(Value::as_f64).unwrap_or(f64::MIN);
    flagged.sort_by(|a, b| score(b).total_cmp(&score(a)));
    Ok(Table { schema, batches, flagged, scores })
}

/// The outputs under the `--data` directories.
pub struct Catalog {
    roots: Vec<PathBuf>,
    scan: Mutex<Scan>,
}

#[derive(Default)]
struct Scan {
    at: Option<Instant>,
    /// Newest first.
    outputs: Vec<Arc<Output>>,
}

impl Catalog {
    /// A catalog of `roots`, each a bounded run's output or a stream's output directory.
    pub fn new(roots: Vec<PathBuf>) -> Result<Catalog> {
        for root in &roots {
            if !root.is_dir() {
                bail!("--data {}: not a directory", root.display());
            }
        }
        Ok(Catalog { roots, scan: Mutex::new(Scan::default()) })
    }

    /// Every committed output, newest first (by period, then by commit time).
    pub fn outputs(&self) -> Vec<Arc<Output>> {
        let mut scan = self.scan.lock().expect("not poisoned");
        if scan.at.is_none_or(|at| at.elapsed() >= RESCAN) {
            let found = self.rescan(&scan.outputs);
            *scan = Scan { at: Some(Instant::now()), outputs: found };
        }
        scan.outputs.clone()
    }

    /// Lists the roots again, keeping what is unchanged.
    fn rescan(&self, previous: &[Arc<Output>]) -> Vec<Arc<Output>> {
        let mut candidates: Vec<(String, PathBuf, bool)> = Vec::new();
        for root in &self.roots {
            let name = root.display().to_string();
            candidates.push((name.clone(), root.clone(), false));
            let Ok(entries) = std::fs::read_dir(root) else { continue };
            for e in entries.filter_map(|e| e.ok()) {
                let file = e.file_name().to_string_lossy().into_owned();
                if file.starts_with("window=") {
                    candidates.push((format!("{name}/{file}"), e.path(), true));
                }
            }
        }
        let known: HashMap<&Path, &Arc<Output>> = previous.iter().map(|o| (o.dir.as_path(), o)).collect();
        let mut outputs: Vec<Arc<Output>> = Vec::new();
        for (id, dir, is_window) in candidates {
            let Ok(written) = std::fs::metadata(dir.join(SUCCESS_FILE)).and_then(|m| m.modified()) else { continue };
            if let Some(same) = known.get(dir.as_path()).filter(|o| o.written == written) {
                outputs.push(Arc::clone(same));
                continue;
            }
            match Output::open(id, &dir, is_window, written) {
                Ok(o) => outputs.push(Arc::new(o)),
                Err(e) => tracing::warn!("serve: skipping {}: {e:#}", dir.display()),
            }
        }
        outputs.sort_by(|a, b| {
            let start = |o: &Output| o.period.map_or(i64::MIN, |p| p.start);
            start(b).cmp(&start(a)).then(b.written.cmp(&a.written)).then(a.id.cmp(&b.id))
        });
        outputs
    }
}
