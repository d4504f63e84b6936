//! Any bytes, as lines of events: every message is a row or a dead letter, never both, and
//! nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sg_model::Chunk;

fuzz_target!(|data: &[u8]| {
    let chunk = Chunk::from_lines(data.to_vec(), 1);
    let messages = chunk.len();
    let decoded = sg_model::events::decode_chunk(chunk, 4096);
    assert!(decoded.batch.len() + decoded.dead.len() <= messages);
});
