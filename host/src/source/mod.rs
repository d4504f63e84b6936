//! Event sources. `file`: JSON lines from a file (plain or gzip) or stdin, cut into chunks of
//! whole lines for parallel decoding.

mod file;

pub use file::{FileSource, InputProgress};

/// Whole lines of input, with the 1-based number of the first.
pub struct Chunk {
    /// The bytes: complete lines, the last one possibly without its newline at end of input.
    pub bytes: Vec<u8>,
    /// Line number of the first line.
    pub first_line: u64,
}

impl Chunk {
    /// The lines, without their `\n`.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let body = self.bytes.strip_suffix(b"\n").unwrap_or(&self.bytes);
        (!self.bytes.is_empty()).then(|| body.split(|&b| b == b'\n')).into_iter().flatten()
    }
}
