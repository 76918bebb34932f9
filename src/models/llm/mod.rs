//! Decoder-only LLMs of the Llama family (Llama 2/3/3.1/3.2, Mistral, Qwen2) and Gemma 3 (text): pre-norm blocks of
//! grouped-query attention with rotary embeddings and a gated MLP, written once against the backend trait. Gemma 3
//! adds norms after attention and around the MLP, per-head query and key norms, gains of `1 + weight`, a scaled
//! embedding, a tanh-GELU gate, and sliding-window layers with their own rope base (see [`Gemma3`]). Every forward
//! pass goes through the KV cache, so prefill and decoding are the same code; a steering offset can be added to
//! the output of one block.

mod config;
mod random;

pub use config::{Gemma3, LlmConfig, RopeScaling, SUPPORTED};
pub use random::{initialisation, parameter_count, random_weights, shape_config};

use crate::backend::{Activation, Backend, CachedRow, Gate, HeadShape, KvLayout};
use crate::checkpoint::WeightStore;
use anyhow::{Result, ensure};

struct Block<B: Backend> {
    input_norm: B::Weight,
    qkv: B::Weight,
    qkv_bias: Option<B::Weight>,
    out: B::Weight,
    /// The norm after attention: before the MLP (Llama's `post_attention_layernorm`), or of the attention output
    /// before its residual add (Gemma's).
    post_norm: B::Weight,
    gate_up: B::Weight,
    down: B::Weight,
    gemma3: Option<Gemma3Norms<B>>,
}

/// Gemma 3's further norms of a block.
struct Gemma3Norms<B: Backend> {
    q_norm: B::Weight,
    k_norm: B::Weight,
    pre_feedforward: B::Weight,
    post_feedforward: B::Weight,
}

/// An offset added to the output of block `layer` at the given rows of a forward call.
pub struct BlockOffset<'a, B: Backend> {
    pub layer: usize,
    /// Rows of the call that receive an offset, and their offsets `[rows.len(), hidden]`.
    pub rows: &'a [usize],
    pub offsets: &'a B::Tensor,
    /// Also run the blocks after `layer` without the offset, so that the cache keeps the unsteered keys and values
    /// (the outputs still come from the steered pass).
    pub clean_cache: bool,
}

pub struct Llm<B: Backend> {
    pub config: LlmConfig,
    embed: B::Weight,
    blocks: Vec<Block<B>>,
    final_norm: B::Weight,
    lm_head: B::Weight,
    /// Per-pair inverse frequencies of the rotary embedding, `[1, head_dim / 2]` (of the full-attention layers).
    inv_freq: B::Tensor,
    /// Gemma 3's inverse frequencies of the sliding-window layers.
    local_inv_freq: Option<B::Tensor>,
    /// Added to every RMS norm gain: 1 for Gemma's `1 + weight`, else 0.
    norm_offset: f32,
    /// The embedding's scale: `sqrt(hidden_size)` for Gemma, else 1.
    embed_scale: f32,
}

/// One parameter of the model: the stored tensors whose rows it concatenates, with their shapes.
type Parts<'a> = &'a [(String, Vec<usize>)];

impl<B: Backend> Llm<B> {
    /// The model of `config` over the weights of `store`, once the config is checked against them
    /// ([`LlmConfig::check_weights`]).
    pub fn from_store(backend: &B, store: &WeightStore, config: LlmConfig) -> Result<Self> {
        let _span = tracing::info_span!("load_llm", architecture = %config.architecture).entered();
        config.check_weights(store)?;
        Self::build(backend, config, |parts| {
            let stored = parts.iter().map(|(name, shape)| store.get_shaped(name, shape)).collect::<Result<Vec<_>>>()?;
            backend.load_weight(&stored)
        })
    }

