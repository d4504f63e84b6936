//! Framed messages as sources hand them out: a [`Chunk`] of messages in one buffer, each with
//! its [`Position`] in the input.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::{Cut, DeadLetter, RefusedBy};

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

/// Where a chunk's bytes lie in a plain (seekable, uncompressed) file: read again there and
/// split with [`Chunk::from_lines`], they give the same chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Byte offset of the chunk's first byte.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// The 1-based line number of its first line.
    pub first_line: u64,
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
    /// Messages the source could not hold whole (index, size and digest, why): their bytes
    /// here are only a prefix.
    pub cuts: Vec<(usize, Cut, String)>,
    /// Where the chunk lies in its file, when it can be read there again (lines of a plain
    /// file, none cut).
    pub span: Option<Span>,
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
        Chunk { bytes, messages, positions, cuts: Vec::new(), span: None }
    }

    /// Appends one message found at `position`.
    pub fn push(&mut self, message: &[u8], position: Position) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(message);
        self.messages.push(start..self.bytes.len() as u32);
        self.positions.push(position);
    }

    /// Appends the first bytes of a message the source could not hold, found at `position`,
    /// with `why`.
    pub fn push_cut(&mut self, prefix: &[u8], position: Position, cut: Cut, why: String) {
        self.cuts.push((self.len(), cut, why));
        self.push(prefix, position);
    }

    /// The dead letter of message `i` when it is larger than `max` bytes (or was cut by its
    /// source): decoders refuse it unread, keeping a bounded prefix, its size and digest.
    pub fn oversize(&self, i: usize, max: usize) -> Option<DeadLetter> {
        let refuse = |bytes: u64| format!("message of {bytes} bytes exceeds the limit of {max}");
        if let Ok(k) = self.cuts.binary_search_by_key(&i, |(j, ..)| *j) {
            let (_, cut, why) = &self.cuts[k];
            return Some(DeadLetter::cut(self.positions[i], RefusedBy::Decode, why.clone(), self.message(i), cut.clone()));
        }
        let message = self.message(i);
        (message.len() > max).then(|| DeadLetter::bounded(self.positions[i], RefusedBy::Decode, refuse(message.len() as u64), message))
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
