//! The BERT encoder of all-MiniLM-L6-v2 (6 layers, 384 wide, 12 heads), read from its
//! safetensors, with sentence-transformers' mean pooling and L2 normalization.
//!
//! A batch's token sequences are concatenated, not padded: the linear layers (nearly all the
//! work) run as one matrix product over every token of the batch, attention runs per sequence.
//! The products are rten-gemm's, with its kernels chosen at run time (AVX-512/AVX2 on x86-64,
//! NEON on aarch64). In [`Precision::Int8`] the linear layers take int8 weights (symmetric, per
//! output channel) and u8 activations (asymmetric, per token), on the int8 dot-product
//! instructions (AVX-512 VNNI where the CPU has them). Attention runs as batched small products
//! per sequence ([`attention`]); the loops between the products (normalizing, quantizing,
//! dequantizing, GELU, softmax) run on SIMD chosen at run time ([`kernels`]). A pass reuses its
//! buffers from layer to layer.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use safetensors::SafeTensors;

mod attention;
mod kernels;
mod linear;

use kernels::Epilogue;
use linear::{Gemm, Linear, Scratch};

const HIDDEN: usize = 384;
const HEADS: usize = 12;
const HEAD_DIM: usize = HIDDEN / HEADS;
const LAYER_NORM_EPS: f32 = 1e-12;
/// Rows per parallel task in the per-row loops (a row is 384 to 1,536 values).
const ROWS_PER_TASK: usize = 4;

/// What `config.json` says of the shape the encoder is built for.
#[derive(serde::Deserialize)]
struct Config {
    hidden_size: usize,
    num_attention_heads: usize,
    hidden_act: String,
}

/// The arithmetic of the linear layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// 32-bit floats: the model's own vectors (sentence-transformers' to 1e-4).
    #[default]
    Fp32,
    /// 8-bit integer products: vectors within cosine ~0.996 of fp32's; faster than fp32 where the
    /// CPU has int8 dot products (AVX-512 VNNI), no faster on AVX2 alone.
    Int8,
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "int8" => Ok(Precision::Int8),
            _ => Err(format!("`{s}`: expected `fp32` or `int8`")),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        })
    }
}

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    up: Linear,
    down: Linear,
    out_norm: Norm,
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// The encoder, its weights in memory.
pub struct Encoder {
    words: Vec<f32>,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    precision: Precision,
}

impl Encoder {
    /// Reads a BERT's `config.json` (which must describe all-MiniLM-L6-v2's shape: 384 wide, 12
    /// heads, erf GELU) and its weights (`embeddings.*`, `encoder.layer.N.*`) from a safetensors
    /// file's bytes; every tensor's type and shape is checked.
    pub fn load(config: &[u8], bytes: &[u8], precision: Precision) -> Result<Encoder> {
        let config: Config = serde_json::from_slice(config).context("config.json")?;
        if (config.hidden_size, config.num_attention_heads, config.hidden_act.as_str()) != (HIDDEN, HEADS, "gelu") {
            bail!(
                "config.json describes a BERT {} wide with {} heads and `{}`; this encoder runs {HIDDEN} wide, {HEADS} heads, `gelu` (all-MiniLM-L6-v2)",
                config.hidden_size,
                config.num_attention_heads,
                config.hidden_act
            );
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow!("not a safetensors file: {e}"))?;
        let gemm = Gemm::new();
        let vocabulary = rows(&st, "embeddings.word_embeddings.weight")?;
        let max_positions = rows(&st, "embeddings.position_embeddings.weight")?;
        let norm = |name: &str| -> Result<Norm> {
            Ok(Norm { gamma: tensor(&st, &format!("{name}.weight"), &[HIDDEN])?, beta: tensor(&st, &format!("{name}.bias"), &[HIDDEN])? })
        };
        let mut layers = Vec::new();
        while st.tensor(&format!("encoder.layer.{}.attention.self.query.weight", layers.len())).is_ok() {
            let name = |part: &str| format!("encoder.layer.{}.{part}", layers.len());
            let linear = |parts: &[&str], inputs: usize| {
                Linear::load(&gemm, &st, &parts.iter().map(|p| name(p)).collect::<Vec<_>>(), inputs, precision)
            };
            let intermediate = rows(&st, &name("intermediate.dense.bias"))?;
            if intermediate == 0 {
                bail!("{}: an intermediate layer of no width", name("intermediate.dense"));
            }
            let layer = Layer {
                qkv: linear(&["attention.self.query", "attention.self.key", "attention.self.value"], HIDDEN)?,
                attention_out: linear(&["attention.output.dense"], HIDDEN)?,
                attention_norm: norm(&name("attention.output.LayerNorm"))?,
                up: linear(&["intermediate.dense"], HIDDEN)?,
                down: linear(&["output.dense"], intermediate)?,
                out_norm: norm(&name("output.LayerNorm"))?,
            };
            // The inputs were checked against their tensors; the outputs must be what the next
            // step reads.
            if (layer.qkv.outputs(), layer.attention_out.outputs(), layer.down.outputs()) != (3 * HIDDEN, HIDDEN, HIDDEN) {
                bail!("{}: attention or output projections of the wrong size", name("*"));
            }
            layers.push(layer);
        }
        if layers.is_empty() {
            bail!("no encoder layers (`encoder.layer.0.*`)");
        }
        Ok(Encoder {
            words: tensor(&st, "embeddings.word_embeddings.weight", &[vocabulary, HIDDEN])?,
            positions: tensor(&st, "embeddings.position_embeddings.weight", &[max_positions, HIDDEN])?,
            token_type: tensor(&st, "embeddings.token_type_embeddings.weight", &[2, HIDDEN])?[..HIDDEN].to_vec(),
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
            precision,
        })
    }

