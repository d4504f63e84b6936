//! JSON lines from a file (plain or gzip, detected by magic bytes) or stdin.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;

use super::Chunk;

/// Bytes of raw input read so far, shared with a progress display.
#[derive(Clone, Default)]
pub struct InputProgress(Arc<AtomicU64>);

impl InputProgress {
    /// Raw (possibly compressed) bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Counting<R> {
    inner: R,
    progress: InputProgress,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A source of JSON lines cut into chunks of about `chunk_bytes`.
pub struct FileSource {
    name: String,
    reader: Box<dyn Read + Send>,
    carry: Vec<u8>,
    next_line: u64,
    chunk_bytes: usize,
    eof: bool,
    total_bytes: Option<u64>,
    progress: InputProgress,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl FileSource {
    /// Opens `path` (`-` for stdin), decompressing gzip transparently.
    pub fn open(path: &Path, chunk_bytes: usize) -> Result<FileSource> {
        let progress = InputProgress::default();
        let (name, raw, total_bytes): (String, Box<dyn Read + Send>, Option<u64>) = if path == Path::new("-") {
            ("stdin".into(), Box::new(io::stdin()), None)
        } else {
            let file = File::open(path).with_context(|| format!("cannot open input {}", path.display()))?;
            let len = file.metadata().ok().map(|m| m.len());
            (path.display().to_string(), Box::new(file), len)
        };
        let mut buffered = BufReader::with_capacity(1 << 20, Counting { inner: raw, progress: progress.clone() });
        let head = io::BufRead::fill_buf(&mut buffered).context("reading input")?;
        let reader: Box<dyn Read + Send> = if head.starts_with(&GZIP_MAGIC) {
            Box::new(BufReader::with_capacity(1 << 20, MultiGzDecoder::new(buffered)))
        } else {
            Box::new(buffered)
        };
        Ok(FileSource {
            name,
            reader,
            carry: Vec::new(),
            next_line: 1,
            chunk_bytes,
            eof: false,
            total_bytes,
            progress,
        })
    }

    /// The input's name for messages and dead letters.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Raw size, when known (files, not stdin).
    pub fn total_bytes(&self) -> Option<u64> {
        self.total_bytes
    }

    /// Progress counter.
    pub fn progress(&self) -> InputProgress {
        self.progress.clone()
    }

    /// The next chunk of whole lines, or None at end of input.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        if self.eof && self.carry.is_empty() {
            return Ok(None);
        }
        let mut buf = std::mem::take(&mut self.carry);
        buf.reserve(self.chunk_bytes + (64 << 10));
        // Read until the buffer holds at least one full chunk (or input ends).
        while !self.eof && buf.len() < self.chunk_bytes {
            let start = buf.len();
            buf.resize(start + (self.chunk_bytes - start).max(64 << 10), 0);
            let n = self.reader.read(&mut buf[start..]).with_context(|| format!("reading {}", self.name))?;
            buf.truncate(start + n);
            if n == 0 {
                self.eof = true;
            }
        }
        // Cut after the last newline; the tail waits for the next chunk.
        if !self.eof {
            match memchr::memrchr(b'\n', &buf) {
                Some(cut) => self.carry = buf.split_off(cut + 1),
                None => {
                    // One line longer than a chunk: keep reading until its end.
                    self.carry = buf;
                    return self.next_chunk_growing();
                }
            }
        }
        let chunk = Chunk::from_lines(buf, self.next_line);
        self.next_line += chunk.len() as u64;
        Ok(Some(chunk))
    }

    fn next_chunk_growing(&mut self) -> Result<Option<Chunk>> {
        let saved = self.chunk_bytes;
        self.chunk_bytes = self.carry.len() * 2;
        let r = self.next_chunk();
        self.chunk_bytes = saved;
        r
    }
}


#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn chunks(content: &[u8], chunk_bytes: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        let mut src = FileSource::open(f.path(), chunk_bytes).unwrap();
        let mut out = Vec::new();
        while let Some(c) = src.next_chunk().unwrap() {
            let Some(crate::source::Position::Line(first)) = c.positions.first().copied() else { continue };
            out.push((first, (0..c.len()).map(|i| c.message(i).to_vec()).collect()));
        }
        out
    }

    #[test]
    fn chunks_hold_whole_lines_with_their_numbers() {
        let text = b"aaaa\nbb\r\ncccccc\n\nd";
        let all: Vec<(u64, Vec<u8>)> = chunks(text, 5)
            .into_iter()
            .flat_map(|(first, lines)| lines.into_iter().enumerate().map(move |(i, l)| (first + i as u64, l)))
            .collect();
        let expected: Vec<(u64, Vec<u8>)> =
            vec![(1, b"aaaa".to_vec()), (2, b"bb".to_vec()), (3, b"cccccc".to_vec()), (4, vec![]), (5, b"d".to_vec())];
        assert_eq!(all, expected);
    }

    #[test]
    fn a_line_longer_than_a_chunk_stays_whole() {
        let long = vec![b'x'; 300_000];
        let mut text = b"first\n".to_vec();
        text.extend_from_slice(&long);
        text.extend_from_slice(b"\nlast\n");
        let lines: Vec<Vec<u8>> = chunks(&text, 1 << 10).into_iter().flat_map(|(_, l)| l).collect();
        assert_eq!(lines, vec![b"first".to_vec(), long, b"last".to_vec()]);
    }

    #[test]
    fn gzip_is_detected_by_magic() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"one\ntwo\n").unwrap();
        let lines: Vec<Vec<u8>> = chunks(&gz.finish().unwrap(), 1 << 20).into_iter().flat_map(|(_, l)| l).collect();
        assert_eq!(lines, vec![b"one".to_vec(), b"two".to_vec()]);
    }
}
