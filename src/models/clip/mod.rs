//! CLIP (HF `CLIPModel`): a text tower and a vision tower projecting into one embedding space, plus the logit
//! scale. Written once against the backend trait.

pub(crate) mod config;
pub(crate) mod encoder;
pub(crate) mod random;
mod text;
mod vision;

pub use config::{ClipConfig, TextConfig, TowerConfig, VisionConfig};
pub use random::{SHAPES, random_weights, shape_config, vit_b32_config};

use crate::backend::Backend;
use crate::checkpoint::{Checkpoint, WeightStore};
use crate::preprocess::PreprocessConfig;
use crate::tokenizer::{ClipTokenizer, TokenBatch};
use anyhow::{Context, Result};
use text::TextTower;
use vision::VisionTower;

pub struct Clip<B: Backend> {
    pub config: ClipConfig,
    text: TextTower<B>,
    vision: VisionTower<B>,
    /// The learned temperature, stored as its logarithm (`logit_scale`); logits are `exp(logit_scale) * cos`.
    pub logit_scale: f32,
}

impl<B: Backend> Clip<B> {
    /// Builds both towers from a weight store, once the config is checked against it
    /// ([`ClipConfig::check_weights`]).
    pub fn from_store(backend: &B, store: &WeightStore, config: ClipConfig) -> Result<Self> {
        let _span = tracing::info_span!("load_clip").entered();
        config.check_weights(store)?;
        let text = TextTower::load(backend, store, &config.text, config.projection_dim)?;
        let vision = VisionTower::load(backend, store, &config.vision, config.projection_dim)?;
        let logit_scale =
            store.get_shaped("logit_scale", &[]).or_else(|_| store.get_shaped("logit_scale", &[1]))?.to_f32()[0];
        Ok(Self { config, text, vision, logit_scale })
    }

    pub fn encode_text(&self, backend: &B, batch: &TokenBatch) -> Result<B::Tensor> {
        let _span = tracing::info_span!("text", texts = batch.len(), seq = batch.seq).entered();
        self.text.forward(backend, batch)
    }

    pub fn encode_images(&self, backend: &B, pixels: &B::Tensor) -> Result<B::Tensor> {
        let _span = tracing::info_span!("vision", images = backend.dims(pixels).0).entered();
        self.vision.forward(backend, pixels)
    }
}

/// A CLIP checkpoint opened for use: the model, its tokenizer and its image preprocessing.
pub struct ClipModel<B: Backend> {
    pub checkpoint: Checkpoint,
    pub clip: Clip<B>,
    pub tokenizer: ClipTokenizer,
    pub preprocess: PreprocessConfig,
}

impl<B: Backend> ClipModel<B> {
    pub fn open(backend: &B, model: &str) -> Result<Self> {
        let checkpoint = Checkpoint::open(model)?;
        let config =
            ClipConfig::from_json(&checkpoint.config).with_context(|| format!("model {}", checkpoint.dir.display()))?;
        // Checked here too, so that a config at odds with the weights is reported before the tokenizer is built.
        config.check_weights(&checkpoint.weights).with_context(|| format!("model {}", checkpoint.dir.display()))?;
        let tokenizer = ClipTokenizer::from_file(
            &checkpoint.file("tokenizer.json")?,
            Some(config.text.eos_token_id),
            config.text.max_positions,
        )?;
        let preprocess = PreprocessConfig::from_file(&checkpoint.file("preprocessor_config.json")?)?;
        let size = config.vision.image_size;
        if preprocess.output_size() != (size, size) {
            anyhow::bail!(
                "{}: preprocessor_config.json makes {:?} images, but the vision tower takes {size}x{size}",
                checkpoint.dir.display(),
                preprocess.output_size()
            );
        }
        let clip = Clip::from_store(backend, &checkpoint.weights, config)
            .with_context(|| format!("loading CLIP from {}", checkpoint.dir.display()))?;
        Ok(Self { checkpoint, clip, tokenizer, preprocess })
    }
}
