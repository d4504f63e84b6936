//! A Qdrant server through `qdrant-client` (gRPC): the same collection layout as the embedded
//! store, for users who run Qdrant.

use std::collections::HashSet;

use anyhow::{Result, anyhow};
use qdrant_client::Qdrant;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::{
    CountPointsBuilder, CreateCollectionBuilder, Distance, GetPointsBuilder, PointId, PointStruct,
    UpsertPointsBuilder, VectorParamsBuilder,
};

use super::{LOOKUP_CHUNK, Point, PointStore};

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

impl PointStore for QdrantServer {
    fn describe(&self) -> String {
        format!("Qdrant {} collection {}", self.url, self.collection)
    }

    fn existing(&mut self, ids: &[u64]) -> Result<HashSet<u64>> {
        if !self.exists {
            return Ok(HashSet::new());
        }
        let mut found = HashSet::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let request = GetPointsBuilder::new(&self.collection, chunk.iter().map(|&id| PointId::from(id)).collect::<Vec<_>>())
                .with_payload(false)
                .with_vectors(false);
            let response = self.runtime.block_on(self.client.get_points(request)).map_err(|e| anyhow!("Qdrant lookup: {e}"))?;
            for point in response.result {
                if let Some(PointIdOptions::Num(id)) = point.id.and_then(|id| id.point_id_options) {
                    found.insert(id);
                }
            }
        }
        Ok(found)
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

    fn count(&mut self) -> Result<u64> {
        if !self.exists {
            return Ok(0);
        }
        let r = self
            .runtime
            .block_on(self.client.count(CountPointsBuilder::new(&self.collection).exact(true)))
            .map_err(|e| anyhow!("Qdrant count: {e}"))?;
        Ok(r.result.map_or(0, |c| c.count))
    }
}
