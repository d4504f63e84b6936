//! Sources: `file` (JSON lines from a file, gzip, or stdin) and `kafka` (a bounded read of a
//! topic, or a topic followed as a consumer-group member). All hand out [`Chunk`]s of framed
//! messages with their [`Position`]s; offsets move only through an [`OffsetCommitter`], which
//! the pipeline driver calls once the output covering them is durable.

mod file;
pub mod kafka;

pub use file::{FileSource, InputProgress};
pub use kafka::{KafkaOptions, KafkaSource, OffsetCommitter};

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;

use kafka::{FollowedTopic, Polled};

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
    /// A Kafka topic followed as a consumer-group member: chunks of up to `max` records,
    /// handed out at least every `wait`.
    Followed {
        /// The group member.
        topic: Arc<FollowedTopic>,
        /// Records per chunk.
        max: usize,
        /// Longest wait for a chunk.
        wait: Duration,
    },
}

/// What a source gave.
pub enum Next {
    /// Messages (a followed topic may give an empty chunk).
    Chunk(Chunk),
    /// Partitions were taken away: everything read and not yet durable must be dropped.
    Revoked,
    /// The input is exhausted (never for a followed topic).
    End,
}

impl Source {
    /// Opens `input`; file chunks hold about `chunk_bytes`.
    pub fn open(input: &Input, chunk_bytes: usize) -> Result<Source> {
        Ok(match input {
            Input::File(path) => Source::File(FileSource::open(path, chunk_bytes)?),
            Input::Kafka(options) => match options.follow {
                Some(wait) => Source::Followed {
                    topic: Arc::new(FollowedTopic::join(options)?),
                    max: options.chunk_messages,
                    wait,
                },
                None => Source::Kafka(Box::new(KafkaSource::open(options.clone())?)),
            },
        })
    }

    /// The input's name, for messages, lineage and dead letters.
    pub fn name(&self) -> String {
        match self {
            Source::File(f) => f.name().to_string(),
            Source::Kafka(k) => k.name(),
            Source::Followed { topic, .. } => topic.name().to_string(),
        }
    }

    /// Whether it is a topic followed as a group member (read in step with processing, so
    /// nothing of a revoked partition is written after the revocation).
    pub fn follows(&self) -> bool {
        matches!(self, Source::Followed { .. })
    }

    /// The next chunk; a followed topic stops polling early when `stop` is set.
    pub fn next(&mut self, stop: &AtomicBool) -> Result<Next> {
        Ok(match self {
            Source::File(f) => f.next_chunk()?.map_or(Next::End, Next::Chunk),
            Source::Kafka(k) => k.next_chunk()?.map_or(Next::End, Next::Chunk),
            Source::Followed { topic, max, wait } => match topic.poll(*max, *wait, Some(stop)) {
                Polled::Records(chunk) => Next::Chunk(chunk),
                Polled::Revoked => Next::Revoked,
            },
        })
    }

    /// What commits this source's offsets (none for files).
    pub fn committer(&self) -> Option<OffsetCommitter> {
        match self {
            Source::File(_) => None,
            Source::Kafka(k) => Some(k.committer()),
            Source::Followed { topic, .. } => Some(OffsetCommitter::group(topic.clone())),
        }
    }

    /// Total raw bytes, when known (files).
    pub fn total_bytes(&self) -> Option<u64> {
        match self {
            Source::File(f) => f.total_bytes(),
            Source::Kafka(_) | Source::Followed { .. } => None,
        }
    }

    /// Raw bytes read so far (files).
    pub fn progress(&self) -> InputProgress {
        match self {
            Source::File(f) => f.progress(),
            Source::Kafka(_) | Source::Followed { .. } => InputProgress::default(),
        }
    }
}

/// The partitions a pipeline reads now, for event-time watermarks.
pub trait Assignment {
    /// Partitions assigned to this reader.
    fn assigned(&self) -> Result<Vec<i32>>;
    /// Whether `partition` holds no record past its committed offset.
    fn is_idle(&self, partition: i32) -> bool;
}

impl Assignment for Source {
    fn assigned(&self) -> Result<Vec<i32>> {
        match self {
            Source::Followed { topic, .. } => topic.assignment(),
            Source::File(_) | Source::Kafka(_) => Ok(Vec::new()),
        }
    }

    fn is_idle(&self, partition: i32) -> bool {
        match self {
            Source::Followed { topic, .. } => topic.is_idle(partition),
            Source::File(_) | Source::Kafka(_) => true,
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

    /// Per Kafka partition, the offset after the chunk's last message (what committing the
    /// whole chunk commits).
    pub fn read(&self) -> BTreeMap<i32, i64> {
        let mut read = BTreeMap::new();
        for p in &self.positions {
            if let Position::Kafka { partition, offset } = *p {
                let next = read.entry(partition).or_insert(offset + 1);
                *next = (*next).max(offset + 1);
            }
        }
        read
    }
}
