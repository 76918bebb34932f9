//! LLaVA-OneVision's image processor (HF `LlavaOnevisionImageProcessor`, the slow PIL path) for one image: the
//! grid resolution that keeps the most of the image with the least padding (`select_best_resolution`), an
//! aspect-preserving resize to fit it, zero padding centred around it, the tiles of the padded image in row order,
//! and the whole image resized to one tile placed first; each tile rescaled and normalised, channel first. The
//! resizes and the padding happen on the 8-bit image, as in transformers, so the tiles equal its pixel values for
//! the same RGB pixels.

use super::{PreprocessConfig, Resample, ResizeSize, resize_rgb8};
use anyhow::{Context, Result, bail, ensure};
use image::RgbImage;
use serde_json::Value;
use std::path::Path;

/// The largest tile side and grid resolution read from a stranger's config.
const MAX_SIDE: u32 = 1 << 14;

/// What `preprocessor_config.json` says.
#[derive(Clone, Debug, PartialEq)]
pub struct AnyresConfig {
    /// The side of a square tile (`size.height` = `size.width`).
    pub tile: u32,
    /// Grid resolutions `(height, width)`, each a multiple of the tile.
    pub pinpoints: Vec<(u32, u32)>,
    pub resample: Resample,
    /// Rescale and normalisation, applied to each tile (no resize, no crop).
    values: PreprocessConfig,
}

/// One image's tiles.
#[derive(Clone, Debug, PartialEq)]
pub struct AnyresImage {
    /// `[tiles, 3, tile, tile]`, flattened: the whole image first, then the grid's tiles in row order.
    pub pixels: Vec<f32>,
    pub tiles: usize,
    /// The image's `(height, width)`.
    pub size: (u32, u32),
    /// The grid resolution chosen, `(height, width)`.
    pub best: (u32, u32),
}

fn side(value: &Value, what: &str) -> Result<u32> {
    let v = value.as_u64().with_context(|| format!("{what} is not a positive integer: {value}"))?;
    ensure!((1..=MAX_SIDE as u64).contains(&v), "{what} is {v}, outside 1 to {MAX_SIDE}");
    Ok(v as u32)
}

impl AnyresConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let value = crate::checkpoint::read_json(path)?;
        Self::from_json(&value).with_context(|| format!("{}", path.display()))
    }

    pub fn from_json(value: &Value) -> Result<Self> {
        let size = value.get("size").context("size is missing")?;
        let (h, w) = (side(&size["height"], "size.height")?, side(&size["width"], "size.width")?);
        ensure!(h == w, "size is {h}x{w}: LLaVA-OneVision's tiles are square");
        let list = value
            .get("image_grid_pinpoints")
            .and_then(Value::as_array)
            .context("image_grid_pinpoints is missing or not a list")?;
        ensure!(!list.is_empty() && list.len() <= 1024, "image_grid_pinpoints holds {} resolutions", list.len());
        let mut pinpoints = Vec::with_capacity(list.len());
        for (i, pair) in list.iter().enumerate() {
            let what = format!("image_grid_pinpoints[{i}]");
            let pair =
                pair.as_array().filter(|p| p.len() == 2).with_context(|| format!("{what} is not [height, width]"))?;
            let (ph, pw) = (side(&pair[0], &what)?, side(&pair[1], &what)?);
            ensure!(ph % h == 0 && pw % h == 0, "{what} is {ph}x{pw}, not a grid of {h}-pixel tiles");
            pinpoints.push((ph, pw));
        }
        // The rescale and normalisation keys, read as CLIP's processor reads them, without its resize and crop.
        let mut values = PreprocessConfig::from_json(value).map_err(|e| anyhow::anyhow!("{e}"))?;
        values.do_resize = false;
        values.size = ResizeSize::Exact { height: h, width: h };
        values.do_center_crop = false;
        let resample = values.resample;
        Ok(Self { tile: h, pinpoints, resample, values })
    }

    /// transformers' `select_best_resolution`: the resolution that keeps the most pixels of the image once fitted
    /// (at most all of them), ties to the least padding, then to the first listed.
    pub fn best_resolution(&self, height: u32, width: u32) -> (u32, u32) {
        let (oh, ow) = (height as f64, width as f64);
        let mut best = self.pinpoints[0];
        let (mut max_effective, mut min_wasted) = (0i64, i64::MAX);
        for &(h, w) in &self.pinpoints {
            let scale = (w as f64 / ow).min(h as f64 / oh);
            let (dw, dh) = ((ow * scale) as i64, (oh * scale) as i64);
            let effective = (dw * dh).min(width as i64 * height as i64);
            let wasted = w as i64 * h as i64 - effective;
            if effective > max_effective || (effective == max_effective && wasted < min_wasted) {
                (max_effective, min_wasted, best) = (effective, wasted, (h, w));
            }
        }
        best
    }

    /// The tiles of one image.
    pub fn tiles(&self, img: &RgbImage) -> Result<AnyresImage> {
        let (height, width) = (img.height(), img.width());
        ensure!(height > 0 && width > 0, "an empty image");
        let best = self.best_resolution(height, width);
        let (nh, nw) = patch_output_size((height, width), best);
        let resized = self.resize(img, nw, nh);
        // transformers pads by the size `get_patch_output_size` gives for the resized image.
        let (ph, pw) = patch_output_size((nh, nw), best);
        if (ph, pw) != (nh, nw) {
            bail!("an image of {width}x{height} resized to {nw}x{nh} does not pad to {}x{}", best.1, best.0);
        }
        let (top, left) = ((best.0 - nh) / 2, (best.1 - nw) / 2);
        let mut padded = RgbImage::new(best.1, best.0);
        image::imageops::replace(&mut padded, &resized, left as i64, top as i64);
        let t = self.tile;
        let mut tiles = vec![self.resize(img, t, t)];
        for y in (0..best.0).step_by(t as usize) {
            for x in (0..best.1).step_by(t as usize) {
                tiles.push(image::imageops::crop_imm(&padded, x, y, t, t).to_image());
            }
        }
        let mut pixels = Vec::with_capacity(tiles.len() * 3 * (t * t) as usize);
        for tile in &tiles {
            pixels.extend(super::preprocess(tile, &self.values));
        }
        Ok(AnyresImage { pixels, tiles: tiles.len(), size: (height, width), best })
    }
}

