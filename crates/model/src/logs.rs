//! Log records of a chunk as columns for the policy: JSON messages (`text`, else `message`,
//! plus the optional fields) or raw log lines; what is not a log record is dead-lettered.

use std::borrow::Cow;

use serde::Deserialize;
use sg_dedup_core::{InputFormat, LogBatch, TextColumnBuf};

use crate::{DeadLetter, RefusedBy};
use crate::{Chunk, Position};

/// The records of one chunk, one row each, and where they came from.
#[derive(Debug)]
pub struct LogRecords {
    /// How they were read.
    pub format: InputFormat,
    /// `text` (else `message`), or the raw line.
    pub line: TextColumnBuf,
    /// `original_text`.
    pub original_text: TextColumnBuf,
    /// `timestamp`.
    pub timestamp: TextColumnBuf,
    /// `log_level`.
    pub log_level: TextColumnBuf,
    /// `source`.
    pub source: TextColumnBuf,
    /// `node_type`.
    pub node_type: TextColumnBuf,
    /// `label` (0/1/null).
    pub label: Vec<Option<i64>>,
    /// Message index in the chunk of each row.
    pub message: Vec<usize>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    original_text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    log_level: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    node_type: Option<Cow<'a, str>>,
    #[serde(default)]
    label: Option<i64>,
}

impl LogRecords {
    fn new(format: InputFormat, rows: usize, bytes: usize) -> Self {
        LogRecords {
            format,
            line: TextColumnBuf::with_capacity(rows, bytes),
            original_text: TextColumnBuf::with_capacity(rows, if format == InputFormat::Json { bytes } else { 0 }),
            timestamp: TextColumnBuf::with_capacity(rows, 0),
            log_level: TextColumnBuf::with_capacity(rows, 0),
            source: TextColumnBuf::with_capacity(rows, 0),
            node_type: TextColumnBuf::with_capacity(rows, 0),
            label: Vec::with_capacity(rows),
            message: Vec::with_capacity(rows),
        }
    }

    /// Decodes a chunk; refused messages are appended to `dead` with the reason.
    pub fn decode(chunk: &Chunk, format: InputFormat, max_message_bytes: usize, dead: &mut Vec<DeadLetter>) -> Self {
        let mut out = LogRecords::new(format, chunk.len(), chunk.bytes.len());
        for i in 0..chunk.len() {
            let raw = chunk.message(i);
            let refuse = |reason: String| DeadLetter::new(chunk.positions[i], RefusedBy::Decode, reason, raw);
            if let Some(letter) = chunk.oversize(i, max_message_bytes) {
                dead.push(letter);
                continue;
            }
            let pushed = match format {
                InputFormat::Json => out.push_json(raw),
                InputFormat::RawHdfs => out.push_raw(raw),
            };
            match pushed {
                Ok(()) => out.message.push(i),
                Err(reason) => dead.push(refuse(reason)),
            }
        }
        out
    }

    fn push_json(&mut self, raw: &[u8]) -> Result<(), String> {
        let m: Message<'_> = serde_json::from_slice(raw).map_err(|e| format!("not a log message: {e}"))?;
        let line = match (&m.text, &m.message) {
            (Some(t), _) => t,
            (None, Some(t)) => t,
            (None, None) => return Err("no `text` or `message` string".into()),
        };
        if line.trim().is_empty() {
            return Err("`text`/`message` is empty".into());
        }
        self.line.push(line);
        self.original_text.push(m.original_text.as_deref().unwrap_or(""));
        self.timestamp.push(m.timestamp.as_deref().unwrap_or(""));
        self.log_level.push(m.log_level.as_deref().unwrap_or(""));
        self.source.push(m.source.as_deref().unwrap_or(""));
        self.node_type.push(m.node_type.as_deref().unwrap_or(""));
        self.label.push(m.label);
        Ok(())
    }

    fn push_raw(&mut self, raw: &[u8]) -> Result<(), String> {
        let line = std::str::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))?;
        self.line.push(line.trim_end_matches(['\r', '\n']));
        for column in
            [&mut self.original_text, &mut self.timestamp, &mut self.log_level, &mut self.source, &mut self.node_type]
        {
            column.push("");
        }
        self.label.push(None);
        Ok(())
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.message.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.message.is_empty()
    }

    /// The columns as the policy sees them.
    pub fn batch(&self) -> LogBatch<'_> {
        LogBatch {
            format: self.format,
            line: self.line.view(),
            original_text: self.original_text.view(),
            timestamp: self.timestamp.view(),
            log_level: self.log_level.view(),
            source: self.source.view(),
            node_type: self.node_type.view(),
        }
    }

    /// Where row `row` came from.
    pub fn position(&self, chunk: &Chunk, row: usize) -> Position {
        chunk.positions[self.message[row]]
    }
}
