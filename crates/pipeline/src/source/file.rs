//! JSON lines from a file (plain or gzip, detected by magic bytes) or stdin, read in bounded
//! memory whatever the file holds: a line longer than the message limit is skipped to its end
//! (hashed on the way) and handed out as a cut message — its first bytes, size and digest — and
//! gzip input that inflates past a ratio of what was read (a decompression bomb) ends the input
//! with a cut message saying so.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use sg_model::{Chunk, Cut, KEPT_PREFIX_BYTES, Position, Span};

/// How a file is cut into chunks of messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    /// Bytes per chunk (about).
    pub chunk_bytes: usize,
    /// A longer line is not held: it is handed out cut (and dead-lettered by the decoder).
    pub max_message_bytes: usize,
    /// Gzip input may inflate to at most this many times the bytes read…
    pub max_inflate_ratio: u64,
}

/// …once past this much output (small files may inflate by any ratio).
const INFLATE_RATIO_AFTER: u64 = 256 << 20;

impl Framing {
    /// Chunks of `chunk_bytes`, lines up to `max_message_bytes`, gzip inflating at most 250×.
    pub fn new(chunk_bytes: usize, max_message_bytes: usize) -> Framing {
        Framing { chunk_bytes, max_message_bytes, max_inflate_ratio: 250 }
    }
}

/// A gzip stream that fails once it inflates past the ratio (with `INFLATE_RATIO_AFTER` grace).
struct Inflating<R> {
    inner: R,
    read: InputProgress,
    inflated: u64,
    max_ratio: u64,
}

/// The error an [`Inflating`] stream fails with; the message is the dead letter's reason.
#[derive(Debug)]
struct InflationLimit(String);

impl std::fmt::Display for InflationLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InflationLimit {}

impl<R: Read> Read for Inflating<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.inflated += n as u64;
        let read = self.read.bytes().max(1);
        if self.inflated > INFLATE_RATIO_AFTER && self.inflated > read.saturating_mul(self.max_ratio) {
            let why = format!(
                "gzip input inflated to {} bytes from {read} read, more than {}× (a decompression bomb?): the rest of the input is not read",
                self.inflated, self.max_ratio
            );
            return Err(io::Error::other(InflationLimit(why)));
        }
        Ok(n)
    }
}

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

/// What a [`FileSource`] reads from.
enum Input {
    /// A plain regular file, read straight into the chunk buffers (no buffer between, nothing
    /// zeroed first); progress is counted as it is read.
    Plain(File),
    /// stdin, a pipe or gzip, through buffers that count the raw bytes read.
    Stream(Box<dyn Read + Send>),
}

