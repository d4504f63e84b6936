//! The dead-letter file: one JSON object per line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

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
}

impl DeadLetterFile {
    /// Creates `path`; `source` names the input in every record.
    pub fn create(path: &Path, source: &str) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(DeadLetterFile { path: path.to_path_buf(), source: source.into(), out: BufWriter::new(file), count: 0 })
    }

    /// Appends one dead letter.
    pub fn write(&mut self, letter: &DeadLetter) -> Result<()> {
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

    /// Opens `path` for appending (created if missing); `source` names the input.
    pub fn append(path: &Path, source: &str) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(DeadLetterFile { path: path.to_path_buf(), source: source.into(), out: BufWriter::new(file), count: 0 })
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