    /// The arithmetic of its linear layers.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The longest sequence it takes (its position embeddings).
    pub fn max_tokens(&self) -> usize {
        self.positions.len() / HIDDEN
    }

    /// One mean-pooled, unit-length vector per token sequence (each at most
    /// [`max_tokens`](Self::max_tokens) long, every id within the vocabulary).
    pub fn embed(&self, sequences: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let mut starts = Vec::with_capacity(sequences.len() + 1);
        starts.push(0);
        for s in sequences {
            if s.len() > self.max_tokens() {
                bail!("a sequence of {} tokens (at most {})", s.len(), self.max_tokens());
            }
            starts.push(starts.last().copied().unwrap_or(0) + s.len());
        }
        let tokens = starts.last().copied().unwrap_or(0);
        let mut x = vec![0f32; tokens * HIDDEN];
        let rows = x.chunks_exact_mut(HIDDEN);
        for (row, (position, &id)) in rows.zip(sequences.iter().flat_map(|s| s.iter().enumerate())) {
            let word = self
                .words
                .get(id as usize * HIDDEN..(id as usize + 1) * HIDDEN)
                .with_context(|| format!("token id {id} outside the vocabulary"))?;
            let position = &self.positions[position * HIDDEN..(position + 1) * HIDDEN];
            for (((v, &w), &p), &t) in row.iter_mut().zip(word).zip(position).zip(&self.token_type) {
                *v = w + p + t;
            }
        }
        self.embedding_norm.apply(&mut x);
        let gemm = Gemm::new();
        let (mut scratch, mut qkv, mut context, mut attended, mut hidden) = (Scratch::default(), vec![], vec![], vec![], vec![]);
        for layer in &self.layers {
            layer.qkv.apply(&gemm, &x, Epilogue::Plain, &mut scratch, &mut qkv);
            attention::attend(&qkv, &starts, &mut context);
            layer.attention_out.apply(&gemm, &context, Epilogue::Residual(&x), &mut scratch, &mut attended);
            layer.attention_norm.apply(&mut attended);
            layer.up.apply(&gemm, &attended, Epilogue::Gelu, &mut scratch, &mut hidden);
            layer.down.apply(&gemm, &hidden, Epilogue::Residual(&attended), &mut scratch, &mut x);
            layer.out_norm.apply(&mut x);
        }
        Ok(starts
            .windows(2)
            .map(|w| {
                let mut mean = vec![0f32; HIDDEN];
                for row in x[w[0] * HIDDEN..w[1] * HIDDEN].chunks_exact(HIDDEN) {
                    mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
                }
                let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                mean.iter_mut().for_each(|v| *v /= norm);
                mean
            })
            .collect())
    }
}

impl Norm {
    /// Layer normalization of each row, in place.
    fn apply(&self, x: &mut [f32]) {
        x.par_chunks_mut(HIDDEN)
            .with_min_len(ROWS_PER_TASK)
            .for_each(|row| kernels::layer_norm(row, &self.gamma, &self.beta, LAYER_NORM_EPS));
    }
}

/// A tensor by name, or an error naming it.
fn named<'a>(st: &SafeTensors<'a>, name: &str) -> Result<safetensors::tensor::TensorView<'a>> {
    st.tensor(name).with_context(|| format!("`{name}` missing"))
}

/// The first dimension of a tensor that has one (the rest is checked by [`tensor`]).
fn rows(st: &SafeTensors, name: &str) -> Result<usize> {
    let t = named(st, name)?;
    t.shape().first().copied().with_context(|| format!("`{name}` is a scalar"))
}

