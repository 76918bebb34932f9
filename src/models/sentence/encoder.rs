//! The post-norm transformer encoder of BERT and MPNet: embeddings (tokens plus positions, plus BERT's token type
//! 0) and a layer norm, then per layer `x = LN(x + attention(x))`, `x = LN(x + W2 gelu(W1 x))`. MPNet adds to
//! every layer's attention scores one bias per head from the relative position's bucket (one table shared by all
//! layers). A batch holds sentences of one length, so nothing is padded and no mask is needed.

use super::config::{EncoderConfig, Family};
use crate::backend::{Activation, AttentionShape, Backend};
use crate::checkpoint::{StoredTensor, WeightStore};
use anyhow::{Context, Result, ensure};

struct Layer<B: Backend> {
    qkv: B::Weight,
    qkv_bias: B::Weight,
    out: B::Weight,
    out_bias: B::Weight,
    attention_norm: (B::Weight, B::Weight),
    fc1: B::Weight,
    fc1_bias: B::Weight,
    fc2: B::Weight,
    fc2_bias: B::Weight,
    output_norm: (B::Weight, B::Weight),
}

pub struct Encoder<B: Backend> {
    config: EncoderConfig,
    tokens: B::Weight,
    /// Row `p`: the embedding of a sentence's position `p` (MPNet's table from its first position on; BERT's
    /// with token type 0 added), so that a batch embeds as tokens plus positions `0..seq`.
    positions: B::Weight,
    embedding_norm: (B::Weight, B::Weight),
    layers: Vec<Layer<B>>,
    /// MPNet's `[buckets, heads]` relative position table, on the host (the bias is built per sentence length).
    relative: Option<Vec<f32>>,
}

/// The weights' names: the prefix the checkpoint stores them under (`""`, `mpnet.` or `bert.`) and the names of a
/// layer's parts, which differ by family.
struct Names {
    prefix: &'static str,
    family: Family,
}

impl Names {
    fn find(store: &WeightStore, family: Family) -> Result<Self> {
        let candidates: &[&'static str] = match family {
            Family::Mpnet => &["", "mpnet."],
            Family::Bert => &["", "bert."],
        };
        let prefix = candidates
            .iter()
            .find(|p| store.get(&format!("{p}embeddings.word_embeddings.weight")).is_ok())
            .copied()
            .context("no embeddings.word_embeddings.weight (with or without the model's prefix) in the weights")?;
        Ok(Self { prefix, family })
    }

