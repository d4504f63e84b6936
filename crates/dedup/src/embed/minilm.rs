//! all-MiniLM-L6-v2 in process: its tokenizer and BERT encoder ([`bert`](super::bert)) over the
//! shipped safetensors, mean pooling and L2 normalization — sentence-transformers' recipe.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use tokenizers::{Tokenizer, TruncationParams};

use super::bert::{Encoder, Precision};
use super::{Embedder, normalize};

/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;
/// Texts per forward pass (not padded: a pass costs what its tokens cost).
const BATCH: usize = 64;

/// The in-process embedder.
pub struct MiniLm {
    encoder: Encoder,
    tokenizer: Tokenizer,
    dir: String,
}

impl MiniLm {
    /// Loads `tokenizer.json`, `config.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path, precision: Precision) -> Result<MiniLm> {
        let hint = "run scripts/fetch-model.sh, or pass --model-dir";
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| anyhow!("{}: {e} ({hint})", dir.join("tokenizer.json").display()))?;
        // The shipped tokenizer pads to 128; sequences here are never padded.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| anyhow!("tokenizer truncation: {e}"))?;
        let read = |name: &str| std::fs::read(dir.join(name)).with_context(|| format!("{} ({hint})", dir.join(name).display()));
        let encoder = Encoder::load(&read("config.json")?, &read("model.safetensors")?, precision)
            .with_context(|| format!("the model in {}", dir.display()))?;
        Ok(MiniLm { encoder, tokenizer, dir: dir.display().to_string() })
    }
}

impl Embedder for MiniLm {
    fn describe(&self) -> String {
        format!("all-MiniLM-L6-v2 {} in process ({})", self.encoder.precision(), self.dir)
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let normalized: Vec<String> = texts.iter().map(|t| normalize::for_embedding(t)).collect();
        let encodings = self.tokenizer.encode_batch(normalized, true).map_err(|e| anyhow!("tokenize: {e}"))?;
        // Similar lengths per pass, results put back in input order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let sequences: Vec<&[u32]> = chunk.iter().map(|&i| encodings[i].get_ids()).collect();
            for (&i, v) in chunk.iter().zip(self.encoder.embed(&sequences)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}
