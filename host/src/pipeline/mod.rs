//! Pipelines: one run loop ([`driver`]) and the jobs it runs, each a [`driver::Stage`] — the
//! bounded anomaly run ([`anomaly`]), the windowed anomaly stream ([`stream`], with its pure
//! window bookkeeping in [`windows`]) and the log dedup job (`crate::dedup`).

pub mod anomaly;
pub mod driver;
mod rejects;
pub mod steps;
pub mod stream;
pub mod windows;

pub use driver::{Ack, Context, Decoder, Stage, drive};
pub use steps::Steps;

/// Decodes chunks of JSON lines into security events (the anomaly jobs' decoder).
#[derive(Clone, Copy, Debug)]
pub struct EventDecoder {
    /// Larger messages are dead-lettered unread.
    pub max_message_bytes: usize,
}

impl Decoder for EventDecoder {
    type Output = crate::events::DecodedChunk;

    fn decode(&self, chunk: crate::source::Chunk) -> Self::Output {
        crate::events::decode_chunk(chunk, self.max_message_bytes)
    }
}
