//! Any bytes, as JSON log records and as raw HDFS lines: each message a record or a dead
//! letter, and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sg_dedup_core::InputFormat;
use sg_model::Chunk;
use sg_model::LogRecords;

fuzz_target!(|data: &[u8]| {
    let chunk = Chunk::from_lines(data.to_vec(), 1);
    for format in [InputFormat::Json, InputFormat::RawHdfs] {
        let mut dead = Vec::new();
        let records = LogRecords::decode(&chunk, format, 4096, &mut dead);
        assert!(records.len() + dead.len() <= chunk.len());
    }
});
