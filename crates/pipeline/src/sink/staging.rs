//! Atomic output directories: everything is written beside the target, then swapped in. A
//! committed directory holds [`SUCCESS_FILE`]; a directory that holds neither it nor nothing is
//! not an sg-host output and is only replaced when the caller says so ([`Replace::Anything`]),
//! so `--out ~/data` cannot delete someone's data.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sg_core::signals::{RemovedOnExit, remove_on_exit};

/// The marker of a complete sg-host output directory (Spark's name for it).
pub const SUCCESS_FILE: &str = "_SUCCESS";

/// What an existing target may be for [`StagedDir::new`] to replace it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// Only an earlier sg-host output (it has [`SUCCESS_FILE`]) or an empty directory.
    OnlyOutput,
    /// Whatever is there (`--force`).
    Anything,
}

/// A directory being written beside its final place. Dropped without [`commit`](Self::commit)
/// it is removed, so a failed or interrupted run leaves the previous output untouched.
pub struct StagedDir {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
    /// Removed by a stop signal that ends a bounded run.
    on_exit: Option<RemovedOnExit>,
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
    /// Starts a staging directory for `target` (created beside it, same filesystem); refuses a
    /// target that `replace` does not allow.
    pub fn new(target: &Path, replace: Replace) -> Result<StagedDir> {
        if replace == Replace::OnlyOutput && !replaceable(target)? {
            bail!(
                "{} exists and is not an sg-host output (no {SUCCESS_FILE}): refusing to replace it (--force replaces it anyway)",
                target.display()
            );
        }
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let staging = sibling(target, "staging");
        if staging.exists() {
            fs::remove_dir_all(&staging)?;
        }
        let on_exit = Some(remove_on_exit(staging.clone()));
        fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
        Ok(StagedDir { target: target.to_path_buf(), staging, committed: false, on_exit })
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Marks the staged directory complete ([`SUCCESS_FILE`]), syncs it and puts it in place of
    /// the target (replacing any previous one).
    pub fn commit(mut self) -> Result<PathBuf> {
        fs::write(self.staging.join(SUCCESS_FILE), b"")?;
        sync_tree(&self.staging)?;
        let old = sibling(&self.target, "replaced");
        let had_old = self.target.exists();
        if had_old {
            if old.exists() {
                fs::remove_dir_all(&old)?;
            }
            fs::rename(&self.target, &old).with_context(|| format!("moving aside {}", self.target.display()))?;
        }
        let (staging, target) = (self.staging.clone(), self.target.clone());
        let rename = || fs::rename(&staging, &target).with_context(|| format!("renaming into {}", target.display()));
        match self.on_exit.take() {
            Some(registered) => registered.release_with(rename)?,
            None => rename()?,
        }
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

/// Whether `target` is absent, an empty directory, or an sg-host output.
fn replaceable(target: &Path) -> Result<bool> {
    match fs::read_dir(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(_) => Ok(false),
        Ok(mut entries) => Ok(entries.next().is_none() || target.join(SUCCESS_FILE).is_file()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_earlier_output_or_an_empty_directory_is_replaced() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let first = StagedDir::new(&out, Replace::OnlyOutput).unwrap();
        fs::write(first.path().join("data"), b"1").unwrap();
        first.commit().unwrap();
        assert!(out.join(SUCCESS_FILE).is_file());
        StagedDir::new(&out, Replace::OnlyOutput).unwrap().commit().unwrap();
        assert!(!out.join("data").exists(), "an earlier output is replaced whole");

        let data = root.path().join("data");
        fs::create_dir(&data).unwrap();
        StagedDir::new(&data, Replace::OnlyOutput).unwrap();
        fs::write(data.join("thesis.tex"), b"years of work").unwrap();
        let err = StagedDir::new(&data, Replace::OnlyOutput).err().unwrap().to_string();
        assert!(err.contains("is not an sg-host output (no _SUCCESS)"), "{err}");
        assert!(data.join("thesis.tex").is_file());
        StagedDir::new(&data, Replace::Anything).unwrap().commit().unwrap();
        assert!(!data.join("thesis.tex").exists());
    }
}
