//! Event sources, each in its own module: `file` (JSON lines from a file, gzip, or stdin),
//! `kafka` (bounded reads of a topic) and `group` (a topic followed as a consumer-group
//! member). All hand out [`Chunk`]s of framed messages.

mod file;
pub mod group;
pub mod kafka;

pub use file::{FileSource, InputProgress};
pub use group::GroupSource;
pub use kafka::{KafkaOptions, KafkaSource};

use std::ops::Range;
use std::path::PathBuf;

use anyhow::Result;

/// What a pipeline reads.
#[derive(Clone, Debug)]
pub enum Input {
    /// JSON lines from a file (`-` for stdin).
    File(PathBuf),
    /// A Kafka topic: a bounded read, or followed as a group member (`follow` set).
    Kafka(KafkaOptions),
}

/// An open input.
pub enum Source {
    /// A file or stdin.
    File(FileSource),
    /// A bounded read of a Kafka topic.
    Kafka(Box<KafkaSource>),
    /// A Kafka topic followed as a consumer-group member.
    KafkaGroup(Box<GroupSource>),
}

impl Source {
    /// Opens `input`; file chunks hold about `chunk_bytes`.
    pub fn open(input: &Input, chunk_bytes: usize) -> Result<Source> {
        Ok(match input {
            Input::File(path) => Source::File(FileSource::open(path, chunk_bytes)?),
            Input::Kafka(options) => match options.follow {
                Some(wait) => Source::KafkaGroup(Box::new(GroupSource::open(options.clone(), wait)?)),
                None => Source::Kafka(Box::new(KafkaSource::open(options.clone())?)),
            },
        })
    }

    /// The input's name, for messages, lineage and dead letters.
    pub fn name(&self) -> String {
        match self {
            Source::File(f) => f.name().to_string(),
            Source::Kafka(k) => k.name(),
            Source::KafkaGroup(g) => g.name(),
        }
    }

    /// Whether offsets are committed by [`Source::acknowledge`] (Kafka).
    pub fn commits(&self) -> bool {
        !matches!(self, Source::File(_))
    }

    /// The next chunk, or None at the end (a followed topic has none).
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        match self {
            Source::File(f) => f.next_chunk(),
            Source::Kafka(k) => k.next_chunk(),
            Source::KafkaGroup(g) => Ok(Some(g.next_chunk())),
        }
    }

    /// Total raw bytes, when known (files).
    pub fn total_bytes(&self) -> Option<u64> {
        match self {
            Source::File(f) => f.total_bytes(),
            Source::Kafka(_) | Source::KafkaGroup(_) => None,
        }
    }

    /// Raw bytes read so far (files).
    pub fn progress(&self) -> InputProgress {
        match self {
            Source::File(f) => f.progress(),
            Source::Kafka(_) | Source::KafkaGroup(_) => InputProgress::default(),
        }
    }

    /// Acknowledges every chunk handed out so far — call only after the output covering them is
    /// durably written (Kafka: commits the group's offsets; files: nothing).
    pub fn acknowledge(&self) -> Result<()> {
        match self {
            Source::File(_) => Ok(()),
            Source::Kafka(k) => k.commit(),
            Source::KafkaGroup(g) => {
                g.commit();
                Ok(())
            }
        }
    }
}

/// Where a message came from, for dead letters and commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// 1-based line of a file.
    Line(u64),
    /// A Kafka record.
    Kafka {
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
    },
}

/// A run of messages in one buffer: message `i` is `bytes[messages[i]]`, found at `positions[i]`.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The messages' bytes.
    pub bytes: Vec<u8>,
    /// Each message's byte range.
    pub messages: Vec<Range<u32>>,
    /// Each message's position.
    pub positions: Vec<Position>,
}

impl Chunk {
    /// Splits `bytes` into lines (without `\n` or a trailing `\r`), numbered from `first_line`.
    pub fn from_lines(bytes: Vec<u8>, first_line: u64) -> Chunk {
        let mut messages = Vec::new();
        let mut start = 0usize;
        for end in memchr::memchr_iter(b'\n', &bytes).chain((bytes.last() != Some(&b'\n') && !bytes.is_empty()).then_some(bytes.len())) {
            let line_end = if end > start && bytes[end - 1] == b'\r' { end - 1 } else { end };
            messages.push(start as u32..line_end as u32);
            start = end + 1;
        }
        let positions = (0..messages.len() as u64).map(|i| Position::Line(first_line + i)).collect();
        Chunk { bytes, messages, positions }
    }

    /// Appends one message found at `position`.
    pub fn push(&mut self, message: &[u8], position: Position) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(message);
        self.messages.push(start..self.bytes.len() as u32);
        self.positions.push(position);
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether there are no messages.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Message `i`.
    pub fn message(&self, i: usize) -> &[u8] {
        let r = &self.messages[i];
        &self.bytes[r.start as usize..r.end as usize]
    }
}
