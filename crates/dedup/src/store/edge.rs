//! The embedded store: an in-process Qdrant shard (`qdrant-edge`) in a local directory,
//! persistent through its write-ahead log; one shard directory per collection.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use qdrant_edge::{
    CountRequest, Distance, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder, Payload, PointId,
    PointInsertOperations, PointOperations, PointStructPersisted, RetrieveRequest, UpdateOperation,
    VectorStructPersisted, WithPayloadInterface, WithVector,
};

use super::{LOOKUP_CHUNK, Point, PointStore};

/// A collection in a local directory.
pub struct EdgeStore {
    dir: PathBuf,
    shard: Option<EdgeShard>,
}

impl EdgeStore {
    /// Opens `root/collection`, loading the shard if it exists (it is created on first upsert).
    pub fn open(root: &Path, collection: &str) -> Result<EdgeStore> {
        super::check_collection(collection).map_err(|e| anyhow!(e))?;
        let dir = root.join(collection);
        let shard = if dir.join("edge_config.json").exists() {
            Some(EdgeShard::load(&dir, None).map_err(|e| anyhow!("cannot load the store at {}: {e}", dir.display()))?)
        } else {
            None
        };
        Ok(EdgeStore { dir, shard })
    }

    /// The vector size of the stored collection, if it exists.
    pub fn dimension(&self) -> Option<usize> {
        self.shard.as_ref().and_then(|s| s.config().vectors.get("").map(|v| v.size))
    }

    fn shard_for(&mut self, dim: usize) -> Result<&EdgeShard> {
        if let Some(existing) = self.dimension()
            && existing != dim
        {
            bail!("the store at {} holds {existing}-d vectors; the embedder gives {dim}-d", self.dir.display());
        }
        if self.shard.is_none() {
            let config =
                EdgeConfigBuilder::new().vector("", EdgeVectorParamsBuilder::new(dim, Distance::Cosine).build()).build();
            std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
            self.shard = Some(
                EdgeShard::new(&self.dir, config)
                    .map_err(|e| anyhow!("cannot create the store at {}: {e}", self.dir.display()))?,
            );
        }
        Ok(self.shard.as_ref().expect("just made"))
    }
}

impl PointStore for EdgeStore {
    fn describe(&self) -> String {
        format!("embedded Qdrant shard {}", self.dir.display())
    }

    fn existing(&mut self, ids: &[u64]) -> Result<HashSet<u64>> {
        let Some(shard) = &self.shard else { return Ok(HashSet::new()) };
        let mut found = HashSet::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let request = RetrieveRequest {
                point_ids: chunk.iter().map(|&id| PointId::NumId(id)).collect(),
                with_payload: Some(WithPayloadInterface::Bool(false)),
                with_vector: Some(WithVector::Bool(false)),
            };
            for record in shard.retrieve(request).map_err(|e| anyhow!("store lookup: {e}"))? {
                if let PointId::NumId(id) = record.id {
                    found.insert(id);
                }
            }
        }
        Ok(found)
    }

    fn upsert(&mut self, points: Vec<Point>) -> Result<()> {
        let Some(dim) = points.first().map(|p| p.vector.len()) else { return Ok(()) };
        let shard = self.shard_for(dim)?;
        let points = points
            .into_iter()
            .map(|p| PointStructPersisted {
                id: PointId::NumId(p.id),
                vector: VectorStructPersisted::Single(p.vector),
                payload: Some(Payload(p.payload)),
            })
            .collect();
        shard
            .update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(
                PointInsertOperations::PointsList(points),
            )))
            .map_err(|e| anyhow!("store upsert: {e}"))?;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        match &self.shard {
            Some(shard) => shard.flush().map_err(|e| anyhow!("store flush: {e}")),
            None => Ok(()),
        }
    }

    fn count(&mut self) -> Result<u64> {
        let Some(shard) = &self.shard else { return Ok(0) };
        Ok(shard.count(CountRequest::new()).map_err(|e| anyhow!("store count: {e}"))? as u64)
    }
}
