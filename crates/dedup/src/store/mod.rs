//! Where dedup points live: the embedded Qdrant shard ([`EdgeStore`], the default) or a Qdrant
//! server ([`QdrantServer`]), behind one [`PointStore`] trait.

mod edge;
mod server;

pub use edge::EdgeStore;
pub use server::QdrantServer;

use std::collections::{HashMap, HashSet};

use anyhow::{Result, bail};
use serde_json::{Map, Value};

/// The reference collection name.
pub const DEFAULT_COLLECTION: &str = "logs_embeddings";
/// Ids per existence lookup, as the reference job chunked them.
pub const LOOKUP_CHUNK: usize = 1000;

/// One point to store.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Stable id (see `dedup::point_id`).
    pub id: u64,
    /// Unit vector.
    pub vector: Vec<f32>,
    /// Payload object.
    pub payload: Map<String, Value>,
}

/// A stored point as a search or a listing returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// Its id.
    pub id: u64,
    /// Cosine similarity to the query (searches only).
    pub similarity: Option<f32>,
    /// Its payload.
    pub payload: Map<String, Value>,
}

/// A payload scalar a filter compares with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterValue {
    /// A string field.
    Text(String),
    /// An integer field (`label`, …).
    Integer(i64),
    /// A boolean field.
    Bool(bool),
}

/// Payload conditions a point must all meet: `field == value`. Empty: every point.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayloadFilter(pub Vec<(String, FilterValue)>);

impl PayloadFilter {
    /// Parses `field=value` conditions; a value that reads as an integer or `true`/`false` is
    /// compared as one (`label=1`), anything else as text.
    pub fn parse<S: AsRef<str>>(conditions: &[S]) -> Result<PayloadFilter> {
        let mut filter = PayloadFilter::default();
        for c in conditions {
            let c = c.as_ref();
            let Some((field, value)) = c.split_once('=') else { bail!("{c:?}: a filter is FIELD=VALUE") };
            let value = match value {
                "true" => FilterValue::Bool(true),
                "false" => FilterValue::Bool(false),
                v => v.parse().map_or_else(|_| FilterValue::Text(v.to_string()), FilterValue::Integer),
            };
            filter.and(field, value)?;
        }
        Ok(filter)
    }

    /// Adds the condition `field == value`; a field is letters, digits and `_`.
    pub fn and(&mut self, field: &str, value: FilterValue) -> Result<()> {
        if field.is_empty() || !field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            bail!("{field:?}: a filter field is letters, digits and '_'");
        }
        self.0.push((field.to_string(), value));
        Ok(())
    }

    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A collection of points with cosine vectors.
pub trait PointStore: Send {
    /// Where it is, for summaries.
    fn describe(&self) -> String;

    /// The ids among `ids` that are already stored (an absent collection holds none).
    fn existing(&mut self, ids: &[u64]) -> Result<HashSet<u64>>;

    /// The stored vectors of those of `ids` that are stored.
    fn vectors(&mut self, ids: &[u64]) -> Result<HashMap<u64, Vec<f32>>>;

    /// Stores `points`, creating the collection (cosine, size of the
    /// vectors) if it is missing; a collection of another size is refused.
    fn upsert(&mut self, points: Vec<Point>) -> Result<()>;

    /// Makes every upsert so far durable (called before a source position is acknowledged).
    fn sync(&mut self) -> Result<()>;

    /// Points stored that meet `filter`.
    fn count(&mut self, filter: &PayloadFilter) -> Result<u64>;

    /// The `k` points most similar to `vector` (cosine) that meet `filter`, most similar first.
    fn nearest(&mut self, vector: &[f32], k: usize, filter: &PayloadFilter) -> Result<Vec<Found>>;

    /// Up to `limit` points meeting `filter` in id order, from id `from` on; and the id the
    /// next page starts at, if any.
    fn scroll(&mut self, filter: &PayloadFilter, from: Option<u64>, limit: usize) -> Result<(Vec<Found>, Option<u64>)>;

    /// Deletes the points meeting `filter` (durably); returns how many there were.
    fn delete(&mut self, filter: &PayloadFilter) -> Result<u64>;

    /// Builds the search index over what is stored, so searches stop scanning every point (a
    /// Qdrant server's optimizers do this themselves).
    fn build_index(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Checks that `name` is safe as a directory name and a Qdrant collection: 1–64 ASCII letters,
/// digits, `_` or `-`, not starting with `-`.
pub fn check_collection(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(format!("{name:?}: a collection is 1-64 letters, digits, '_' or '-' (not first)")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_typed_values_and_refuse_odd_fields() {
        let f = PayloadFilter::parse(&["label=1", "log_level=WARN", "seen=false"]).unwrap();
        assert_eq!(
            f.0,
            vec![
                ("label".into(), FilterValue::Integer(1)),
                ("log_level".into(), FilterValue::Text("WARN".into())),
                ("seen".into(), FilterValue::Bool(false)),
            ]
        );
        assert!(PayloadFilter::parse(&["label"]).is_err());
        assert!(PayloadFilter::parse(&["a.b=1"]).is_err());
        assert!(PayloadFilter::parse(&["=1"]).is_err());
    }
}
