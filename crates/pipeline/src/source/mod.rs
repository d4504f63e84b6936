//! Sources: `file` (JSON lines from a file, gzip, or stdin) and `kafka` (a bounded read of a
//! topic, or a topic followed as a consumer-group member). All hand out [`Chunk`]s of framed
//! messages with their [`Position`]s; offsets move only through an [`OffsetCommitter`], which
//! the pipeline driver calls once the output covering them is durable.

mod file;

pub use file::{FileSource, Framing, InputProgress};
pub use sg_kafka::{KafkaOptions, KafkaSource, OffsetCommitter};
pub use sg_model::{Chunk, Position};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;

use sg_kafka::{FollowedTopic, Polled};

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
    /// Opens `input`; a file is cut into chunks as `framing` says.
    pub fn open(input: &Input, framing: Framing) -> Result<Source> {
        Ok(match input {
            Input::File(path) => Source::File(FileSource::open(path, framing)?),
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

    /// The input file its chunks' spans point into, when they have spans (see
    /// [`FileSource::spanned_file`]).
    pub fn spanned_file(&self) -> Result<Option<std::fs::File>> {
        match self {
            Source::File(f) => f.spanned_file(),
            Source::Kafka(_) | Source::Followed { .. } => Ok(None),
        }
    }

    /// What commits this source's offsets (none for files).
    pub fn committer(&self) -> Option<OffsetCommitter> {
        match self {
            Source::File(_) => None,
            Source::Kafka(k) => Some(k.committer()),
            Source::Followed { topic, .. } => Some(topic.committer()),
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
