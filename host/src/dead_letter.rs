//! Dead letters: messages that could not be processed, kept with the reason and position.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::source::Position;

/// Which step refused a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Not a valid event (JSON, required fields, types, size).
    Decode,
    /// Refused by a component, named `name@version`.
    Component(String),
}

/// One refused message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where it was in the input.
    pub position: Position,
    /// Which step refused it.
    pub stage: Stage,
    /// Why.
    pub reason: String,
    /// The original bytes.
    pub raw: Vec<u8>,
}

impl DeadLetter {
    /// A dead letter for `raw` found at `position`.
    pub fn new(position: Position, stage: Stage, reason: impl Into<String>, raw: &[u8]) -> Self {
        DeadLetter { position, stage, reason: reason.into(), raw: raw.to_vec() }
    }
}

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
        let stage = match &letter.stage {
            Stage::Decode => "decode".to_string(),
            Stage::Component(c) => format!("component:{c}"),
        };
        let text = std::str::from_utf8(&letter.raw).ok();
        let record = Record {
            source: &self.source,
            line: match letter.position {
                Position::Line(l) => Some(l),
                Position::Kafka { .. } => None,
            },
            partition: match letter.position {
                Position::Kafka { partition, .. } => Some(partition),
                Position::Line(_) => None,
            },
            offset: match letter.position {
                Position::Kafka { offset, .. } => Some(offset),
                Position::Line(_) => None,
            },
            stage: &stage,
            reason: &letter.reason,
            message: text,
            message_hex: text.is_none().then(|| hex::encode(&letter.raw)),
        };
        serde_json::to_writer(&mut self.out, &record)?;
        self.out.write_all(b"\n")?;
        self.count += 1;
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