impl AnyresConfig {
    /// Pillow's resize; to the same size, a copy (as Pillow returns).
    fn resize(&self, img: &RgbImage, width: u32, height: u32) -> RgbImage {
        if img.dimensions() == (width, height) { img.clone() } else { resize_rgb8(img, width, height, self.resample) }
    }
}

/// transformers' `get_patch_output_size`: the image fitted inside `target` (`(height, width)`), the side that
/// limits it exactly, the other rounded up.
fn patch_output_size((height, width): (u32, u32), (th, tw): (u32, u32)) -> (u32, u32) {
    let (scale_w, scale_h) = (tw as f64 / width as f64, th as f64 / height as f64);
    if scale_w < scale_h {
        (((height as f64 * scale_w).ceil() as u32).min(th), tw)
    } else {
        (th, ((width as f64 * scale_h).ceil() as u32).min(tw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pinpoints: &str) -> AnyresConfig {
        let json = format!(r#"{{"size": {{"height": 32, "width": 32}}, "image_grid_pinpoints": {pinpoints}}}"#);
        AnyresConfig::from_json(&serde_json::from_str(&json).unwrap()).unwrap()
    }

    #[test]
    fn the_best_resolution_keeps_the_most_pixels_then_wastes_the_least() {
        let c = config("[[32, 32], [32, 64], [64, 32], [64, 64]]");
        assert_eq!(c.best_resolution(10, 10), (32, 32), "all fit: the least padding");
        assert_eq!(c.best_resolution(30, 60), (32, 64));
        assert_eq!(c.best_resolution(100, 40), (64, 32), "a tall image: 26 of 40 columns kept beats 20");
        assert_eq!(c.best_resolution(200, 200), (64, 64));
        assert_eq!(patch_output_size((37, 50), (64, 64)), (48, 64), "37 * 1.28 = 47.36, rounded up");
    }

    #[test]
    fn bad_configs_are_named() {
        let error =
            |json: &str| format!("{:#}", AnyresConfig::from_json(&serde_json::from_str(json).unwrap()).unwrap_err());
        let e = error(r#"{"size": {"height": 32, "width": 30}, "image_grid_pinpoints": [[32, 32]]}"#);
        assert!(e.contains("tiles are square"), "{e}");
        let e = error(r#"{"size": {"height": 32, "width": 32}, "image_grid_pinpoints": [[32, 48]]}"#);
        assert!(e.contains("image_grid_pinpoints[0] is 32x48, not a grid of 32-pixel tiles"), "{e}");
        let e = error(r#"{"size": {"height": 32, "width": 32}}"#);
        assert!(e.contains("image_grid_pinpoints is missing"), "{e}");
        let e = error(r#"{"size": {"height": 0, "width": 0}, "image_grid_pinpoints": [[32, 32]]}"#);
        assert!(e.contains("size.height is 0"), "{e}");
    }
}