    /// A model of this config with random weights made by the backend itself (on the device for CUDA), each
    /// parameter initialised as [`random_weights`] does; for benchmarks of real shapes.
    pub fn random(backend: &B, config: LlmConfig, seed: u64) -> Result<Self> {
        let _span = tracing::info_span!("random_llm", architecture = %config.architecture).entered();
        let mut index = 0u64;
        let shape = config.clone();
        Self::build(backend, config, |parts| {
            let (name, dims) = &parts[0];
            let rows: usize = parts.iter().map(|(_, dims)| dims[0]).sum();
            let cols: usize = dims.iter().skip(1).product();
            let (mean, std) = random::initialisation(&shape, name, cols);
            index += 1;
            backend.random_weight(rows, cols, mean, std, crate::sampling::mix64(seed ^ index))
        })
    }

    /// Builds the model from a loader of parameters (names as in HF checkpoints).
    fn build(backend: &B, config: LlmConfig, mut load: impl FnMut(Parts) -> Result<B::Weight>) -> Result<Self> {
        let (d, f, v) = (config.hidden_size, config.intermediate_size, config.vocab_size);
        let (q, kv) = (config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim);
        if let Some(g) = &config.gemma3 {
            ensure!(
                g.sliding_layers.len() == config.num_layers,
                "Gemma 3 config: layer kinds (sliding or full) of {} layers for a model of {}",
                g.sliding_layers.len(),
                config.num_layers
            );
        }
        let part = |name: String, shape: &[usize]| (name, shape.to_vec());
        let mut blocks = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let p = format!("model.layers.{i}");
            let qkv = [
                part(format!("{p}.self_attn.q_proj.weight"), &[q, d]),
                part(format!("{p}.self_attn.k_proj.weight"), &[kv, d]),
                part(format!("{p}.self_attn.v_proj.weight"), &[kv, d]),
            ];
            let qkv_bias = if config.qkv_bias {
                Some(load(&[
                    part(format!("{p}.self_attn.q_proj.bias"), &[q]),
                    part(format!("{p}.self_attn.k_proj.bias"), &[kv]),
                    part(format!("{p}.self_attn.v_proj.bias"), &[kv]),
                ])?)
            } else {
                None
            };
            let gemma3 = if config.gemma3.is_some() {
                let h = config.head_dim;
                Some(Gemma3Norms {
                    q_norm: load(&[part(format!("{p}.self_attn.q_norm.weight"), &[h])])?,
                    k_norm: load(&[part(format!("{p}.self_attn.k_norm.weight"), &[h])])?,
                    pre_feedforward: load(&[part(format!("{p}.pre_feedforward_layernorm.weight"), &[d])])?,
                    post_feedforward: load(&[part(format!("{p}.post_feedforward_layernorm.weight"), &[d])])?,
                })
            } else {
                None
            };
            blocks.push(Block {
                gemma3,
                input_norm: load(&[part(format!("{p}.input_layernorm.weight"), &[d])])?,
                qkv: load(&qkv)?,
                qkv_bias,
                out: load(&[part(format!("{p}.self_attn.o_proj.weight"), &[d, q])])?,
                post_norm: load(&[part(format!("{p}.post_attention_layernorm.weight"), &[d])])?,
                gate_up: load(&[
                    part(format!("{p}.mlp.gate_proj.weight"), &[f, d]),
                    part(format!("{p}.mlp.up_proj.weight"), &[f, d]),
                ])?,
                down: load(&[part(format!("{p}.mlp.down_proj.weight"), &[d, f])])?,
            });
        }
        let head_name = if config.tie_word_embeddings { "model.embed_tokens.weight" } else { "lm_head.weight" };
        let inv_freq = config.inv_freq();
        let local_inv_freq = config.local_inv_freq().map(|f| backend.upload(&f, 1, f.len())).transpose()?;
        let gemma = config.gemma3.is_some();
        Ok(Self {
            local_inv_freq,
            norm_offset: if gemma { 1.0 } else { 0.0 },
            // HF forms sqrt(hidden) in f64 and stores it as an f32 tensor (which the backend may round further).
            embed_scale: if gemma { (d as f64).sqrt() as f32 } else { 1.0 },
            embed: load(&[part("model.embed_tokens.weight".into(), &[v, d])])?,
            final_norm: load(&[part("model.norm.weight".into(), &[d])])?,
            lm_head: load(&[part(head_name.into(), &[v, d])])?,
            inv_freq: backend.upload(&inv_freq, 1, inv_freq.len())?,
            blocks,
            config,
        })
    }

    /// A KV cache layout for this model: group prefixes of the given capacities, and sequences as (group,
    /// capacity).
    pub fn kv_layout(&self, prefixes: Vec<usize>, sequences: Vec<(usize, usize)>) -> KvLayout {
        let c = &self.config;
        KvLayout { layers: c.num_layers, kv_heads: c.num_kv_heads, head_dim: c.head_dim, prefixes, sequences }
    }

    pub fn heads(&self) -> HeadShape {
        HeadShape { heads: self.config.num_heads, kv_heads: self.config.num_kv_heads, head_dim: self.config.head_dim }
    }

    /// Blocks `range` (not empty) over the hidden states `input`. Each residual add is fused with the RMS norm
    /// that follows it, and in Llama-family blocks with the product before it (`linear_add_rms_norm`); their QKV
    /// product carries rope and the cache store, their gate/up product the gate. The last Llama block's MLP
    /// output is added in its projection's epilogue.
    fn run_blocks(
        &self,
        backend: &B,
        input: &B::Tensor,
        range: std::ops::Range<usize>,
        cache: &mut B::KvCache,
        rows: &B::Rows,
    ) -> Result<B::Tensor> {
        let (eps, offset) = (self.config.rms_norm_eps, self.norm_offset);
        let last = range.end.saturating_sub(1);
        // The residual stream: `input` until the first residual add.
        let mut x: Option<B::Tensor> = None;
        // The next block's normed input, where the add before it already made it.
        let mut normed = None::<B::Tensor>;
        // Gemma's MLP output, added at the next block's input norm.
        let mut pending = None::<B::Tensor>;
        for layer in range {
            let block = &self.blocks[layer];
            let h = match (normed.take(), pending.take()) {
                (Some(h), _) => h,
                (None, Some(delta)) => {
                    let residual = x.as_ref().unwrap_or(input);
                    let (sum, h) = backend.add_rms_norm(residual, &delta, &block.input_norm, offset, eps)?;
                    x = Some(sum);
                    h
                }
                (None, None) => backend.rms_norm(x.as_ref().unwrap_or(input), &block.input_norm, offset, eps)?,
            };
            let scoring = self.config.scoring(layer);
            let inv_freq = self.inv_freq_of(layer);
            let Some(g) = &block.gemma3 else {
                let qkv_bias = block.qkv_bias.as_ref();
                let qkv =
                    backend.linear_rope_store(&h, &block.qkv, qkv_bias, cache, layer, rows, self.heads(), inv_freq)?;
                let attended = backend.attend_cached(&qkv, cache, layer, rows, self.heads(), scoring)?;
                let residual = x.as_ref().unwrap_or(input);
                let (sum, h) =
                    backend.linear_add_rms_norm(&attended, &block.out, residual, &block.post_norm, offset, eps)?;
                let h = backend.linear_gated(&h, &block.gate_up, Gate::Silu)?;
                if layer == last {
                    x = Some(backend.linear(&h, &block.down, None, Activation::None, Some(&sum))?);
                } else {
                    let next = &self.blocks[layer + 1].input_norm;
                    let (sum, h) = backend.linear_add_rms_norm(&h, &block.down, &sum, next, offset, eps)?;
                    x = Some(sum);
                    normed = Some(h);
                }
                continue;
            };
            let qkv = backend.linear(&h, &block.qkv, block.qkv_bias.as_ref(), Activation::None, None)?;
            let qkv = backend.head_rms_norm(&qkv, self.heads(), &g.q_norm, &g.k_norm, offset, eps)?;
            let qkv = backend.rope(&qkv, rows, self.heads(), inv_freq)?;
            let attended = backend.attention_cached(&qkv, cache, layer, rows, self.heads(), scoring)?;
            let delta = backend.linear(&attended, &block.out, None, Activation::None, None)?;
            let residual = x.as_ref().unwrap_or(input);
            let delta = backend.rms_norm(&delta, &block.post_norm, offset, eps)?;
            let (sum, h) = backend.add_rms_norm(residual, &delta, &g.pre_feedforward, offset, eps)?;
            x = Some(sum);
            let h = backend.linear_gated(&h, &block.gate_up, Gate::GeluTanh)?;
            let down = backend.linear(&h, &block.down, None, Activation::None, None)?;
            let delta = backend.rms_norm(&down, &g.post_feedforward, offset, eps)?;
            if layer == last {
                // The fused add's norm is not needed after the last block; its sum is rounded as every other add.
                let residual = x.as_ref().unwrap_or(input);
                x = Some(backend.add_rms_norm(residual, &delta, &g.post_feedforward, offset, eps)?.0);
            } else {
                pending = Some(delta);
            }
        }
        x.ok_or_else(|| anyhow::anyhow!("no block to run"))
    }

    /// The rotary frequencies of block `layer`: Gemma 3's local ones in its sliding-window layers.
    fn inv_freq_of(&self, layer: usize) -> &B::Tensor {
        match (&self.local_inv_freq, &self.config.gemma3) {
            (Some(local), Some(g)) if g.sliding_layers[layer] => local,
            _ => &self.inv_freq,
        }
    }

    /// Runs `ids` (one per row, placed by `rows` in the cache) through the first `blocks` blocks, with an optional
    /// offset after one of them, and returns the hidden states `[rows, hidden]`.
    pub fn forward_hidden(
        &self,
        backend: &B,
        cache: &mut B::KvCache,
        ids: &[u32],
        rows: &[CachedRow],
        blocks: usize,
        offset: Option<&BlockOffset<B>>,
    ) -> Result<B::Tensor> {
        self.forward_hidden_replacing(backend, cache, ids, rows, blocks, offset, &[], &[])
    }

    /// [`Llm::forward_hidden`] with the embeddings of some positions replaced (an image's features at its image
    /// tokens): `replaced` are indices into `ids`, `values` their `[replaced, hidden]` embeddings.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_hidden_replacing(
        &self,
        backend: &B,
        cache: &mut B::KvCache,
        ids: &[u32],
        rows: &[CachedRow],
        blocks: usize,
        offset: Option<&BlockOffset<B>>,
        replaced: &[usize],
        values: &[f32],
    ) -> Result<B::Tensor> {
        let d = self.config.hidden_size;
        ensure!(
            values.len() == replaced.len() * d,
            "{} values for {} replaced embeddings",
            values.len(),
            replaced.len()
        );
        if let Some(bad) = replaced.iter().find(|&&r| r >= ids.len()) {
            anyhow::bail!("embedding {bad} replaced in a prompt of {} tokens", ids.len());
        }
        ensure!(ids.len() == rows.len(), "{} token ids for {} cache rows", ids.len(), rows.len());
        ensure!(blocks <= self.config.num_layers, "the model has {} blocks, not {blocks}", self.config.num_layers);
        if let Some(bad) = rows.iter().find(|r| r.position >= self.config.max_positions) {
            anyhow::bail!(
                "position {} is past the model's context of {} tokens",
                bad.position,
                self.config.max_positions
            );
        }
        let rows = &backend.cache_rows(cache, rows)?;
        let mut x = self.embed(backend, ids)?;
        if !replaced.is_empty() {
            // The replacement is added as the difference to the token embeddings it replaces.
            let current = backend.download(&backend.gather_rows(&x, replaced)?)?;
            let delta: Vec<f32> = values.iter().zip(&current).map(|(v, c)| v - c).collect();
            x = backend.add_rows(&x, replaced, &backend.upload(&delta, replaced.len(), d)?)?;
        }
        self.forward_embedded(backend, cache, &x, rows, blocks, offset)
    }

    /// The token embeddings of `ids` (scaled, for Gemma), `[ids, hidden]`.
    pub fn embed(&self, backend: &B, ids: &[u32]) -> Result<B::Tensor> {
        backend.embed(ids, &self.embed, self.embed_scale)
    }

    /// [`Llm::forward_hidden`] from embeddings `x` and prepared cache rows. It moves no data between host and
    /// device, so a backend can record it once and replay it (a decode step).
    pub fn forward_embedded(
        &self,
        backend: &B,
        cache: &mut B::KvCache,
        x: &B::Tensor,
        rows: &B::Rows,
        blocks: usize,
        offset: Option<&BlockOffset<B>>,
    ) -> Result<B::Tensor> {
        ensure!(
            (1..=self.config.num_layers).contains(&blocks),
            "the model has {} blocks, not {blocks}",
            self.config.num_layers
        );
        let offset = offset.filter(|o| o.layer < blocks && !o.rows.is_empty());
        let first = offset.map_or(blocks, |o| o.layer + 1);
        let x = self.run_blocks(backend, x, 0..first, cache, rows)?;
        let Some(offset) = offset else { return Ok(x) };
        let steered = backend.add_rows(&x, offset.rows, offset.offsets)?;
        if first == blocks {
            return Ok(steered);
        }
        let out = self.run_blocks(backend, &steered, first..blocks, cache, rows)?;
        if offset.clean_cache {
            self.run_blocks(backend, &x, first..blocks, cache, rows)?;
        }
        Ok(out)
    }

    /// Logits `[rows.len(), vocab]` of the given rows of final hidden states.
    pub fn logits(&self, backend: &B, hidden: &B::Tensor, rows: &[usize]) -> Result<B::Tensor> {
        let picked = backend.gather_rows(hidden, rows)?;
        let normed = backend.rms_norm(&picked, &self.final_norm, self.norm_offset, self.config.rms_norm_eps)?;
        backend.linear(&normed, &self.lm_head, None, Activation::None, None)
    }
}

