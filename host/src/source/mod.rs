//! Event sources. `file`: JSON lines from a file (plain or gzip) or stdin, cut into chunks of
//! whole lines for parallel decoding.

mod file;

pub use file::{FileSource, InputProgress};

use std::ops::Range;

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
