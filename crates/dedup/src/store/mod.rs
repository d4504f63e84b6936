//! Where dedup points live: the embedded Qdrant shard ([`EdgeStore`], the default) or a Qdrant
//! server ([`QdrantServer`]), behind one [`PointStore`] trait.

mod edge;
mod server;

pub use edge::EdgeStore;
pub use server::QdrantServer;

use std::collections::HashSet;

use anyhow::Result;

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
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// A collection of points with cosine vectors.
pub trait PointStore {
    /// Where it is, for summaries.
    fn describe(&self) -> String;

    /// The ids among `ids` that are already stored (an absent collection holds none).
    fn existing(&mut self, ids: &[u64]) -> Result<HashSet<u64>>;

    /// Stores `points`, creating the collection (cosine, size of the
    /// vectors) if it is missing; a collection of another size is refused.
    fn upsert(&mut self, points: Vec<Point>) -> Result<()>;

    /// Makes every upsert so far durable (called before a source position is acknowledged).
    fn sync(&mut self) -> Result<()>;

    /// Points stored.
    fn count(&mut self) -> Result<u64>;
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
