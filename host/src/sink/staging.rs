//! Atomic output directories: everything is written beside the target, then swapped in.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A directory being written beside its final place. Dropped without [`commit`](Self::commit)
/// it is removed, so a failed or interrupted run leaves the previous output untouched.
pub struct StagedDir {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
}

fn sibling(target: &Path, tag: &str) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    target.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

fn sync_dir(path: &Path) -> Result<()> {
    fs::File::open(path)?.sync_all()?;
    Ok(())
}

impl StagedDir {
    /// Starts a staging directory for `target` (created beside it, same filesystem).
    pub fn new(target: &Path) -> Result<StagedDir> {
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let staging = sibling(target, "staging");
        if staging.exists() {
            fs::remove_dir_all(&staging)?;
        }
        fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
        Ok(StagedDir { target: target.to_path_buf(), staging, committed: false })
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Syncs and puts the staged directory in place of the target (replacing any previous one).
    pub fn commit(mut self) -> Result<PathBuf> {
        sync_tree(&self.staging)?;
        let old = sibling(&self.target, "replaced");
        let had_old = self.target.exists();
        if had_old {
            if old.exists() {
                fs::remove_dir_all(&old)?;
            }
            fs::rename(&self.target, &old).with_context(|| format!("moving aside {}", self.target.display()))?;
        }
        fs::rename(&self.staging, &self.target).with_context(|| format!("renaming into {}", self.target.display()))?;
        self.committed = true;
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        if had_old {
            fs::remove_dir_all(&old)?;
        }
        Ok(self.target.clone())
    }
}

fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        } else {
            fs::File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}
