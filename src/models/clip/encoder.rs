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
    /// `i`), in that order; the layers after the last one wanted are not run, and the last state is not copied.
    pub fn hidden_states(
        &self,
        backend: &B,
        mut x: B::Tensor,
        batch: usize,
        seq: usize,
        causal: bool,
        wanted: &[usize],
    ) -> Result<Vec<B::Tensor>> {
        let Some(last) = wanted.iter().copied().max() else { return Ok(Vec::new()) };
        anyhow::ensure!(last <= self.layers.len(), "hidden state {last} of an encoder of {} layers", self.layers.len());
        let all_rows: Vec<usize> = (0..batch * seq).collect();
        let mut states: Vec<Option<B::Tensor>> = (0..wanted.len()).map(|_| None).collect();
        let slots = |done: usize| wanted.iter().enumerate().filter(move |(_, w)| **w == done).map(|(slot, _)| slot);
        for done in 0..=last {
            if done > 0 {
                x = self.forward_layers_from(backend, x, batch, seq, causal, done - 1, done)?;
            }
            if done < last {
                for slot in slots(done) {
                    states[slot] = Some(backend.gather_rows(&x, &all_rows)?);
                }
            }
        }
        // The last state: a copy for every slot that wants it but one, which takes it.
        let mut last_slots = slots(last);
        let first = last_slots.next().expect("the largest index wanted is wanted");
        for slot in last_slots {
            states[slot] = Some(backend.gather_rows(&x, &all_rows)?);
        }
        states[first] = Some(x);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::checkpoint::DType;
    use crate::models::clip::{random_weights, vit_b32_config};

    #[test]
    fn hidden_states_are_the_states_after_each_layer_wanted() {
        let mut config = vit_b32_config();
        config.vision.tower =
            TowerConfig { hidden_size: 16, intermediate_size: 32, num_heads: 2, num_layers: 3, ..config.vision.tower };
        let store = random_weights(&config, DType::F32, 7);
        let backend = CpuBackend::new();
        let encoder = Encoder::load(&backend, &store, "vision_model.encoder", &config.vision.tower).unwrap();
        let values: Vec<f32> = (0..2 * 5 * 16).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
        let input = || backend.upload(&values, 10, 16).unwrap();
        let after = |layers: usize| {
            backend.download(&encoder.forward_layers_from(&backend, input(), 2, 5, false, 0, layers).unwrap()).unwrap()
        };
        // Out of order, repeated, and the input itself.
        let states = encoder.hidden_states(&backend, input(), 2, 5, false, &[2, 0, 2, 1]).unwrap();
        let got: Vec<Vec<f32>> = states.iter().map(|s| backend.download(s).unwrap()).collect();
        assert_eq!(got, [after(2), values.clone(), after(2), after(1)]);
        assert_ne!(after(1), after(2));
        assert!(encoder.hidden_states(&backend, input(), 2, 5, false, &[]).unwrap().is_empty());
        assert!(encoder.hidden_states(&backend, input(), 2, 5, false, &[4]).is_err());
    }
}
