//! Vectors remembered by the text the model actually sees. Both embedders embed
//! [`normalize::for_embedding`] of a line, which maps every number, address and timestamp to a
//! placeholder: thousands of distinct new lines are often a few dozen distinct model inputs (the
//! 2,000 first distinct lines of the HDFS sample are 46). Each of those is embedded once; the
//! others get its vector, the same vector the model would have given them.

use std::collections::HashMap;

use anyhow::{Result, bail};
use quick_cache::unsync::Cache;
use sha2::{Digest, Sha256};

use super::{Embedder, normalize};

/// Model inputs remembered: 8,192 × 384 floats is 12 MiB.
pub const CAPACITY: usize = 8_192;

/// An [`Embedder`] that embeds each distinct normalized text once, and remembers the
/// [`CAPACITY`] most useful ones across calls. They are remembered by the SHA-256 of the text,
/// so lines of any length cost the same 32 bytes.
pub struct Memoized<E> {
    inner: E,
    vectors: Cache<[u8; 32], Vec<f32>>,
}

impl<E: Embedder> Memoized<E> {
    /// Remembers what `inner` embeds.
    pub fn new(inner: E) -> Memoized<E> {
        Memoized { inner, vectors: Cache::new(CAPACITY) }
    }
}

impl<E: Embedder> Embedder for Memoized<E> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| Sha256::digest(normalize::for_embedding(t)).into()).collect();
        // One text per model input not remembered; the embedder is given the original text, so
        // a service that normalizes on its side sees what it would have seen without us.
        let mut asked: HashMap<[u8; 32], usize> = HashMap::new();
        let mut ask: Vec<&str> = Vec::new();
        for (text, key) in texts.iter().zip(&keys) {
            if self.vectors.get(key).is_none() && !asked.contains_key(key) {
                asked.insert(*key, ask.len());
                ask.push(text);
            }
        }
        let answers = if ask.is_empty() { Vec::new() } else { self.inner.embed(&ask)? };
        if answers.len() != ask.len() {
            bail!("{}: {} vectors for {} texts", self.inner.describe(), answers.len(), ask.len());
        }
        let out = keys
            .iter()
            .map(|key| match asked.get(key) {
                Some(&i) => answers[i].clone(),
                None => self.vectors.get(key).expect("remembered above").clone(),
            })
            .collect();
        for (key, i) in asked {
            self.vectors.insert(key, answers[i].clone());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what it is asked; a text's vector is its length and its first byte.
    struct Counting(Vec<String>);

    impl Embedder for Counting {
        fn describe(&self) -> String {
            "counting".into()
        }
        fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            self.0.extend(texts.iter().map(|t| t.to_string()));
            let key = |t: &str| normalize::for_embedding(t);
            Ok(texts.iter().map(|t| vec![key(t).len() as f32, key(t).as_bytes()[0] as f32]).collect())
        }
    }

    #[test]
    fn each_model_input_is_embedded_once_and_every_text_gets_its_vector_in_order() {
        let mut memo = Memoized::new(Counting(Vec::new()));
        let first = memo.embed(&["block 1 to 10.0.0.1", "block 22 to 10.0.0.2", "Served 3"]).unwrap();
        assert_eq!(memo.inner.0, ["block 1 to 10.0.0.1", "Served 3"]);
        assert_eq!(first[0], first[1]);
        assert_eq!(first[2], vec!["served <num>".len() as f32, b's' as f32]);

        let second = memo.embed(&["served 4", "block 5 to 10.0.0.9", "new line"]).unwrap();
        assert_eq!(memo.inner.0.len(), 3, "only the unseen input is embedded: {:?}", memo.inner.0);
        assert_eq!(second[0], first[2]);
        assert_eq!(second[1], first[0]);
        assert_eq!(memo.embed(&[]).unwrap(), Vec::<Vec<f32>>::new());
    }
}
