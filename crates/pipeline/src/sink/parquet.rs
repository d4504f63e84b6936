//! Parquet (snappy) writing with lineage in the key-value metadata.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use sg_features_core::columns::{ColumnData, ColumnRole, ColumnType, OwnedDict};

use sg_model::Position;

use super::{Explained, ScoredTable};

fn strings(d: &OwnedDict) -> Result<ArrayRef> {
    let mut values = Vec::with_capacity(d.codes.len());
    for i in 0..d.codes.len() {
        values.push(match d.get(i) {
            None => None,
            Some(b) => Some(std::str::from_utf8(b).context("a key is not valid UTF-8")?),
        });
    }
    Ok(Arc::new(StringArray::from(values)))
}

fn arrow_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::TimestampMs => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        ColumnType::Utf8 => DataType::Utf8,
    }
}

/// The written columns: every non-internal feature column, then the two scores.
fn record_batch(scored: &ScoredTable<'_>) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (spec, data) in scored.descriptor.columns.iter().zip(&scored.table.columns) {
        if spec.role == ColumnRole::Internal {
            continue;
        }
        let array: ArrayRef = match data {
            ColumnData::Int64(v) => Arc::new(Int64Array::from(v.clone())),
            ColumnData::Float64(v) => Arc::new(Float64Array::from(v.clone())),
            ColumnData::TimestampMs(v) => Arc::new(TimestampMillisecondArray::from(v.clone()).with_timezone("UTC")),
            ColumnData::Utf8(d) => strings(d)?,
        };
        fields.push(Field::new(&spec.name, arrow_type(spec.ty), spec.ty == ColumnType::Utf8));
        arrays.push(array);
    }
    let explanation = explanation_array(&scored.explanation);
    let added: [(&str, ArrayRef); 4] = [
        ("anomaly_score", Arc::new(Float64Array::from(scored.anomaly_score.clone()))),
        ("anomaly_score_normalized", Arc::new(Float64Array::from(scored.anomaly_score_normalized.clone()))),
        ("is_alert", Arc::new(BooleanArray::from(scored.is_alert.clone()))),
        ("explanation", Arc::new(explanation)),
    ];
    for (name, array) in added {
        if fields.iter().any(|f| f.name() == name) {
            bail!("the component's schema already has a column named {name}");
        }
        fields.push(Field::new(name, array.data_type().clone(), false));
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// The fields of one explanation entry.
fn explanation_fields() -> Fields {
    Fields::from(vec![
        Field::new("feature", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
        Field::new("typical", DataType::Float64, true),
        Field::new("contribution", DataType::Float64, false),
    ])
}

/// `list<struct<feature: utf8, value: float64, typical: float64, contribution: float64>>`.
fn explanation_array(rows: &[Vec<Explained>]) -> ListArray {
    let entries = rows.iter().flatten();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(entries.clone().map(|e| &*e.feature))),
        Arc::new(Float64Array::from_iter_values(entries.clone().map(|e| e.value))),
        Arc::new(Float64Array::from_iter(entries.clone().map(|e| e.typical))),
        Arc::new(Float64Array::from_iter_values(entries.map(|e| e.contribution))),
    ];
    let fields = explanation_fields();
    let values = StructArray::new(fields.clone(), columns, None);
    let item = Arc::new(Field::new("item", DataType::Struct(fields), false));
    ListArray::new(item, OffsetBuffer::from_lengths(rows.iter().map(Vec::len)), Arc::new(values), None)
}

/// Writes one Parquet file (snappy) with `metadata` as key-value metadata.
pub fn write_table(path: &Path, batch: &RecordBatch, metadata: &[(String, String)]) -> Result<()> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(metadata.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect()))
        .build();
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(())
}

/// The ledger of an output directory: which input records it aggregates (dataset readers skip
/// `_` files, so it is not part of the scored table).
pub const LEDGER_FILE: &str = "_ledger.parquet";

/// Writes a ledger: one row per event, `partition` (int32, null for files) and `offset` (int64:
/// the Kafka offset, or the 1-based line of a file), in input order per partition.
pub fn write_ledger(path: &Path, positions: &[Position]) -> Result<()> {
    let mut sorted: Vec<(Option<i32>, i64)> = positions
        .iter()
        .map(|p| match *p {
            Position::Kafka { partition, offset } => (Some(partition), offset),
            Position::Line(l) => (None, l as i64),
        })
        .collect();
    sorted.sort_unstable();
    let schema = Arc::new(Schema::new(vec![Field::new("partition", DataType::Int32, true), Field::new("offset", DataType::Int64, false)]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(sorted.iter().map(|r| r.0).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(sorted.iter().map(|r| r.1).collect::<Vec<_>>())),
    ];
    write_table(path, &RecordBatch::try_new(schema, columns)?, &[])
}

/// Writes `dir/is_anomaly=0/` and `dir/is_anomaly=1/` (each one file, possibly zero rows).
pub fn write_partitioned(dir: &Path, scored: &ScoredTable<'_>, metadata: &[(String, String)]) -> Result<Vec<PathBuf>> {
    let batch = record_batch(scored)?;
    let flags = BooleanArray::from(scored.is_anomaly.clone());
    let not_flags = arrow::compute::not(&flags)?;
    let mut files = Vec::new();
    for (value, mask) in [(0, &not_flags), (1, &flags)] {
        let part = dir.join(format!("is_anomaly={value}"));
        std::fs::create_dir_all(&part)?;
        let path = part.join("part-00000.snappy.parquet");
        write_table(&path, &arrow::compute::filter_record_batch(&batch, mask)?, metadata)?;
        files.push(path);
    }
    Ok(files)
}
