//! Decoder-only LLMs of the Llama family (Llama 2/3/3.1/3.2, Mistral, Qwen2): pre-norm blocks of grouped-query
//! attention with rotary embeddings and a SiLU-gated MLP, written once against the backend trait. Every forward
//! pass goes through the KV cache, so prefill and decoding are the same code; a steering offset can be added to
//! the output of one block.

mod config;
mod random;

pub use config::{LlmConfig, RopeScaling, SUPPORTED};
pub use random::{parameter_count, random_weights, shape_config};

use crate::backend::{Activation, Backend, CachedRow, HeadShape, KvLayout};
use crate::checkpoint::WeightStore;
use anyhow::{Result, ensure};

struct Block<B: Backend> {
    input_norm: B::Weight,
    qkv: B::Weight,
    qkv_bias: Option<B::Weight>,
    out: B::Weight,
    post_norm: B::Weight,
    gate_up: B::Weight,
    down: B::Weight,
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
    inv_freq: Vec<f32>,
}

impl<B: Backend> Llm<B> {
    pub fn from_store(backend: &B, store: &WeightStore, config: LlmConfig) -> Result<Self> {
        let _span = tracing::info_span!("load_llm", architecture = %config.architecture).entered();
        let (d, f, v) = (config.hidden_size, config.intermediate_size, config.vocab_size);
        let (q, kv) = (config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim);
        let load = |name: &str, shape: &[usize]| -> Result<B::Weight> {
            backend.load_weight(&[store.get_shaped(name, shape)?])
        };
        let mut blocks = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let p = format!("model.layers.{i}");
            let get = |name: &str, shape: &[usize]| store.get_shaped(&format!("{p}.{name}"), shape);
            let qkv = [
                get("self_attn.q_proj.weight", &[q, d])?,
                get("self_attn.k_proj.weight", &[kv, d])?,
                get("self_attn.v_proj.weight", &[kv, d])?,
            ];
            let qkv_bias = if config.qkv_bias {
                let parts = [
                    get("self_attn.q_proj.bias", &[q])?,
                    get("self_attn.k_proj.bias", &[kv])?,
                    get("self_attn.v_proj.bias", &[kv])?,
                ];
                Some(backend.load_weight(&parts)?)
            } else {
                None
            };
            blocks.push(Block {
                input_norm: load(&format!("{p}.input_layernorm.weight"), &[d])?,
                qkv: backend.load_weight(&qkv)?,
                qkv_bias,
                out: load(&format!("{p}.self_attn.o_proj.weight"), &[d, q])?,
                post_norm: load(&format!("{p}.post_attention_layernorm.weight"), &[d])?,
                gate_up: backend
                    .load_weight(&[get("mlp.gate_proj.weight", &[f, d])?, get("mlp.up_proj.weight", &[f, d])?])?,
                down: load(&format!("{p}.mlp.down_proj.weight"), &[d, f])?,
            });
        }
        let head_name = if config.tie_word_embeddings { "model.embed_tokens.weight" } else { "lm_head.weight" };
        Ok(Self {
            embed: load("model.embed_tokens.weight", &[v, d])?,
            final_norm: load("model.norm.weight", &[d])?,
            lm_head: load(head_name, &[v, d])?,
            inv_freq: config.inv_freq(),
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

    fn run_blocks(
        &self,
        backend: &B,
        mut x: B::Tensor,
        range: std::ops::Range<usize>,
        cache: &mut B::KvCache,
        rows: &[CachedRow],
    ) -> Result<B::Tensor> {
        let eps = self.config.rms_norm_eps;
        let positions: Vec<usize> = rows.iter().map(|r| r.position).collect();
        for layer in range {
            let block = &self.blocks[layer];
            let h = backend.rms_norm(&x, &block.input_norm, eps)?;
            let qkv = backend.linear(&h, &block.qkv, block.qkv_bias.as_ref(), Activation::None, None)?;
            let qkv = backend.rope(&qkv, &positions, self.heads(), &self.inv_freq)?;
            let attended = backend.attention_cached(&qkv, cache, layer, rows, self.heads())?;
            x = backend.linear(&attended, &block.out, None, Activation::None, Some(&x))?;
            let h = backend.rms_norm(&x, &block.post_norm, eps)?;
            let gate_up = backend.linear(&h, &block.gate_up, None, Activation::None, None)?;
            let h = backend.silu_mul(&gate_up)?;
            x = backend.linear(&h, &block.down, None, Activation::None, Some(&x))?;
        }
        Ok(x)
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
        ensure!(ids.len() == rows.len(), "{} token ids for {} cache rows", ids.len(), rows.len());
        ensure!(blocks <= self.config.num_layers, "the model has {} blocks, not {blocks}", self.config.num_layers);
        if let Some(bad) = rows.iter().find(|r| r.position >= self.config.max_positions) {
            anyhow::bail!(
                "position {} is past the model's context of {} tokens",
                bad.position,
                self.config.max_positions
            );
        }
        let x = backend.embed(ids, &self.embed)?;
        let Some(offset) = offset.filter(|o| o.layer < blocks && !o.rows.is_empty()) else {
            return self.run_blocks(backend, x, 0..blocks, cache, rows);
        };
        let x = self.run_blocks(backend, x, 0..offset.layer + 1, cache, rows)?;
        let steered = backend.add_rows(&x, offset.rows, offset.offsets)?;
        let out = self.run_blocks(backend, steered, offset.layer + 1..blocks, cache, rows)?;
        if offset.clean_cache {
            self.run_blocks(backend, x, offset.layer + 1..blocks, cache, rows)?;
        }
        Ok(out)
    }

    /// Logits `[rows.len(), vocab]` of the given rows of final hidden states.
    pub fn logits(&self, backend: &B, hidden: &B::Tensor, rows: &[usize]) -> Result<B::Tensor> {
        let picked = backend.gather_rows(hidden, rows)?;
        let normed = backend.rms_norm(&picked, &self.final_norm, self.config.rms_norm_eps)?;
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
        let tokenizer = crate::tokenizer::LlmTokenizer::from_file(&checkpoint.file("tokenizer.json")?)?;
        let chat = crate::chat::ChatTemplate::from_model_dir(&checkpoint.dir)?;
        let stop_tokens = crate::chat::stop_token_ids(&checkpoint.dir, |t| tokenizer.token_to_id(t))?;
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
