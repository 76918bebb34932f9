//! The image side of LLaVA-OneVision: SigLIP's vision tower (patch embedding with a bias and learned positions,
//! no class token, the pre-norm encoder of CLIP with its own activation; the chosen hidden state, before the
//! post-norm) and the projector into the language model's width (linear, activation, linear).

use super::config::LlavaConfig;
use crate::backend::{Activation, Backend};
use crate::checkpoint::{StoredTensor, WeightStore};
use crate::models::clip::encoder::Encoder;
use anyhow::{Context, Result, ensure};

/// Where each part's weights are, in either layout: the hub's (`vision_tower.vision_model.`,
/// `multi_modal_projector.`, `image_newline`) or the newer one under `model.`; transformers 5 also writes the
/// tower without `vision_model.`.
pub struct Prefixes {
    pub vision: String,
    pub projector: String,
    pub newline: String,
}

impl Prefixes {
    pub fn find(store: &WeightStore) -> Result<Self> {
        let has = |name: String| store.get(&name).is_ok();
        let vision =
            ["model.vision_tower.vision_model.", "model.vision_tower.", "vision_tower.vision_model.", "vision_tower."]
                .into_iter()
                .find(|p| has(format!("{p}embeddings.patch_embedding.weight")))
                .context(
                    "no vision tower (vision_tower.vision_model.embeddings.patch_embedding.weight, with or without \
                      model. or vision_model.) in the weights",
                )?;
        let projector = ["model.multi_modal_projector.", "multi_modal_projector."]
            .into_iter()
            .find(|p| has(format!("{p}linear_1.weight")))
            .context("no multi_modal_projector.linear_1.weight (with or without model.) in the weights")?;
        let newline = ["model.image_newline", "image_newline"]
            .into_iter()
            .find(|p| has(p.to_string()))
            .context("no image_newline (with or without model.) in the weights")?;
        Ok(Self { vision: vision.into(), projector: projector.into(), newline: newline.into() })
    }
}

pub struct VisionTower<B: Backend> {
    config: LlavaConfig,
    patch: B::Weight,
    /// Zeros: SigLIP has no class token, and the patch embedding's shared op makes one row that is dropped.
    no_class: B::Weight,
    /// `[1 + patches, d]`: a zero row for the dropped class row, then each position plus the patch bias.
    positions: B::Weight,
    encoder: Encoder<B>,
    linear_1: (B::Weight, Option<B::Weight>),
    linear_2: (B::Weight, Option<B::Weight>),
}

impl<B: Backend> VisionTower<B> {
    pub fn load(backend: &B, store: &WeightStore, config: &LlavaConfig, prefixes: &Prefixes) -> Result<Self> {
        let v = &config.vision;
        let (d, p, patches) = (v.tower.hidden_size, v.patch_size, v.grid() * v.grid());
        let at = |name: &str| format!("{}{name}", prefixes.vision);
        let patch =
            backend.load_weight(&[store.get_shaped(&at("embeddings.patch_embedding.weight"), &[d, 3, p, p])?])?;
        let bias = store.get_shaped(&at("embeddings.patch_embedding.bias"), &[d])?.to_f32();
        let table = store.get_shaped(&at("embeddings.position_embedding.weight"), &[patches, d])?.to_f32();
        let mut positions = vec![0.0f32; d];
        for row in table.chunks_exact(d) {
            positions.extend(row.iter().zip(&bias).map(|(a, b)| a + b));
        }
        let positions = StoredTensor::from_f32("siglip positions", &[patches + 1, d], &positions);
        let no_class = StoredTensor::from_f32("siglip no class", &[d], &vec![0.0; d]);
        let h = config.text_hidden;
        let feature = d * config.feature_layers.len();
        let linear = |name: &str, shape: &[usize]| -> Result<(B::Weight, Option<B::Weight>)> {
            let w =
                backend.load_weight(&[store.get_shaped(&format!("{}{name}.weight", prefixes.projector), shape)?])?;
            let b = if config.projector_bias {
                Some(backend.load_weight(&[store.get_shaped(&format!("{}{name}.bias", prefixes.projector), &[h])?])?)
            } else {
                None
            };
            Ok((w, b))
        };
        Ok(Self {
            config: config.clone(),
            patch,
            no_class: backend.load_weight(&[&no_class])?,
            positions: backend.load_weight(&[&positions])?,
            encoder: Encoder::load(backend, store, &at("encoder"), &v.tower)?,
            linear_1: linear("linear_1", &[h, feature])?,
            linear_2: linear("linear_2", &[h, h])?,
        })
    }

    /// The projected features `[tiles * tokens, text_hidden]` of `tiles` tiles (`pixels`: `[tiles, 3 * size *
    /// size]`), `tokens` per tile (`grid^2`, less one where the first is dropped).
    pub fn features(&self, backend: &B, pixels: &B::Tensor, tiles: usize) -> Result<B::Tensor> {
        let v = &self.config.vision;
        let (d, patches) = (v.tower.hidden_size, v.grid() * v.grid());
        let embedded =
            backend.patch_embed(pixels, v.image_size, v.patch_size, &self.patch, &self.no_class, &self.positions)?;
        let rows: Vec<usize> = (0..tiles).flat_map(|t| (1..=patches).map(move |i| t * (patches + 1) + i)).collect();
        let x = backend.gather_rows(&embedded, &rows)?;
        let states = self.encoder.hidden_states(backend, x, tiles, patches, false, &self.config.feature_layers)?;
        let keep = if self.config.drop_first_token { 1..patches } else { 0..patches };
        let kept: Vec<usize> = (0..tiles).flat_map(|t| keep.clone().map(move |i| t * patches + i)).collect();
        let selected = if states.len() == 1 {
            backend.gather_rows(&states[0], &kept)?
        } else {
            // Several layers: their states side by side, per token.
            let parts: Vec<Vec<f32>> = states.iter().map(|s| backend.download(s)).collect::<Result<_>>()?;
            let mut joined = Vec::with_capacity(kept.len() * d * parts.len());
            for &row in &kept {
                for part in &parts {
                    joined.extend_from_slice(&part[row * d..(row + 1) * d]);
                }
            }
            backend.upload(&joined, kept.len(), d * parts.len())?
        };
        let (w1, b1) = &self.linear_1;
        let h = backend.linear(&selected, w1, b1.as_ref(), self.config.projector_activation, None)?;
        let (w2, b2) = &self.linear_2;
        backend.linear(&h, w2, b2.as_ref(), Activation::None, None)
    }

    /// Tokens per tile after the selection.
    pub fn tokens_per_tile(&self) -> usize {
        let g = self.config.vision.grid();
        g * g - usize::from(self.config.drop_first_token)
    }

    pub fn check_tiles(&self, pixels: usize, tiles: usize) -> Result<()> {
        let s = self.config.vision.image_size;
        ensure!(pixels == tiles * 3 * s * s, "{pixels} pixel values for {tiles} tiles of {s}x{s}");
        Ok(())
    }
}
