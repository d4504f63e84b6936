//! A Qdrant server through `qdrant-client` (gRPC): the same collection layout as the embedded
//! store, for users who run Qdrant. (No Qdrant server installs here, so this path is built but
//! not exercised by the tests; the embedded store is.)

use std::collections::{HashMap, HashSet};

use anyhow::{Result, anyhow};
use qdrant_client::Qdrant;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vector_output::Vector;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, DeletePointsBuilder, Distance, Filter, GetPointsBuilder,
    PointId, PointStruct, QueryPointsBuilder, ScrollPointsBuilder, UpsertPointsBuilder, Value, VectorParamsBuilder,
};
use serde_json::Map;

use super::{FilterValue, Found, LOOKUP_CHUNK, PayloadFilter, Point, PointStore};

/// A collection on a Qdrant server.
pub struct QdrantServer {
    client: Qdrant,
    runtime: tokio::runtime::Runtime,
    url: String,
    collection: String,
    exists: bool,
}

impl QdrantServer {
    /// Connects to `url` (gRPC, e.g. `http://127.0.0.1:6334`); `QDRANT_API_KEY` is used if set.
    pub fn connect(url: &str, collection: &str) -> Result<QdrantServer> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let client = Qdrant::from_url(url).api_key(std::env::var("QDRANT_API_KEY").ok()).build()?;
        let exists = runtime
            .block_on(client.collection_exists(collection))
            .map_err(|e| anyhow!("Qdrant at {url}: {e}"))?;
        Ok(QdrantServer { client, runtime, url: url.to_string(), collection: collection.to_string(), exists })
    }
}

/// Qdrant's filter for `filter` (none when it is empty).
fn qdrant_filter(filter: &PayloadFilter) -> Option<Filter> {
    (!filter.is_empty()).then(|| {
        Filter::must(filter.0.iter().map(|(field, value)| match value {
            FilterValue::Text(s) => Condition::matches(field.as_str(), s.clone()),
            FilterValue::Integer(i) => Condition::matches(field.as_str(), *i),
            FilterValue::Bool(b) => Condition::matches(field.as_str(), *b),
        }))
    })
}

fn num_id(id: Option<PointId>) -> Option<u64> {
    match id?.point_id_options? {
        PointIdOptions::Num(n) => Some(n),
        PointIdOptions::Uuid(_) => None,
    }
}

fn payload_of(p: HashMap<String, Value>) -> Map<String, serde_json::Value> {
    p.into_iter().map(|(k, v)| (k, v.into_json())).collect()
}

impl PointStore for QdrantServer {
    fn describe(&self) -> String {
        format!("Qdrant {} collection {}", self.url, self.collection)
    }

    fn existing(&mut self, ids: &[u64]) -> Result<HashSet<u64>> {
        Ok(self.vectors_or_ids(ids, false)?.into_keys().collect())
    }

    fn vectors(&mut self, ids: &[u64]) -> Result<HashMap<u64, Vec<f32>>> {
        self.vectors_or_ids(ids, true)
    }

    fn upsert(&mut self, points: Vec<Point>) -> Result<()> {
        let Some(dim) = points.first().map(|p| p.vector.len()) else { return Ok(()) };
        if !self.exists {
            let create = CreateCollectionBuilder::new(&self.collection)
                .vectors_config(VectorParamsBuilder::new(dim as u64, Distance::Cosine));
            self.runtime.block_on(self.client.create_collection(create)).map_err(|e| anyhow!("Qdrant create collection: {e}"))?;
            self.exists = true;
        }
        let points: Vec<PointStruct> = points
            .into_iter()
            .map(|p| {
                let payload = qdrant_client::Payload::try_from(serde_json::Value::Object(p.payload))
                    .expect("an object is a payload");
                PointStruct::new(p.id, p.vector, payload)
            })
            .collect();
        // wait=true: the call returns once the points are applied.
        self.runtime
            .block_on(self.client.upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(true)))
            .map_err(|e| anyhow!("Qdrant upsert: {e}"))?;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        Ok(())
    }

    fn count(&mut self, filter: &PayloadFilter) -> Result<u64> {
        if !self.exists {
            return Ok(0);
        }
        let mut request = CountPointsBuilder::new(&self.collection).exact(true);
        if let Some(f) = qdrant_filter(filter) {
            request = request.filter(f);
        }
        let r = self.runtime.block_on(self.client.count(request)).map_err(|e| anyhow!("Qdrant count: {e}"))?;
        Ok(r.result.map_or(0, |c| c.count))
    }

    fn nearest(&mut self, vector: &[f32], k: usize, filter: &PayloadFilter) -> Result<Vec<Found>> {
        if !self.exists {
            return Ok(Vec::new());
        }
        let mut request = QueryPointsBuilder::new(&self.collection).query(vector.to_vec()).limit(k as u64).with_payload(true);
        if let Some(f) = qdrant_filter(filter) {
            request = request.filter(f);
        }
        let r = self.runtime.block_on(self.client.query(request)).map_err(|e| anyhow!("Qdrant query: {e}"))?;
        Ok(r.result
            .into_iter()
            .filter_map(|p| Some(Found { id: num_id(p.id)?, similarity: Some(p.score), payload: payload_of(p.payload) }))
            .collect())
    }

    fn scroll(&mut self, filter: &PayloadFilter, from: Option<u64>, limit: usize) -> Result<(Vec<Found>, Option<u64>)> {
        if !self.exists {
            return Ok((Vec::new(), None));
        }
        let mut request = ScrollPointsBuilder::new(&self.collection).limit(limit as u32).with_payload(true);
        if let Some(f) = qdrant_filter(filter) {
            request = request.filter(f);
        }
        if let Some(from) = from {
            request = request.offset(PointId::from(from));
        }
        let r = self.runtime.block_on(self.client.scroll(request)).map_err(|e| anyhow!("Qdrant scroll: {e}"))?;
        let found = r
            .result
            .into_iter()
            .filter_map(|p| Some(Found { id: num_id(p.id)?, similarity: None, payload: payload_of(p.payload) }))
            .collect();
        Ok((found, num_id(r.next_page_offset)))
    }

    fn delete(&mut self, filter: &PayloadFilter) -> Result<u64> {
        let n = self.count(filter)?;
        if n == 0 {
            return Ok(0);
        }
        let request = DeletePointsBuilder::new(&self.collection).points(qdrant_filter(filter).unwrap_or_default()).wait(true);
        self.runtime.block_on(self.client.delete_points(request)).map_err(|e| anyhow!("Qdrant delete: {e}"))?;
        Ok(n)
    }
}

impl QdrantServer {
    /// The stored ones of `ids`, with their vectors when `with_vectors`.
    fn vectors_or_ids(&mut self, ids: &[u64], with_vectors: bool) -> Result<HashMap<u64, Vec<f32>>> {
        let mut found = HashMap::new();
        if !self.exists {
            return Ok(found);
        }
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let request = GetPointsBuilder::new(&self.collection, chunk.iter().map(|&id| PointId::from(id)).collect::<Vec<_>>())
                .with_payload(false)
                .with_vectors(with_vectors);
            let response = self.runtime.block_on(self.client.get_points(request)).map_err(|e| anyhow!("Qdrant lookup: {e}"))?;
            for point in response.result {
                let vector = match point.vectors.and_then(|v| v.get_vector()) {
                    Some(Vector::Dense(d)) => d.data,
                    _ => Vec::new(),
                };
                if let Some(id) = num_id(point.id) {
                    found.insert(id, vector);
                }
            }
        }
        Ok(found)
    }
}