/// An LLM checkpoint opened for use: the model, its tokenizer, its chat template (if any) and its stop tokens.
pub struct LlmModel<B: Backend> {
    pub checkpoint: crate::checkpoint::Checkpoint,
    pub llm: Llm<B>,
    pub tokenizer: crate::tokenizer::LlmTokenizer,
    pub chat: Option<crate::chat::ChatTemplate>,
    pub stop_tokens: Vec<u32>,
}

impl<B: Backend> LlmModel<B> {
    pub fn open(backend: &B, model: &str) -> Result<Self> {
        use anyhow::Context;
        let checkpoint = crate::checkpoint::Checkpoint::open(model)?;
        let config =
            LlmConfig::from_json(&checkpoint.config).with_context(|| format!("model {}", checkpoint.dir.display()))?;
        // Checked here too, so that a config at odds with the weights is reported before the tokenizer is built.
        config.check_weights(&checkpoint.weights).with_context(|| format!("model {}", checkpoint.dir.display()))?;
        let (tokenizer, chat, stop_tokens) = crate::tokenizer::llm_text(&checkpoint)?;
        let llm = Llm::from_store(backend, &checkpoint.weights, config)
            .with_context(|| format!("loading the LLM from {}", checkpoint.dir.display()))?;
        Ok(Self { checkpoint, llm, tokenizer, chat, stop_tokens })
    }

    /// Prompt ids for a system and user message rendered through the chat template, with the generation prompt.
    pub fn chat_prompt(&self, system: Option<&str>, user: &str) -> Result<Vec<u32>> {
        use crate::chat::Message;
        let Some(chat) = &self.chat else {
            anyhow::bail!(
                "{} has no chat template (tokenizer_config.json has no chat_template and there is no chat_template.jinja); \
                 use --prompt for plain text",
                self.checkpoint.dir.display()
            );
        };
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(Message { role: "system".into(), content: system.into() });
        }
        messages.push(Message { role: "user".into(), content: user.into() });
        self.tokenizer.encode_rendered(&chat.render(&messages, true)?)
    }
}
