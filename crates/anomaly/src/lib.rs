//! The anomaly jobs over security events, each a [`sg_pipeline::Stage`] on the one driver: the
//! bounded run ([`bounded`]: features → Isolation Forest → Parquet + report) and the windowed
//! stream ([`stream`], with its pure window bookkeeping in [`windows`]); the upgrade slots both
//! share are in [`slots`].

#![deny(missing_docs)]

pub mod bounded;
mod rejects;
mod reread;
pub mod slots;
pub mod stream;
pub mod windows;

use sg_pipeline::Decoder;


/// Decodes chunks of JSON lines into security events (the anomaly jobs' decoder).
#[derive(Clone, Copy, Debug)]
pub struct EventDecoder {
    /// Larger messages are dead-lettered unread.
    pub max_message_bytes: usize,
}

impl Decoder for EventDecoder {
    type Output = sg_model::events::DecodedChunk;

    fn decode(&self, chunk: sg_pipeline::source::Chunk) -> Self::Output {
        sg_model::events::decode_chunk(chunk, self.max_message_bytes)
    }
}
