//! The pre-norm transformer encoder shared by both towers.

use super::config::TowerConfig;
use crate::backend::{Activation, AttentionShape, Backend};
use crate::checkpoint::WeightStore;
use anyhow::Result;

struct Layer<B: Backend> {
    norm1: (B::Weight, B::Weight),
    qkv: B::Weight,
    qkv_bias: B::Weight,
    out: B::Weight,
    out_bias: B::Weight,
    norm2: (B::Weight, B::Weight),
    fc1: B::Weight,
    fc1_bias: B::Weight,
    fc2: B::Weight,
    fc2_bias: B::Weight,
}

pub struct Encoder<B: Backend> {
    config: TowerConfig,
    layers: Vec<Layer<B>>,
}

/// Loads a `[dim]` layer-norm gain and bias.
pub fn load_norm<B: Backend>(
    backend: &B,
    store: &WeightStore,
    prefix: &str,
    dim: usize,
) -> Result<(B::Weight, B::Weight)> {
    let gain = store.get_shaped(&format!("{prefix}.weight"), &[dim])?;
    let bias = store.get_shaped(&format!("{prefix}.bias"), &[dim])?;
    Ok((backend.load_weight(&[gain])?, backend.load_weight(&[bias])?))
}

impl<B: Backend> Encoder<B> {
    /// Loads the layers under `prefix` (e.g. `text_model.encoder`), fusing Q, K and V into one projection.
    pub fn load(backend: &B, store: &WeightStore, prefix: &str, config: &TowerConfig) -> Result<Self> {
        let (d, f) = (config.hidden_size, config.intermediate_size);
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let p = format!("{prefix}.layers.{i}");
            let w = |name: &str, shape: &[usize]| store.get_shaped(&format!("{p}.{name}"), shape);
            let load = |name: &str, shape: &[usize]| -> Result<B::Weight> { backend.load_weight(&[w(name, shape)?]) };
            let qkv = [
                w("self_attn.q_proj.weight", &[d, d])?,
                w("self_attn.k_proj.weight", &[d, d])?,
                w("self_attn.v_proj.weight", &[d, d])?,
            ];
            let qkv_bias = [
                w("self_attn.q_proj.bias", &[d])?,
                w("self_attn.k_proj.bias", &[d])?,
                w("self_attn.v_proj.bias", &[d])?,
            ];
            layers.push(Layer {
                norm1: load_norm(backend, store, &format!("{p}.layer_norm1"), d)?,
                qkv: backend.load_weight(&qkv)?,
                qkv_bias: backend.load_weight(&qkv_bias)?,
                out: load("self_attn.out_proj.weight", &[d, d])?,
                out_bias: load("self_attn.out_proj.bias", &[d])?,
                norm2: load_norm(backend, store, &format!("{p}.layer_norm2"), d)?,
                fc1: load("mlp.fc1.weight", &[f, d])?,
                fc1_bias: load("mlp.fc1.bias", &[f])?,
                fc2: load("mlp.fc2.weight", &[d, f])?,
                fc2_bias: load("mlp.fc2.bias", &[d])?,
            });
        }
        Ok(Self { config: config.clone(), layers })
    }

    /// Runs every layer on `[batch * seq, hidden]` hidden states.
    pub fn forward(&self, backend: &B, x: B::Tensor, batch: usize, seq: usize, causal: bool) -> Result<B::Tensor> {
        self.forward_layers_from(backend, x, batch, seq, causal, 0, self.layers.len())
    }

    /// The hidden states HF's `output_hidden_states` lists at the indices `wanted` (0: the input, `i`: after layer
    /// `i`), in that order; the layers after the last one wanted are not run.
    pub fn hidden_states(
        &self,
        backend: &B,
        mut x: B::Tensor,
        batch: usize,
        seq: usize,
        causal: bool,
        wanted: &[usize],
    ) -> Result<Vec<B::Tensor>> {
        let last = wanted.iter().copied().max().unwrap_or(0);
        anyhow::ensure!(last <= self.layers.len(), "hidden state {last} of an encoder of {} layers", self.layers.len());
        let all_rows: Vec<usize> = (0..batch * seq).collect();
        let mut states: Vec<Option<B::Tensor>> = (0..wanted.len()).map(|_| None).collect();
        for done in 0..=last {
            if done > 0 {
                x = self.forward_layers_from(backend, x, batch, seq, causal, done - 1, done)?;
            }
            for (slot, _) in wanted.iter().enumerate().filter(|(_, w)| **w == done) {
                states[slot] = Some(backend.gather_rows(&x, &all_rows)?);
            }
        }
        Ok(states.into_iter().map(|s| s.expect("every wanted state was reached")).collect())
    }

    /// Runs layers `first..end`.
    #[allow(clippy::too_many_arguments)]
    fn forward_layers_from(
        &self,
        backend: &B,
        mut x: B::Tensor,
        batch: usize,
        seq: usize,
        causal: bool,
        first: usize,
        end: usize,
    ) -> Result<B::Tensor> {
        let c = &self.config;
        let shape =
            AttentionShape { batch, seq, heads: c.num_heads, kv_heads: c.num_heads, head_dim: c.head_dim(), causal };
        for layer in &self.layers[first..end] {
            let h = backend.layer_norm(&x, &layer.norm1.0, &layer.norm1.1, c.layer_norm_eps)?;
            let qkv = backend.linear(&h, &layer.qkv, Some(&layer.qkv_bias), Activation::None, None)?;
            let attended = backend.attention(&qkv, shape, None)?;
            x = backend.linear(&attended, &layer.out, Some(&layer.out_bias), Activation::None, Some(&x))?;
            let h = backend.layer_norm(&x, &layer.norm2.0, &layer.norm2.1, c.layer_norm_eps)?;
            let h = backend.linear(&h, &layer.fc1, Some(&layer.fc1_bias), c.activation, None)?;
            x = backend.linear(&h, &layer.fc2, Some(&layer.fc2_bias), Activation::None, Some(&x))?;
        }
        Ok(x)
    }
}
