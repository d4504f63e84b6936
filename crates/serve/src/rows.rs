//! Rows of an output as JSON: selecting from Arrow batches by a predicate.

use anyhow::Result;
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringArray};
use serde_json::{Map, Value};

/// The rows of `batch` for which `keep` holds, as JSON objects.
pub fn select(batch: &RecordBatch, keep: impl Fn(usize) -> bool) -> Result<Vec<Map<String, Value>>> {
    let mask = BooleanArray::from((0..batch.num_rows()).map(&keep).collect::<Vec<bool>>());
    let picked = arrow::compute::filter_record_batch(batch, &mask)?;
    if picked.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer.write(&picked)?;
    writer.finish()?;
    Ok(serde_json::from_slice(&writer.into_inner())?)
}

/// A batch's `user` column, when it has one.
pub fn users(batch: &RecordBatch) -> Option<&StringArray> {
    batch.column_by_name("user").and_then(|c| c.as_string_opt::<i32>())
}

/// A batch's boolean column `name` at row `r` (false when absent).
pub fn flag(batch: &RecordBatch, name: &str, r: usize) -> bool {
    batch.column_by_name(name).and_then(|c| c.as_boolean_opt()).is_some_and(|c| c.is_valid(r) && c.value(r))
}
