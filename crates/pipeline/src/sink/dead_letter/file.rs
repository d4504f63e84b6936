//! The dead-letter file: one JSON object per line.

use std::fs::File;
use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use sg_model::DeadLetter;
use sg_model::Position;

#[derive(Serialize)]
struct Record<'a> {
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    stage: &'a str,
    reason: &'a str,
    /// The original message when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    /// The original bytes, hex, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    message_hex: Option<String>,
    /// When `message` is only the first bytes: the whole message's size…
    #[serde(skip_serializing_if = "Option::is_none")]
    original_bytes: Option<u64>,
    /// …and SHA-256.
    #[serde(skip_serializing_if = "Option::is_none")]
    original_sha256: Option<&'a str>,
}

/// Bytes of whole records held before [`DeadLetterFile::write`] tries to write them out.
const PENDING_BYTES: usize = 1 << 20;

/// A JSON-lines file of dead letters: one object per message with its source, line, the stage
/// that refused it, the reason and the original message.
///
/// Records are held whole in memory and written at the file's known length (`pwrite`): a write
/// that fails part way (a full disk) is repeated at the same place, so a retry never tears a
/// line or writes one twice, and a record is never lost between a failed write and the next.
pub struct DeadLetterFile {
    path: PathBuf,
    source: String,
    file: File,
    /// Bytes of the file written whole so far.
    len: u64,
    /// Whole records not yet written to the file.
    pending: Vec<u8>,
    count: u64,
    /// Kafka records already in the file (appending after a restart): a record re-read because
    /// its offset was not committed before a crash is not written twice.
    written: HashSet<(i32, i64)>,
}

impl DeadLetterFile {
    /// Creates `path`; `source` names the input in every record.
    pub fn create(path: &Path, source: &str) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(DeadLetterFile::over(file, 0, path, source, HashSet::new()))
    }

    fn over(file: File, len: u64, path: &Path, source: &str, written: HashSet<(i32, i64)>) -> Self {
        DeadLetterFile { path: path.to_path_buf(), source: source.into(), file, len, pending: Vec::new(), count: 0, written }
    }

    /// Appends one dead letter (a Kafka record the file already holds is skipped). It is held
    /// in memory until [`sync`](Self::sync) or until a megabyte is pending; a failed write then
    /// keeps it for the next attempt, so this never fails on the disk.
    pub fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        if let Position::Kafka { partition, offset } = letter.position
            && !self.written.insert((partition, offset))
        {
            return Ok(());
        }
        let stage = letter.stage.name();
        let text = std::str::from_utf8(&letter.raw).ok();
        let (line, partition, offset) = match letter.position {
            Position::Line(l) => (Some(l), None, None),
            Position::Kafka { partition, offset } => (None, Some(partition), Some(offset)),
        };
        let record = Record {
            source: &self.source,
            line,
            partition,
            offset,
            stage: &stage,
            reason: &letter.reason,
            message: text,
            message_hex: text.is_none().then(|| hex::encode(&letter.raw)),
            original_bytes: letter.cut.as_ref().map(|c| c.bytes),
            original_sha256: letter.cut.as_ref().map(|c| c.sha256.as_str()),
        };
        serde_json::to_writer(&mut self.pending, &record)?;
        self.pending.push(b'\n');
        self.count += 1;
        if self.pending.len() >= PENDING_BYTES
            && let Err(e) = self.write_pending()
        {
            tracing::debug!("dead letters held in memory until the next sync: {e:#}");
        }
        Ok(())
    }

    /// Writes the pending records at the end of what is whole; on failure they stay pending
    /// and the next attempt writes them at the same place.
    fn write_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&self.pending, self.len).with_context(|| format!("writing {}", self.path.display()))?;
        self.len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Opens `path` for appending (created if missing); `source` names the input. A last line
    /// torn by a crash is cut off, and the Kafka records already in the file (or in the files
    /// it was rotated to) are remembered so that re-reading them after the crash does not
    /// dead-letter them twice.
    pub fn append(path: &Path, source: &str) -> Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut text = Vec::new();
        file.read_to_end(&mut text).with_context(|| format!("reading {}", path.display()))?;
        let whole = memchr::memrchr(b'\n', &text).map_or(0, |k| k + 1);
        if whole < text.len() {
            file.set_len(whole as u64).with_context(|| format!("cutting the torn last line of {}", path.display()))?;
        }
        #[derive(Deserialize)]
        struct At {
            partition: Option<i32>,
            offset: Option<i64>,
        }
        let mut written = HashSet::new();
        let mut remember = |text: &[u8]| {
            let found = text.split(|&b| b == b'\n').filter_map(|line| serde_json::from_slice::<At>(line).ok());
            written.extend(found.filter_map(|at| Some((at.partition?, at.offset?))));
        };
        remember(&text[..whole]);
        for rotated in rotated_files(path)? {
            remember(&std::fs::read(&rotated).with_context(|| format!("reading {}", rotated.display()))?);
        }
        Ok(DeadLetterFile::over(file, whole as u64, path, source, written))
    }

    /// Once the file holds `max_bytes`, renames it to `NAME.<epoch ms>.jsonl` (after a sync) and
    /// starts it afresh; rotated files last modified more than `retain` ago are deleted.
    pub fn rotate(&mut self, max_bytes: u64, retain: std::time::Duration) -> Result<()> {
        self.sync()?;
        if self.len >= max_bytes {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
            let stem = self.path.file_stem().and_then(|s| s.to_str()).unwrap_or("dead_letters");
            let rotated = self.path.with_file_name(format!("{stem}.{now}.jsonl"));
            std::fs::rename(&self.path, &rotated).with_context(|| format!("rotating {} to {}", self.path.display(), rotated.display()))?;
            self.file = File::create(&self.path).with_context(|| format!("creating {}", self.path.display()))?;
            self.len = 0;
            tracing::info!("dead letters rotated to {}", rotated.display());
        }
        for old in rotated_files(&self.path)? {
            let age = std::fs::metadata(&old).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            if age.is_some_and(|age| age > retain) {
                std::fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
                tracing::info!("--retain: removed {}", old.display());
            }
        }
        Ok(())
    }

    /// Writes and fsyncs every record so far. A failure (a full disk) loses nothing: calling
    /// it again repeats the write where it failed.
    pub fn sync(&mut self) -> Result<()> {
        self.write_pending()?;
        self.file.sync_data().with_context(|| format!("syncing {}", self.path.display()))?;
        Ok(())
    }

    /// How many were written.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Flushes and syncs; returns the path and count.
    pub fn finish(mut self) -> Result<(PathBuf, u64)> {
        self.sync()?;
        Ok((self.path.clone(), self.count))
    }
}