/// Whether a regular file starts with gzip's magic bytes (read in place: its position is kept).
fn starts_with_gzip(file: &File) -> io::Result<bool> {
    let mut head = [0u8; 2];
    match std::os::unix::fs::FileExt::read_exact_at(file, &mut head, 0) {
        Ok(()) => Ok(head == GZIP_MAGIC),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// A source of JSON lines cut into chunks of about `chunk_bytes`.
pub struct FileSource {
    name: String,
    reader: Input,
    carry: Vec<u8>,
    next_line: u64,
    chunk_bytes: usize,
    max_line: usize,
    eof: bool,
    total_bytes: Option<u64>,
    progress: InputProgress,
    /// The file offset of `carry`'s first byte, while chunks can be read again where they lie
    /// (a plain regular file, no line skipped so far).
    offset: Option<u64>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl FileSource {
    /// Opens `path` (`-` for stdin), decompressing gzip transparently.
    pub fn open(path: &Path, framing: Framing) -> Result<FileSource> {
        let progress = InputProgress::default();
        let (name, raw, total_bytes): (String, Box<dyn Read + Send>, Option<u64>) = if path == Path::new("-") {
            ("stdin".into(), Box::new(io::stdin()), None)
        } else {
            let file = File::open(path).with_context(|| format!("cannot open input {}", path.display()))?;
            let meta = file.metadata().ok();
            if meta.as_ref().is_some_and(|m| m.is_file()) && !starts_with_gzip(&file).context("reading input")? {
                return Ok(FileSource::new(path.display().to_string(), Input::Plain(file), meta.map(|m| m.len()), framing, progress));
            }
            (path.display().to_string(), Box::new(file), meta.map(|m| m.len()))
        };
        let mut buffered = BufReader::with_capacity(1 << 20, Counting { inner: raw, progress: progress.clone() });
        let head = io::BufRead::fill_buf(&mut buffered).context("reading input")?;
        let reader: Box<dyn Read + Send> = if head.starts_with(&GZIP_MAGIC) {
            let inflating = Inflating { inner: MultiGzDecoder::new(buffered), read: progress.clone(), inflated: 0, max_ratio: framing.max_inflate_ratio };
            Box::new(BufReader::with_capacity(1 << 20, inflating))
        } else {
            Box::new(buffered)
        };
        Ok(FileSource::new(name, Input::Stream(reader), total_bytes, framing, progress))
    }

    fn new(name: String, reader: Input, total_bytes: Option<u64>, framing: Framing, progress: InputProgress) -> FileSource {
        // Chunks carry spans, and can be read again where they lie, only in a plain regular file.
        let offset = matches!(reader, Input::Plain(_)).then_some(0);
        FileSource {
            name,
            reader,
            carry: Vec::new(),
            next_line: 1,
            chunk_bytes: framing.chunk_bytes,
            max_line: framing.max_message_bytes,
            eof: false,
            total_bytes,
            progress,
            offset,
        }
    }

    /// The file the chunks' spans point into, as a handle of its own (the same open file, so it
    /// cannot be swapped underneath), for reading them again; `None` for stdin, a pipe or gzip,
    /// whose chunks carry no span.
    pub fn spanned_file(&self) -> Result<Option<File>> {
        match &self.reader {
            // Rereads use `pread`, so sharing the reading handle's file position does no harm.
            Input::Plain(file) => file.try_clone().map(Some).context("input file handle"),
            Input::Stream(_) => Ok(None),
        }
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
            let want = (self.chunk_bytes - start).max(64 << 10);
            let n = match self.fill(&mut buf, want) {
                Ok(n) => n,
                Err(Stop::Bomb(why)) => {
                    buf.truncate(start);
                    return Ok(Some(self.bombed(buf, why)));
                }
                Err(Stop::Io(e)) => return Err(e),
            };
            if n == 0 {
                self.eof = true;
            }
        }
        // Cut after the last newline; the tail waits for the next chunk.
        if !self.eof {
            match memchr::memrchr(b'\n', &buf) {
                Some(cut) => self.carry = buf.split_off(cut + 1),
                None if buf.len() > self.max_line => return self.skip_line(buf).map(Some),
                None => {
                    // One line longer than a chunk (and within the limit): read to its end.
                    self.carry = buf;
                    return self.next_chunk_growing();
                }
            }
        }
        let len = buf.len() as u64;
        let mut chunk = Chunk::from_lines(buf, self.next_line);
        if let Some(offset) = &mut self.offset {
            chunk.span = Some(Span { offset: *offset, len, first_line: self.next_line });
            *offset += len;
        }
        self.next_line += chunk.len() as u64;
        Ok(Some(chunk))
    }

    /// Appends up to `want` bytes to `buf` (into its spare capacity: nothing is zeroed first);
    /// a decompression bomb is told apart from other read errors.
    fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> Result<usize, Stop> {
        let read = match &mut self.reader {
            Input::Plain(file) => file.take(want as u64).read_to_end(buf).inspect(|&n| {
                self.progress.0.fetch_add(n as u64, Ordering::Relaxed);
            }),
            Input::Stream(reader) => reader.take(want as u64).read_to_end(buf),
        };
        read.map_err(|e| match e.get_ref().and_then(|i| i.downcast_ref::<InflationLimit>()) {
            Some(InflationLimit(why)) => Stop::Bomb(why.clone()),
            None => Stop::Io(anyhow::Error::new(e).context(format!("reading {}", self.name))),
        })
    }

    /// Skips the rest of a line that already holds `head` (longer than the limit, no newline
    /// yet), hashing it; hands it out cut.
    fn skip_line(&mut self, head: Vec<u8>) -> Result<Chunk> {
        self.offset = None;
        let mut hasher = Sha256::new();
        hasher.update(&head);
        let mut bytes = head.len() as u64;
        let prefix = head[..head.len().min(KEPT_PREFIX_BYTES)].to_vec();
        let mut scratch = head;
        let why = loop {
            scratch.clear();
            let n = match self.fill(&mut scratch, 1 << 20) {
                Ok(n) => n,
                Err(Stop::Bomb(why)) => {
                    self.eof = true;
                    self.carry.clear();
                    break Some(why);
                }
                Err(Stop::Io(e)) => return Err(e),
            };
            if n == 0 {
                self.eof = true;
                break None;
            }
            match memchr::memchr(b'\n', &scratch[..n]) {
                Some(k) => {
                    let end = if k > 0 && scratch[k - 1] == b'\r' { k - 1 } else { k };
                    hasher.update(&scratch[..end]);
                    bytes += end as u64;
                    self.carry = scratch[k + 1..n].to_vec();
                    break None;
                }
                None => {
                    hasher.update(&scratch[..n]);
                    bytes += n as u64;
                }
            }
        };
        let why = why.unwrap_or_else(|| format!("line of {bytes} bytes exceeds the limit of {}", self.max_line));
        let cut = Cut { bytes, sha256: hex::encode(hasher.finalize()) };
        let mut chunk = Chunk::default();
        chunk.push_cut(&prefix, Position::Line(self.next_line), cut, why);
        self.next_line += 1;
        Ok(chunk)
    }

    /// Ends the input at a decompression bomb: the whole lines before it, then the line it
    /// was in, cut, with the reason.
    fn bombed(&mut self, buf: Vec<u8>, why: String) -> Chunk {
        self.eof = true;
        self.carry.clear();
        let whole = memchr::memrchr(b'\n', &buf).map_or(0, |k| k + 1);
        let mut chunk = Chunk::from_lines(buf[..whole].to_vec(), self.next_line);
        self.next_line += chunk.len() as u64;
        let rest = &buf[whole..];
        chunk.push_cut(&rest[..rest.len().min(KEPT_PREFIX_BYTES)], Position::Line(self.next_line), Cut::of(rest), why);
        self.next_line += 1;
        chunk
    }

    fn next_chunk_growing(&mut self) -> Result<Option<Chunk>> {
        let saved = self.chunk_bytes;
        self.chunk_bytes = self.carry.len() * 2;
        let r = self.next_chunk();
        self.chunk_bytes = saved;
        r
    }
}

/// Why reading stopped.
enum Stop {
    /// The input inflated past the ratio; the reason.
    Bomb(String),
    /// Any other read error.
    Io(anyhow::Error),
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn chunks(content: &[u8], chunk_bytes: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        let mut src = FileSource::open(f.path(), Framing::new(chunk_bytes, 1 << 20)).unwrap();
        let mut out = Vec::new();
        while let Some(c) = src.next_chunk().unwrap() {
            let Some(Position::Line(first)) = c.positions.first().copied() else { continue };
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
    fn a_chunk_of_a_plain_file_read_again_at_its_span_is_the_same_chunk() {
        use std::os::unix::fs::FileExt;
        let mut text = Vec::new();
        for i in 0..20_000 {
            text.extend_from_slice(format!("line {i} {}\r\n", "y".repeat(i % 97)).as_bytes());
        }
        text.extend_from_slice(&[b'z'; 3000]); // a long last line with no newline
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&text).unwrap();
        let mut src = FileSource::open(f.path(), Framing::new(1 << 10, 1 << 20)).unwrap();
        let again_from = src.spanned_file().unwrap().expect("a plain file hands out its handle");
        let (mut chunks, mut end) = (0, 0);
        while let Some(c) = src.next_chunk().unwrap() {
            let span = c.span.expect("a plain file's chunks have spans");
            assert_eq!(span.offset, end, "spans tile the file");
            let mut bytes = vec![0; span.len as usize];
            again_from.read_exact_at(&mut bytes, span.offset).unwrap();
            let again = Chunk::from_lines(bytes, span.first_line);
            assert_eq!((&again.bytes, &again.messages, &again.positions), (&c.bytes, &c.messages, &c.positions));
            (chunks, end) = (chunks + 1, span.offset + span.len);
        }
        assert!(chunks > 10, "{chunks} chunks");
        assert_eq!(end, text.len() as u64);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"one\ntwo\n").unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&gz.finish().unwrap()).unwrap();
        let mut src = FileSource::open(f.path(), Framing::new(1 << 20, 1 << 20)).unwrap();
        assert!(src.spanned_file().unwrap().is_none(), "gzip hands out no handle");
        let c = src.next_chunk().unwrap().unwrap();
        assert_eq!(c.span, None, "gzip cannot be read again at an offset");
    }

    #[test]
    fn files_too_short_for_the_gzip_magic_are_read_and_progress_counts_every_byte() {
        assert!(chunks(b"", 1 << 20).is_empty());
        assert_eq!(chunks(b"x", 1 << 20), vec![(1, vec![b"x".to_vec()])]);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&b"0123456789\n".repeat(1000)).unwrap();
        let mut src = FileSource::open(f.path(), Framing::new(1 << 10, 1 << 20)).unwrap();
        while src.next_chunk().unwrap().is_some() {}
        assert_eq!(src.progress().bytes(), 11_000);
    }

    #[test]
    fn gzip_is_detected_by_magic() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"one\ntwo\n").unwrap();
        let lines: Vec<Vec<u8>> = chunks(&gz.finish().unwrap(), 1 << 20).into_iter().flat_map(|(_, l)| l).collect();
        assert_eq!(lines, vec![b"one".to_vec(), b"two".to_vec()]);
    }

    /// Every message of `src` with its cut, if any.
    fn messages(mut src: FileSource) -> Vec<(Vec<u8>, Option<(Cut, String)>)> {
        let mut out = Vec::new();
        while let Some(c) = src.next_chunk().unwrap() {
            for i in 0..c.len() {
                let cut = c.cuts.iter().find(|(j, ..)| *j == i).map(|(_, cut, why)| (cut.clone(), why.clone()));
                out.push((c.message(i).to_vec(), cut));
            }
        }
        out
    }

    #[test]
    fn a_line_past_the_limit_is_skipped_in_bounded_memory_and_handed_out_cut() {
        let long = vec![b'x'; 5 << 20];
        let mut text = b"first\n".to_vec();
        text.extend_from_slice(&long);
        text.extend_from_slice(b"\r\nlast\n");
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&text).unwrap();
        let got = messages(FileSource::open(f.path(), Framing::new(64 << 10, 1 << 20)).unwrap());
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (b"first".to_vec(), None));
        let (prefix, cut) = &got[1];
        assert_eq!(prefix.len(), KEPT_PREFIX_BYTES);
        let (cut, why) = cut.clone().unwrap();
        assert_eq!(cut, Cut::of(&long), "size and digest of the whole line, without its \\r\\n");
        assert_eq!(why, "line of 5242880 bytes exceeds the limit of 1048576");
        assert_eq!(got[2], (b"last".to_vec(), None));
    }

    #[test]
    fn a_gzip_bomb_ends_the_input_with_the_reason() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(b"{\"a\": 1}\n").unwrap();
        let zeros = vec![b'0'; 1 << 20];
        for _ in 0..400 {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{} bytes inflate to 400 MiB", bomb.len());
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bomb).unwrap();
        let got = messages(FileSource::open(f.path(), Framing::new(8 << 20, 1 << 20)).unwrap());
        assert_eq!(got[0], (b"{\"a\": 1}".to_vec(), None));
        assert_eq!(got.len(), 2);
        let why = &got[1].1.as_ref().unwrap().1;
        assert!(why.contains("more than 250× (a decompression bomb?)"), "{why}");
    }
}
