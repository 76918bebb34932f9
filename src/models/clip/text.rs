//! CLIP's text tower: token and position embeddings, a causal encoder, the final norm at the pooled position, and
//! the text projection.

use super::config::TextConfig;
use super::encoder::{Encoder, load_norm};
use crate::backend::{Activation, Backend};
use crate::checkpoint::WeightStore;
use crate::tokenizer::TokenBatch;
use anyhow::{Result, ensure};

pub struct TextTower<B: Backend> {
    config: TextConfig,
    tokens: B::Weight,
    positions: B::Weight,
    encoder: Encoder<B>,
    final_norm: (B::Weight, B::Weight),
    projection: B::Weight,
}

impl<B: Backend> TextTower<B> {
    pub fn load(backend: &B, store: &WeightStore, config: &TextConfig, projection_dim: usize) -> Result<Self> {
        let d = config.tower.hidden_size;
        let get = |name: &str, shape: &[usize]| -> Result<B::Weight> {
            backend.load_weight(&[store.get_shaped(name, shape)?])
        };
        Ok(Self {
            config: config.clone(),
            tokens: get("text_model.embeddings.token_embedding.weight", &[config.vocab_size, d])?,
            positions: get("text_model.embeddings.position_embedding.weight", &[config.max_positions, d])?,
            encoder: Encoder::load(backend, store, "text_model.encoder", &config.tower)?,
            final_norm: load_norm(backend, store, "text_model.final_layer_norm", d)?,
            projection: get("text_projection.weight", &[projection_dim, d])?,
        })
    }

    /// Projected (unnormalised) features `[texts, projection_dim]`. The causal mask makes each pooled position
    /// independent of the padding after it, so the batch is computed at its own padded length.
    pub fn forward(&self, backend: &B, batch: &TokenBatch) -> Result<B::Tensor> {
        let _span = tracing::debug_span!("text_tower", texts = batch.len(), seq = batch.seq).entered();
        ensure!(
            batch.seq <= self.config.max_positions,
            "a text of {} tokens is longer than the model's {} positions",
            batch.seq,
            self.config.max_positions
        );
        let x = backend.embed_tokens(&batch.ids, batch.len(), batch.seq, &self.tokens, &self.positions)?;
        let x = self.encoder.forward(backend, x, batch.len(), batch.seq, true)?;
        let rows: Vec<usize> = batch.pooled.iter().enumerate().map(|(i, &p)| i * batch.seq + p).collect();
        let pooled = backend.gather_rows(&x, &rows)?;
        let pooled =
            backend.layer_norm(&pooled, &self.final_norm.0, &self.final_norm.1, self.config.tower.layer_norm_eps)?;
        backend.linear(&pooled, &self.projection, None, Activation::None, None)
    }
}
