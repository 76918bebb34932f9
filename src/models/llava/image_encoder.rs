//! The image side of LLaVA-OneVision as one piece: the anyres processor, the vision tower and projector, and the
//! packing of a tile grid's features with `image_newline` into the rows that replace an image's tokens.

use super::config::LlavaConfig;
use super::pack;
use super::vision::{Prefixes, VisionTower};
use crate::backend::Backend;
use crate::checkpoint::WeightStore;
use crate::preprocess::anyres::{AnyresConfig, AnyresImage};
use anyhow::{Result, ensure};
use image::RgbImage;

pub struct ImageEncoder<B: Backend> {
    pub config: LlavaConfig,
    pub processor: AnyresConfig,
    vision: VisionTower<B>,
    newline: Vec<f32>,
}

/// One image through the image side: how many tiles the vision tower saw, and the features that replace its image
/// tokens.
pub struct ImageFeatures {
    pub tiles: usize,
    /// `[tokens, text_hidden]`, flattened.
    pub features: Vec<f32>,
    pub tokens: usize,
}

impl<B: Backend> ImageEncoder<B> {
    /// The vision tower, projector and `image_newline` of `store` (either layout), with the processor that makes
    /// their tiles; `what` names the model in errors.
    pub fn load(
        backend: &B,
        store: &WeightStore,
        config: LlavaConfig,
        processor: AnyresConfig,
        what: &str,
    ) -> Result<Self> {
        ensure!(
            processor.tile as usize == config.vision.image_size,
            "{what}: preprocessor_config.json makes {}-pixel tiles, the vision tower takes {}",
            processor.tile,
            config.vision.image_size
        );
        let pinpoints: Vec<(usize, usize)> =
            processor.pinpoints.iter().map(|&(h, w)| (h as usize, w as usize)).collect();
        ensure!(
            pinpoints == config.pinpoints,
            "{what}: the image_grid_pinpoints of preprocessor_config.json and config.json differ"
        );
        let prefixes = Prefixes::find(store)?;
        let vision = VisionTower::load(backend, store, &config, &prefixes)?;
        let newline = store.get_shaped(&prefixes.newline, &[config.text_hidden])?.to_f32();
        Ok(Self { config, processor, vision, newline })
    }

    /// The packed features of one image: [`Self::tiles`], [`Self::tower`] and [`Self::pack`] in turn.
    pub fn features(&self, backend: &B, img: &RgbImage) -> Result<ImageFeatures> {
        let tiles = self.tiles(img)?;
        let tower = self.tower(backend, &tiles)?;
        self.pack(&tiles, &tower)
    }

    /// The processor's tiles of one image (on the host).
    pub fn tiles(&self, img: &RgbImage) -> Result<AnyresImage> {
        let tiles = self.processor.tiles(img)?;
        self.vision.check_tiles(tiles.pixels.len(), tiles.tiles)?;
        Ok(tiles)
    }

    /// The projected features of the tiles, `[tiles * tokens, text_hidden]`, downloaded.
    pub fn tower(&self, backend: &B, tiles: &AnyresImage) -> Result<Vec<f32>> {
        let s = self.config.vision.image_size;
        let pixels = backend.upload(&tiles.pixels, tiles.tiles, 3 * s * s)?;
        backend.download(&self.vision.features(backend, &pixels, tiles.tiles)?)
    }

    /// The tower's features arranged as the image's tokens (on the host): the base tile, then the grid unpadded,
    /// downscaled where it is larger than `anyres_max_N` allows, a newline after each row.
    pub fn pack(&self, tiles: &AnyresImage, tower: &[f32]) -> Result<ImageFeatures> {
        let s = self.config.vision.image_size;
        let side = self.config.vision.grid();
        let grid = (tiles.best.0 as usize / s, tiles.best.1 as usize / s);
        let size = (tiles.size.0 as usize, tiles.size.1 as usize);
        let channels = self.config.text_hidden;
        let per_tile = self.vision.tokens_per_tile();
        let features = pack::pack(tower, channels, per_tile, side, grid, size, self.config.max_tiles, &self.newline)?;
        let tokens = features.len() / channels;
        Ok(ImageFeatures { tiles: tiles.tiles, features, tokens })
    }
}
