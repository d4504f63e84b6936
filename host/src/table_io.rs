//! Reading feature tables (CSV or Parquet) for `sg-host detect`, and writing score tables.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray, Float64Array, Int8Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type, Schema};

/// A numeric feature table: row-major f32 values and column names.
pub struct NumericTable {
    /// Column names, in order.
    pub names: Vec<String>,
    /// `rows × names.len()` values, row-major.
    pub values: Vec<f32>,
    /// Number of rows.
    pub rows: usize,
}

fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

fn read_batches(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if is_parquet(path) {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
        Ok(reader.collect::<Result<Vec<_>, _>>()?)
    } else {
        let format = arrow::csv::reader::Format::default().with_header(true);
        let (schema, _) = format.infer_schema(&file, Some(10_000))?;
        let file = File::open(path)?;
        let reader = arrow::csv::ReaderBuilder::new(Arc::new(schema)).with_format(format).build(file)?;
        Ok(reader.collect::<Result<Vec<_>, _>>()?)
    }
}

/// Reads every column not in `ignore` as f32 (integers, floats, booleans); other types fail
/// with a message naming the column.
pub fn read_numeric(path: &Path, ignore: &[String]) -> Result<NumericTable> {
    let batches = read_batches(path)?;
    let Some(first) = batches.first() else { bail!("{} has no rows", path.display()) };
    let schema = first.schema();
    for name in ignore {
        if schema.index_of(name).is_err() {
            bail!("--ignore {name}: no such column in {}", path.display());
        }
    }
    let keep: Vec<usize> = (0..schema.fields().len()).filter(|&i| !ignore.contains(schema.field(i).name())).collect();
    let names: Vec<String> = keep.iter().map(|&i| schema.field(i).name().clone()).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut values = vec![0f32; rows * keep.len()];
    let mut offset = 0;
    for batch in &batches {
        for (j, &c) in keep.iter().enumerate() {
            let col = batch.column(c);
            if !col.data_type().is_numeric() && col.data_type() != &DataType::Boolean {
                bail!("column {:?} is {}, not numeric (use --ignore {0})", names[j], col.data_type());
            }
            let as_f32 = arrow::compute::cast(col, &DataType::Float32)?;
            let arr = as_f32.as_primitive::<Float32Type>();
            for r in 0..arr.len() {
                values[(offset + r) * keep.len() + j] = if arr.is_null(r) { f32::NAN } else { arr.value(r) };
            }
        }
        offset += batch.num_rows();
    }
    Ok(NumericTable { names, values, rows })
}

/// Writes `score_samples, anomaly_score, is_anomaly` per row, as CSV or Parquet by extension.
pub fn write_scores(path: &Path, score_samples: &[f64], offset: f64) -> Result<()> {
    let outlier: Vec<i8> = score_samples.iter().map(|&s| i8::from(s - offset < 0.0)).collect();
    if is_parquet(path) {
        let schema = Schema::new(vec![
            Field::new("score_samples", DataType::Float64, false),
            Field::new("anomaly_score", DataType::Float64, false),
            Field::new("is_anomaly", DataType::Int8, false),
        ]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![
            Arc::new(Float64Array::from(score_samples.to_vec())),
            Arc::new(Float64Array::from(score_samples.iter().map(|s| -s).collect::<Vec<_>>())),
            Arc::new(Int8Array::from(outlier)),
        ])?;
        sg_pipeline::sink::write_table(path, &batch, &[("streamguard.detector.offset".into(), offset.to_string())])
    } else {
        let mut out = BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?);
        writeln!(out, "score_samples,anomaly_score,is_anomaly")?;
        for (s, o) in score_samples.iter().zip(outlier) {
            writeln!(out, "{s},{},{o}", -s)?;
        }
        out.flush()?;
        Ok(())
    }
}
