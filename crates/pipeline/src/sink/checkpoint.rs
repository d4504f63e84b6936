//! The checkpoint of a streaming run: what its output directory already holds, written
//! atomically (temporary file, fsync, rename, directory fsync) after each window and before the
//! group's offsets move.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

/// File holding the checkpoint inside the output directory.
pub const CHECKPOINT_FILE: &str = "_checkpoint.json";

/// What the output directory already holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// End (exclusive, epoch ms) of the newest written window; earlier windows are closed.
    pub closed_until: Option<i64>,
    /// Per partition: every event below this offset is in a written window (or dead-lettered).
    pub covered: BTreeMap<i32, i64>,
}

impl Checkpoint {
    /// The checkpoint in `out`, or an empty one when there is none yet.
    pub fn read(out: &Path) -> Result<Checkpoint> {
        let path = out.join(CHECKPOINT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Replaces the checkpoint in `out`, durably.
    pub fn write(&self, out: &Path) -> Result<()> {
        super::durable::replace(&out.join(CHECKPOINT_FILE), &serde_json::to_vec(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_checkpoint_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), Checkpoint::default());
        let c = Checkpoint { closed_until: Some(7_200_000), covered: BTreeMap::from([(0, 12), (3, 4)]) };
        c.write(dir.path()).unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), c);
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"{not json").unwrap();
        assert!(Checkpoint::read(dir.path()).unwrap_err().to_string().contains(CHECKPOINT_FILE));
    }
}