/// The files `path` (`DIR/NAME.jsonl`) was rotated to: `DIR/NAME.<epoch ms>.jsonl`.
fn rotated_files(path: &Path) -> Result<Vec<PathBuf>> {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_stem().and_then(|s| s.to_str())) else { return Ok(Vec::new()) };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stamp = name.strip_prefix(stem).and_then(|r| r.strip_prefix('.')).and_then(|r| r.strip_suffix(".jsonl"));
        if stamp.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

impl Drop for DeadLetterFile {
    /// Writes what is pending, as a buffered writer would; a failure is left to the re-read of
    /// the offsets that were never committed past these records.
    fn drop(&mut self) {
        let _ = self.write_pending();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use sg_model::RefusedBy;

    fn letter(offset: i64) -> DeadLetter {
        DeadLetter::new(Position::Kafka { partition: 1, offset }, RefusedBy::Decode, "bad", b"x")
    }

    #[test]
    fn appending_after_a_crash_cuts_the_torn_line_and_writes_no_record_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let mut f = DeadLetterFile::create(&path, "t").unwrap();
        f.write(&letter(3)).unwrap();
        f.write(&letter(5)).unwrap();
        f.sync().unwrap();
        drop(f);
        let mut torn = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        torn.write_all(br#"{"source":"t","partition":1,"off"#).unwrap();
        drop(torn);
        let mut f = DeadLetterFile::append(&path, "t").unwrap();
        for offset in [3, 5, 7, 7] {
            f.write(&letter(offset)).unwrap();
        }
        f.sync().unwrap();
        assert_eq!(f.count(), 1, "only offset 7 is new");
        let offsets: Vec<i64> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["offset"].as_i64().unwrap())
            .collect();
        assert_eq!(offsets, vec![3, 5, 7]);
    }

    #[test]
    fn a_rotated_file_is_still_known_after_a_restart_and_deleted_past_retention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("_dead_letters.jsonl");
        let mut f = DeadLetterFile::append(&path, "t").unwrap();
        f.write(&letter(3)).unwrap();
        f.rotate(1, std::time::Duration::from_secs(3600)).unwrap();
        f.write(&letter(4)).unwrap();
        f.sync().unwrap();
        drop(f);
        assert_eq!(rotated_files(&path).unwrap().len(), 1);
        // A restart re-reading offsets 3 and 4 writes neither again.
        let mut f = DeadLetterFile::append(&path, "t").unwrap();
        f.write(&letter(3)).unwrap();
        f.write(&letter(4)).unwrap();
        assert_eq!(f.count(), 0);
        // Past retention the rotated file goes; the current one stays.
        f.rotate(u64::MAX, std::time::Duration::ZERO).unwrap();
        assert!(rotated_files(&path).unwrap().is_empty() && path.exists());
    }
}
