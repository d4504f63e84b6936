//! The dead-letter file: one JSON object per line.

use std::fs::File;
use std::collections::HashSet;
use std::io::{BufWriter, Read, Write};
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

/// A JSON-lines file of dead letters: one object per message with its source, line, the stage
/// that refused it, the reason and the original message.
pub struct DeadLetterFile {
    path: PathBuf,
    source: String,
    out: BufWriter<File>,
    count: u64,
    /// Kafka records already in the file (appending after a restart): a record re-read because
    /// its offset was not committed before a crash is not written twice.
    written: HashSet<(i32, i64)>,
}

impl DeadLetterFile {
    /// Creates `path`; `source` names the input in every record.
    pub fn create(path: &Path, source: &str) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(DeadLetterFile { path: path.to_path_buf(), source: source.into(), out: BufWriter::new(file), count: 0, written: HashSet::new() })
    }

    /// Appends one dead letter (a Kafka record the file already holds is skipped).
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
        serde_json::to_writer(&mut self.out, &record)?;
        self.out.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    /// Opens `path` for appending (created if missing); `source` names the input. A last line
    /// torn by a crash is cut off, and the Kafka records already in the file are remembered so
    /// that re-reading them after the crash does not dead-letter them twice.
    pub fn append(path: &Path, source: &str) -> Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
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
        let written = text[..whole]
            .split(|&b| b == b'\n')
            .filter_map(|line| serde_json::from_slice::<At>(line).ok())
            .filter_map(|at| Some((at.partition?, at.offset?)))
            .collect();
        Ok(DeadLetterFile { path: path.to_path_buf(), source: source.into(), out: BufWriter::new(file), count: 0, written })
    }

    /// Flushes and fsyncs what was written so far.
    pub fn sync(&mut self) -> Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(())
    }

    /// How many were written.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Flushes and syncs; returns the path and count.
    pub fn finish(self) -> Result<(PathBuf, u64)> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((self.path, self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
