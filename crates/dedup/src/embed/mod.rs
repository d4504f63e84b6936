//! Sentence embeddings for the dedup pipeline: all-MiniLM-L6-v2 in process ([`MiniLm`], in fp32
//! or int8: [`Precision`]), or a remote service speaking the reference `/embed` contract
//! ([`HttpEmbedder`]). Both apply the reference service's text normalization first, so they embed
//! the same string; [`Memoized`] embeds each distinct normalized text once.

mod bert;
mod http;
mod memo;
mod minilm;
pub mod normalize;

pub use bert::Precision;
pub use http::{HttpEmbedder, HttpSettings};
pub use memo::Memoized;
pub use minilm::MiniLm;

use anyhow::Result;

/// Something that turns texts into unit vectors, one per text, in order.
pub trait Embedder: Send {
    /// What it is, for summaries and lineage (model or URL).
    fn describe(&self) -> String;

    /// One vector per text, same order, all of the same dimension.
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// The default model directory (filled by `scripts/fetch-model.sh`).
pub const DEFAULT_MODEL_DIR: &str = "models/all-MiniLM-L6-v2";
