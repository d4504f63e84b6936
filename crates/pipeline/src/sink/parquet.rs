//! Parquet (snappy) writing with lineage in the key-value metadata.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Float64Builder, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    StringBuilder, StructArray, TimestampMillisecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::compute_leaves;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;
use sg_features_core::columns::{ColumnData, ColumnRole, ColumnType, OwnedDict};
use sg_model::Position;

use super::{Explained, ScoredTable};

/// Rows `rows` of a dictionary column, as strings.
fn strings(d: &OwnedDict, rows: &[usize]) -> Result<ArrayRef> {
    let mut values = Vec::with_capacity(rows.len());
    for &i in rows {
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

/// The written columns of `rows` (indices into the table, in order): every non-internal feature
/// column, then the scores, the alert flag and the explanation.
fn record_batch(scored: &ScoredTable<'_>, rows: &[usize]) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let pick = |v: &[f64]| Float64Array::from_iter_values(rows.iter().map(|&r| v[r]));
    for (spec, data) in scored.descriptor.columns.iter().zip(&scored.table.columns) {
        if spec.role == ColumnRole::Internal {
            continue;
        }
        let array: ArrayRef = match data {
            ColumnData::Int64(v) => Arc::new(Int64Array::from_iter_values(rows.iter().map(|&r| v[r]))),
            ColumnData::Float64(v) => Arc::new(pick(v)),
            ColumnData::TimestampMs(v) => {
                Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|&r| v[r])).with_timezone("UTC"))
            }
            ColumnData::Utf8(d) => strings(d, rows)?,
        };
        fields.push(Field::new(&spec.name, arrow_type(spec.ty), spec.ty == ColumnType::Utf8));
        arrays.push(array);
    }
    let added: [(&str, ArrayRef); 4] = [
        ("anomaly_score", Arc::new(pick(&scored.anomaly_score))),
        ("anomaly_score_normalized", Arc::new(pick(&scored.anomaly_score_normalized))),
        ("is_alert", Arc::new(rows.iter().map(|&r| Some(scored.is_alert[r])).collect::<BooleanArray>())),
        ("explanation", Arc::new(explanation_array(rows.iter().map(|&r| scored.explanation[r].as_slice())))),
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

/// `list<struct<feature: utf8, value: float64, typical: float64, contribution: float64>>`, built
/// in one pass over the rows' entries.
fn explanation_array<'e>(rows: impl Iterator<Item = &'e [Explained]>) -> ListArray {
    let (mut lengths, mut feature, mut value, mut typical, mut contribution) =
        (Vec::new(), StringBuilder::new(), Vec::new(), Float64Builder::new(), Vec::new());
    for row in rows {
        lengths.push(row.len());
        for e in row {
            feature.append_value(&*e.feature);
            value.push(e.value);
            typical.append_option(e.typical);
            contribution.push(e.contribution);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(feature.finish()),
        Arc::new(Float64Array::from(value)),
        Arc::new(typical.finish()),
        Arc::new(Float64Array::from(contribution)),
    ];
    let fields = explanation_fields();
    let values = StructArray::new(fields.clone(), columns, None);
    let item = Arc::new(Field::new("item", DataType::Struct(fields), false));
    ListArray::new(item, OffsetBuffer::from_lengths(lengths), Arc::new(values), None)
}

/// Writes one Parquet file (snappy) with `metadata` as key-value metadata. The columns of each
/// row group are encoded in parallel, then appended in schema order.
pub fn write_table(path: &Path, batch: &RecordBatch, metadata: &[(String, String)]) -> Result<()> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(metadata.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect()))
        .build();
    let group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let schema = batch.schema();
    let (mut writer, columns) = ArrowWriter::try_new(file, schema.clone(), Some(props))?.into_serialized_writer()?;
    for (index, start) in (0..batch.num_rows()).step_by(group_rows).enumerate() {
        let group = batch.slice(start, group_rows.min(batch.num_rows() - start));
        let mut leaves = Vec::new();
        for (field, array) in schema.fields().iter().zip(group.columns()) {
            leaves.extend(compute_leaves(field, array)?);
        }
        let chunks = columns
            .create_column_writers(index)?
            .into_par_iter()
            .zip(leaves)
            .map(|(mut column, leaf)| {
                column.write(&leaf)?;
                column.close()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut row_group = writer.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
    }
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

/// Writes `dir/is_anomaly=0/` and `dir/is_anomaly=1/` (each one file, possibly zero rows), the
/// two in parallel.
pub fn write_partitioned(dir: &Path, scored: &ScoredTable<'_>, metadata: &[(String, String)]) -> Result<Vec<PathBuf>> {
    let (flagged, normal): (Vec<usize>, Vec<usize>) = (0..scored.table.rows).partition(|&r| scored.is_anomaly[r]);
    let write = |value: u8, rows: &[usize]| -> Result<PathBuf> {
        let part = dir.join(format!("is_anomaly={value}"));
        std::fs::create_dir_all(&part)?;
        let path = part.join("part-00000.snappy.parquet");
        write_table(&path, &record_batch(scored, rows)?, metadata)?;
        Ok(path)
    };
    let (normal, flagged) = rayon::join(|| write(0, &normal), || write(1, &flagged));
    Ok(vec![normal?, flagged?])
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::DEFAULT_MAX_ROW_GROUP_ROW_COUNT;

    use super::*;

    /// A table longer than a row group is written as several, encoded column by column in
    /// parallel: every row comes back in its place, with the metadata.
    #[test]
    fn tables_longer_than_a_row_group_keep_every_row_in_order() {
        let rows = DEFAULT_MAX_ROW_GROUP_ROW_COUNT * 2 + 3;
        let n: Vec<i64> = (0..rows as i64).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false), Field::new("half", DataType::Float64, false)]));
        let columns: Vec<ArrayRef> =
            vec![Arc::new(Int64Array::from(n.clone())), Arc::new(Float64Array::from_iter_values(n.iter().map(|&v| v as f64 / 2.0)))];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.parquet");
        write_table(&path, &RecordBatch::try_new(schema, columns).unwrap(), &[("lineage".into(), "test".into())]).unwrap();

        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let meta = reader.metadata().clone();
        assert_eq!(meta.num_row_groups(), 3);
        let kv = meta.file_metadata().key_value_metadata().unwrap();
        assert!(kv.iter().any(|e| e.key == "lineage" && e.value.as_deref() == Some("test")));
        let (mut read_n, mut read_half) = (Vec::new(), Vec::new());
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            read_n.extend_from_slice(batch.column(0).as_primitive::<Int64Type>().values());
            read_half.extend_from_slice(batch.column(1).as_primitive::<arrow::datatypes::Float64Type>().values());
        }
        assert_eq!(read_n, n);
        assert!(read_half.iter().zip(&n).all(|(&h, &v)| h == v as f64 / 2.0));
    }
}