/// An f32 tensor of this shape, checked.
fn tensor(st: &SafeTensors, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let t = named(st, name)?;
    if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
        bail!("`{name}`: expected F32 {shape:?}, found {:?} {:?}", t.dtype(), t.shape());
    }
    Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// all-MiniLM-L6-v2's shape, as its `config.json` gives it.
    const CONFIG: &[u8] = br#"{"hidden_size": 384, "num_attention_heads": 12, "hidden_act": "gelu"}"#;

    #[test]
    fn a_hostile_weights_file_is_refused_with_the_tensor_named() {
        use safetensors::tensor::TensorView;
        assert!(Encoder::load(CONFIG, b"not a safetensors file", Precision::Fp32).is_err());
        let wider = br#"{"hidden_size": 768, "num_attention_heads": 12, "hidden_act": "gelu"}"#;
        let e = Encoder::load(wider, b"", Precision::Fp32).err().expect("refused");
        assert!(format!("{e:#}").contains("768 wide"), "{e:#}");
        let four = [0u8; 4];
        let scalar = TensorView::new(safetensors::Dtype::F32, vec![], &four).unwrap();
        let bytes = safetensors::serialize([("embeddings.word_embeddings.weight", scalar)], None).unwrap();
        let e = Encoder::load(CONFIG, &bytes, Precision::Int8).err().expect("refused");
        assert!(format!("{e:#}").contains("`embeddings.word_embeddings.weight` is a scalar"), "{e:#}");
        let six = [0u8; 24];
        let narrow = |_| TensorView::new(safetensors::Dtype::F32, vec![2, 3], &six).unwrap();
        let names = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"];
        let bytes = safetensors::serialize(names.iter().map(|n| (*n, narrow(n))), None).unwrap();
        let e = Encoder::load(CONFIG, &bytes, Precision::Fp32).err().expect("refused");
        assert!(format!("{e:#}").contains("no encoder layers"), "{e:#}");
    }

    /// Shapes that agree with each other but not with attention: refused before any text is.
    #[test]
    fn projections_of_the_wrong_size_are_refused() {
        use safetensors::tensor::TensorView;
        let shapes: Vec<(String, Vec<usize>)> = [
            ("embeddings.word_embeddings.weight", vec![1, HIDDEN]),
            ("embeddings.position_embeddings.weight", vec![4, HIDDEN]),
            ("embeddings.token_type_embeddings.weight", vec![2, HIDDEN]),
            ("embeddings.LayerNorm.weight", vec![HIDDEN]),
            ("embeddings.LayerNorm.bias", vec![HIDDEN]),
            ("encoder.layer.0.attention.self.query.weight", vec![1, HIDDEN]),
            ("encoder.layer.0.attention.self.query.bias", vec![1]),
            ("encoder.layer.0.attention.self.key.weight", vec![HIDDEN, HIDDEN]),
            ("encoder.layer.0.attention.self.key.bias", vec![HIDDEN]),
            ("encoder.layer.0.attention.self.value.weight", vec![HIDDEN, HIDDEN]),
            ("encoder.layer.0.attention.self.value.bias", vec![HIDDEN]),
            ("encoder.layer.0.attention.output.dense.weight", vec![HIDDEN, HIDDEN]),
            ("encoder.layer.0.attention.output.dense.bias", vec![HIDDEN]),
            ("encoder.layer.0.attention.output.LayerNorm.weight", vec![HIDDEN]),
            ("encoder.layer.0.attention.output.LayerNorm.bias", vec![HIDDEN]),
            ("encoder.layer.0.intermediate.dense.weight", vec![8, HIDDEN]),
            ("encoder.layer.0.intermediate.dense.bias", vec![8]),
            ("encoder.layer.0.output.dense.weight", vec![HIDDEN, 8]),
            ("encoder.layer.0.output.dense.bias", vec![HIDDEN]),
            ("encoder.layer.0.output.LayerNorm.weight", vec![HIDDEN]),
            ("encoder.layer.0.output.LayerNorm.bias", vec![HIDDEN]),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        let refusal = |shapes: &[(String, Vec<usize>)]| {
            let data: Vec<Vec<u8>> = shapes.iter().map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()]).collect();
            let views =
                shapes.iter().zip(&data).map(|((n, s), d)| (n.clone(), TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap()));
            let bytes = safetensors::serialize(views, None).unwrap();
            format!("{:#}", Encoder::load(CONFIG, &bytes, Precision::Fp32).err().expect("refused"))
        };
        let e = refusal(&shapes);
        assert!(e.contains("encoder.layer.0.*: attention or output projections of the wrong size"), "{e}");
        // The query projection mended, the intermediate layer of width 0 (which the products
        // would divide by).
        let mended: Vec<(String, Vec<usize>)> = shapes
            .into_iter()
            .map(|(n, s)| match n.as_str() {
                "encoder.layer.0.attention.self.query.weight" => (n, vec![HIDDEN, HIDDEN]),
                "encoder.layer.0.attention.self.query.bias" => (n, vec![HIDDEN]),
                "encoder.layer.0.intermediate.dense.weight" => (n, vec![0, HIDDEN]),
                "encoder.layer.0.intermediate.dense.bias" => (n, vec![0]),
                "encoder.layer.0.output.dense.weight" => (n, vec![HIDDEN, 0]),
                _ => (n, s),
            })
            .collect();
        let e = refusal(&mended);
        assert!(e.contains("encoder.layer.0.intermediate.dense: an intermediate layer of no width"), "{e}");
    }
}
