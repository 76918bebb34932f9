//! CLIP's vision tower: patch embedding with a class token and positions, the pre-norm, a full-attention encoder,
//! the post-norm of the class token, and the visual projection.

use super::config::VisionConfig;
use super::encoder::{Encoder, load_norm};
use crate::backend::{Activation, Backend};
use crate::checkpoint::WeightStore;
use anyhow::{Result, ensure};

pub struct VisionTower<B: Backend> {
    config: VisionConfig,
    patch: B::Weight,
    class: B::Weight,
    positions: B::Weight,
    pre_norm: (B::Weight, B::Weight),
    encoder: Encoder<B>,
    post_norm: (B::Weight, B::Weight),
    projection: B::Weight,
}

impl<B: Backend> VisionTower<B> {
    pub fn load(backend: &B, store: &WeightStore, config: &VisionConfig, projection_dim: usize) -> Result<Self> {
        let d = config.tower.hidden_size;
        let p = config.patch_size;
        let get = |name: &str, shape: &[usize]| -> Result<B::Weight> {
            backend.load_weight(&[store.get_shaped(name, shape)?])
        };
        Ok(Self {
            config: config.clone(),
            patch: get("vision_model.embeddings.patch_embedding.weight", &[d, 3, p, p])?,
            class: get("vision_model.embeddings.class_embedding", &[d])?,
            positions: get("vision_model.embeddings.position_embedding.weight", &[config.num_patches() + 1, d])?,
            // "pre_layrnorm" is HF's spelling.
            pre_norm: load_norm(backend, store, "vision_model.pre_layrnorm", d)?,
            encoder: Encoder::load(backend, store, "vision_model.encoder", &config.tower)?,
            post_norm: load_norm(backend, store, "vision_model.post_layernorm", d)?,
            projection: get("visual_projection.weight", &[projection_dim, d])?,
        })
    }

    /// Projected (unnormalised) features `[images, projection_dim]` of preprocessed images `[images, 3*H*W]`.
    pub fn forward(&self, backend: &B, pixels: &B::Tensor) -> Result<B::Tensor> {
        let (images, values) = backend.dims(pixels);
        let _span = tracing::debug_span!("vision_tower", images).entered();
        let size = self.config.image_size;
        ensure!(values == 3 * size * size, "images of {values} values do not match the model's 3x{size}x{size} input");
        let tokens = self.config.num_patches() + 1;
        let eps = self.config.tower.layer_norm_eps;
        let x = backend.patch_embed(pixels, size, self.config.patch_size, &self.patch, &self.class, &self.positions)?;
        let x = backend.layer_norm(&x, &self.pre_norm.0, &self.pre_norm.1, eps)?;
        let x = self.encoder.forward(backend, x, images, tokens, false)?;
        let rows: Vec<usize> = (0..images).map(|i| i * tokens).collect();
        let pooled = backend.gather_rows(&x, &rows)?;
        let pooled = backend.layer_norm(&pooled, &self.post_norm.0, &self.post_norm.1, eps)?;
        backend.linear(&pooled, &self.projection, None, Activation::None, None)
    }
}