    fn get(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The query, key, value and output projections and the two norms of layer `i`.
    fn layer(&self, i: usize) -> [String; 7] {
        let p = format!("{}encoder.layer.{i}", self.prefix);
        match self.family {
            Family::Mpnet => [
                format!("{p}.attention.attn.q"),
                format!("{p}.attention.attn.k"),
                format!("{p}.attention.attn.v"),
                format!("{p}.attention.attn.o"),
                format!("{p}.attention.LayerNorm"),
                format!("{p}.intermediate.dense"),
                format!("{p}.output"),
            ],
            Family::Bert => [
                format!("{p}.attention.self.query"),
                format!("{p}.attention.self.key"),
                format!("{p}.attention.self.value"),
                format!("{p}.attention.output.dense"),
                format!("{p}.attention.output.LayerNorm"),
                format!("{p}.intermediate.dense"),
                format!("{p}.output"),
            ],
        }
    }
}

fn load_norm<B: Backend>(backend: &B, store: &WeightStore, prefix: &str, dim: usize) -> Result<(B::Weight, B::Weight)> {
    let gain = store.get_shaped(&format!("{prefix}.weight"), &[dim])?;
    let bias = store.get_shaped(&format!("{prefix}.bias"), &[dim])?;
    Ok((backend.load_weight(&[gain])?, backend.load_weight(&[bias])?))
}

/// The buckets MPNet's relative positions fall in: HF computes 32 whatever the table's size.
pub const RELATIVE_BUCKETS: usize = 32;

/// MPNet's bucket of a relative position `j - i` (key minus query), as HF's `relative_position_bucket` computes it
/// with 32 buckets and a largest distance of 128 (half the buckets for each sign; exact below a quarter, then
/// logarithmic), in f32 as it does.
pub fn relative_bucket(relative: i64) -> usize {
    let half = RELATIVE_BUCKETS / 2;
    let max_exact = half / 2;
    let n = -relative;
    let sign = if n < 0 { half } else { 0 };
    let n = n.unsigned_abs() as usize;
    if n < max_exact {
        return sign + n;
    }
    let ratio = (n as f32 / max_exact as f32).ln() / (128.0f64 / max_exact as f64).ln() as f32;
    let large = max_exact + (ratio * (half - max_exact) as f32) as usize;
    sign + large.min(half - 1)
}

impl<B: Backend> Encoder<B> {
    pub fn load(backend: &B, store: &WeightStore, config: &EncoderConfig) -> Result<Self> {
        let (d, f) = (config.hidden_size, config.intermediate_size);
        let names = Names::find(store, config.family)?;
        let get = |name: &str, shape: &[usize]| store.get_shaped(&names.get(name), shape);
        let tokens = backend.load_weight(&[get("embeddings.word_embeddings.weight", &[config.vocab_size, d])?])?;
        let table = get("embeddings.position_embeddings.weight", &[config.max_positions, d])?.to_f32();
        let mut positions = table[config.first_position() * d..].to_vec();
        if config.family == Family::Bert {
            let types = get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, d])?.to_f32();
            for row in positions.chunks_exact_mut(d) {
                row.iter_mut().zip(&types[..d]).for_each(|(p, t)| *p += t);
            }
        }
        let rows = positions.len() / d;
        let positions = StoredTensor::from_f32("sentence positions", &[rows, d], &positions);
        let relative = match config.family {
            Family::Mpnet => Some(
                get("encoder.relative_attention_bias.weight", &[config.relative_buckets, config.num_heads])?.to_f32(),
            ),
            Family::Bert => None,
        };
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let [q, k, v, o, attention_norm, intermediate, output] = names.layer(i);
            let w = |name: &str, shape: &[usize]| store.get_shaped(name, shape);
            let load =
                |name: String, shape: &[usize]| -> Result<B::Weight> { backend.load_weight(&[w(&name, shape)?]) };
            let qkv = [
                w(&format!("{q}.weight"), &[d, d])?,
                w(&format!("{k}.weight"), &[d, d])?,
                w(&format!("{v}.weight"), &[d, d])?,
            ];
            let qkv_bias =
                [w(&format!("{q}.bias"), &[d])?, w(&format!("{k}.bias"), &[d])?, w(&format!("{v}.bias"), &[d])?];
            layers.push(Layer {
                qkv: backend.load_weight(&qkv)?,
                qkv_bias: backend.load_weight(&qkv_bias)?,
                out: load(format!("{o}.weight"), &[d, d])?,
                out_bias: load(format!("{o}.bias"), &[d])?,
                attention_norm: load_norm(backend, store, &attention_norm, d)?,
                fc1: load(format!("{intermediate}.weight"), &[f, d])?,
                fc1_bias: load(format!("{intermediate}.bias"), &[f])?,
                fc2: load(format!("{output}.dense.weight"), &[d, f])?,
                fc2_bias: load(format!("{output}.dense.bias"), &[d])?,
                output_norm: load_norm(backend, store, &format!("{output}.LayerNorm"), d)?,
            });
        }
        Ok(Self {
            config: config.clone(),
            tokens,
            positions: backend.load_weight(&[&positions])?,
            embedding_norm: load_norm(backend, store, &names.get("embeddings.LayerNorm"), d)?,
            layers,
            relative,
        })
    }

    /// The most tokens a sentence may have.
    pub fn max_tokens(&self) -> usize {
        self.config.max_positions - self.config.first_position()
    }

    /// MPNet's bias of the attention scores for sentences of `seq` tokens: `[heads * seq, seq]`.
    fn relative_bias(&self, seq: usize) -> Option<Vec<f32>> {
        let table = self.relative.as_ref()?;
        let heads = self.config.num_heads;
        let mut bias = vec![0.0f32; heads * seq * seq];
        for i in 0..seq {
            for j in 0..seq {
                let bucket = relative_bucket(j as i64 - i as i64);
                for h in 0..heads {
                    bias[(h * seq + i) * seq + j] = table[bucket * heads + h];
                }
            }
        }
        Some(bias)
    }

    /// The last hidden states `[batch * seq, hidden]` of `batch` sentences of `seq` tokens each (`ids` row by row).
    pub fn forward(&self, backend: &B, ids: &[u32], batch: usize, seq: usize) -> Result<B::Tensor> {
        let c = &self.config;
        ensure!(ids.len() == batch * seq, "{} ids for {batch} sentences of {seq} tokens", ids.len());
        ensure!(
            seq <= self.max_tokens(),
            "a sentence of {seq} tokens is longer than the model's {}",
            self.max_tokens()
        );
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= c.vocab_size) {
            anyhow::bail!("token id {bad} is outside the model's vocabulary of {}", c.vocab_size);
        }
        let eps = c.layer_norm_eps;
        let x = backend.embed_tokens(ids, batch, seq, &self.tokens, &self.positions)?;
        let mut x = backend.layer_norm(&x, &self.embedding_norm.0, &self.embedding_norm.1, eps)?;
        let bias = self.relative_bias(seq).map(|b| backend.upload(&b, c.num_heads * seq, seq)).transpose()?;
        let shape = AttentionShape {
            batch,
            seq,
            heads: c.num_heads,
            kv_heads: c.num_heads,
            head_dim: c.head_dim(),
            causal: false,
        };
        for layer in &self.layers {
            let qkv = backend.linear(&x, &layer.qkv, Some(&layer.qkv_bias), Activation::None, None)?;
            let attended = backend.attention(&qkv, shape, bias.as_ref())?;
            let h = backend.linear(&attended, &layer.out, Some(&layer.out_bias), Activation::None, Some(&x))?;
            x = backend.layer_norm(&h, &layer.attention_norm.0, &layer.attention_norm.1, eps)?;
            let h = backend.linear(&x, &layer.fc1, Some(&layer.fc1_bias), c.activation, None)?;
            let h = backend.linear(&h, &layer.fc2, Some(&layer.fc2_bias), Activation::None, Some(&x))?;
            x = backend.layer_norm(&h, &layer.output_norm.0, &layer.output_norm.1, eps)?;
        }
        Ok(x)
    }
}
