//! Security events: decoding JSON lines into columnar batches.

mod batch;
pub mod decode;

pub use batch::{EventBatch, EventBatchBuilder};

use crate::{DeadLetter, RefusedBy};
use crate::Chunk;

/// Messages larger than this are dead-lettered unread (1 MiB, like Kafka's default).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// A chunk turned into events and dead letters.
pub struct DecodedChunk {
    /// The valid events, in input order.
    pub batch: EventBatch,
    /// The messages that are not valid events.
    pub dead: Vec<DeadLetter>,
    /// The chunk's bytes (`batch.raw` ranges point into them).
    pub bytes: Vec<u8>,
    /// Where the chunk lies in its file, when it can be read there again.
    pub span: Option<crate::Span>,
}

impl DecodedChunk {
    /// The original message of event `i` of `batch` (or of a selection of it).
    pub fn raw(&self, batch: &EventBatch, i: usize) -> &[u8] {
        let r = &batch.raw[i];
        &self.bytes[r.start as usize..r.end as usize]
    }
}

/// Decodes every message of a chunk (blank messages are skipped, not counted).
pub fn decode_chunk(chunk: Chunk, max_message_bytes: usize) -> DecodedChunk {
    let mut builder = EventBatchBuilder::with_capacity(chunk.bytes.len() / 400 + 16);
    let mut dead = Vec::new();
    // UTF-8 checked once for the whole chunk (fast over ASCII) rather than string by string;
    // a chunk that is not UTF-8 is decoded line by line from bytes, as each line's error says.
    let text = std::str::from_utf8(&chunk.bytes).ok();
    for i in 0..chunk.len() {
        let (message, position) = (chunk.message(i), chunk.positions[i]);
        if let Some(letter) = chunk.oversize(i, max_message_bytes) {
            dead.push(letter);
            continue;
        }
        if message.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let range = &chunk.messages[i];
        let decoded = match text.and_then(|t| t.get(range.start as usize..range.end as usize)) {
            Some(line) => decode::decode_event_str(line),
            None => decode::decode_event(message),
        };
        match decoded {
            Ok(row) => builder.push(&row, position, chunk.messages[i].clone()),
            Err(reason) => dead.push(DeadLetter::new(position, RefusedBy::Decode, reason, message)),
        }
    }
    let batch = builder.finish();
    DecodedChunk { batch, dead, bytes: chunk.bytes, span: chunk.span }
}
