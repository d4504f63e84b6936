//! A bounded run's journal by position: a chunk of the input file is journaled as where it lies
//! ([`Span`]), and a replay reads and decodes it there again, instead of the journal holding the
//! decoded events.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use sg_core::component::features::Reread;
use sg_model::events::EventBatch;
use sg_model::{Chunk, Span};
use sg_pipeline::Decoder;

use crate::EventDecoder;

/// The input file, open for reading chunks again, with what identifies its contents.
pub struct InputFile {
    file: File,
    name: String,
    /// (length, modification time in ns) when opened.
    identity: (u64, i128),
    /// How the run decoded the chunk the first time.
    decoder: EventDecoder,
}

impl InputFile {
    /// Wraps the source's handle on its input file ([`sg_pipeline::source::Source::spanned_file`]),
    /// noting its size and modification time now.
    pub fn new(file: File, name: String, decoder: EventDecoder) -> Result<Arc<InputFile>> {
        let identity = identity(&file.metadata().with_context(|| format!("cannot stat input {name}"))?);
        Ok(Arc::new(InputFile { file, name, identity, decoder }))
    }

    /// The chunk at `span`, as a [`Reread`].
    pub fn chunk(self: &Arc<Self>, span: Span) -> Arc<dyn Reread> {
        Arc::new(InputChunk { file: self.clone(), span })
    }
}

fn identity(meta: &std::fs::Metadata) -> (u64, i128) {
    (meta.len(), meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128)
}

/// One chunk of the input file.
struct InputChunk {
    file: Arc<InputFile>,
    span: Span,
}

impl Reread for InputChunk {
    fn reread(&self) -> Result<EventBatch> {
        let input = &self.file;
        let now = identity(&input.file.metadata()?);
        if now != input.identity {
            bail!("{} changed since the run began (size or modification time): its events cannot be read again for a replay", input.name);
        }
        let mut bytes = vec![0; self.span.len as usize];
        input.file.read_exact_at(&mut bytes, self.span.offset).with_context(|| format!("reading {} again", input.name))?;
        Ok(input.decoder.decode(Chunk::from_lines(bytes, self.span.first_line)).batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sg_model::events::decode_chunk;

    const DECODER: EventDecoder = EventDecoder { max_message_bytes: 1 << 20 };

    #[test]
    fn a_chunk_reads_again_as_decoded_and_a_changed_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let event = |user: &str| {
            format!(
                r#"{{"event_id":"e-{user}","timestamp":1767225600004,"event_type":"auth_attempt","source_ip":"10.0.0.1","user":"{user}","threat_score":0.1,"status":"success"}}"#
            )
        };
        let text = format!("{}\n{}\nnot json\n{}\n", event("a"), event("b"), event("c"));
        std::fs::write(&path, &text).unwrap();
        let input = InputFile::new(File::open(&path).unwrap(), "events.jsonl".into(), DECODER).unwrap();
        let first = event("a").len() as u64 + 1;
        let span = Span { offset: first, len: text.len() as u64 - first, first_line: 2 };
        let batch = input.chunk(span).reread().unwrap();
        let original = decode_chunk(Chunk::from_lines(text.as_bytes()[first as usize..].to_vec(), 2), 1 << 20).batch;
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.positions, original.positions);
        assert_eq!(batch.positions, vec![sg_model::Position::Line(2), sg_model::Position::Line(4)]);

        std::fs::write(&path, text.replace("\"b\"", "\"x\"")).unwrap();
        let f = File::options().write(true).open(&path).unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
        let e = input.chunk(span).reread().unwrap_err();
        assert!(format!("{e:#}").contains("changed since the run began"), "{e:#}");
    }
}
