//! Image decoding and preprocessing equal to HF's CLIPImageProcessor (PIL backend).
//!
//! The steps, in transformers' order: convert to RGB ([`decode_rgb8`], [`to_rgb8`]), resize with Pillow's
//! resampling on the 8-bit image ([`resize_rgb8`]), centre crop (zero padding where the image is smaller than the
//! crop), rescale (`value * rescale_factor`, computed in f64 and rounded to f32, as NumPy does), normalise
//! (`(x - mean) / std` in f32), and lay the result out channel-first. Each of these is reproduced operation for
//! operation, so for the same RGB pixels the output tensor equals transformers' bit for bit. What remains is the
//! decoders: JPEG decoding here (zune-jpeg) and in Pillow (libjpeg-turbo) differ by a few levels on some pixels,
//! and 16-bit grey images are converted differently on purpose (see [`to_rgb8`]).

pub mod anyres;
mod config;
mod decode;
mod resample;

pub use config::{ConfigError, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PreprocessConfig, ResizeSize};
pub use decode::{decode_rgb8, to_rgb8};
pub use resample::{Resample, resize_rgb8};

use image::RgbImage;
use rayon::prelude::*;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// For each channel, the preprocessed value of each possible byte. The pipeline after the resize is a per-value
/// map (padding is the byte 0), so a table gives the exact same floats as computing them one by one.
fn value_tables(cfg: &PreprocessConfig) -> [[f32; 256]; 3] {
    let mut tables = [[0f32; 256]; 3];
    for (c, table) in tables.iter_mut().enumerate() {
        let (mean, std) = (cfg.image_mean[c] as f32, cfg.image_std[c] as f32);
        for (v, slot) in table.iter_mut().enumerate() {
            let mut x = if cfg.do_rescale { (v as f64 * cfg.rescale_factor) as f32 } else { v as f32 };
            if cfg.do_normalize {
                x = (x - mean) / std;
            }
            *slot = x;
        }
    }
    tables
}

/// Preprocesses an RGB image into a `3 x H x W` channel-first f32 tensor (flattened), where `(H, W)` is
/// [`PreprocessConfig::output_size`] for validated configs.
pub fn preprocess(img: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
    let resized: Cow<'_, RgbImage> = if cfg.do_resize && img.width() > 0 && img.height() > 0 {
        let (h, w) = cfg.resize_output_size(img.height(), img.width());
        if (w, h) == img.dimensions() { Cow::Borrowed(img) } else { Cow::Owned(resize_rgb8(img, w, h, cfg.resample)) }
    } else {
        Cow::Borrowed(img)
    };
    let (in_w, in_h) = (resized.width() as i64, resized.height() as i64);

    // transformers' centre crop: top = (H - crop_h) // 2 (floor division). When the image is smaller than the crop
    // it pads with zeros first, by ceil((crop_h - H) / 2) on top, and the two together put source row
    // `y + floor((H - crop_h) / 2)` at output row `y` in every case; likewise for columns.
    let (out_h, out_w, top, left) = if cfg.do_center_crop {
        let (ch, cw) = (cfg.crop_size.0 as i64, cfg.crop_size.1 as i64);
        (ch, cw, (in_h - ch).div_euclid(2), (in_w - cw).div_euclid(2))
    } else {
        (in_h, in_w, 0, 0)
    };

    let tables = value_tables(cfg);
    let plane = (out_h * out_w) as usize;
    let mut out = vec![0f32; 3 * plane];
    let src = resized.as_raw();
    for (c, table) in tables.iter().enumerate() {
        let dst = &mut out[c * plane..(c + 1) * plane];
        for (y, dst_row) in dst.chunks_exact_mut(out_w.max(1) as usize).enumerate() {
            let sy = y as i64 + top;
            for (x, d) in dst_row.iter_mut().enumerate() {
                let sx = x as i64 + left;
                *d = if (0..in_h).contains(&sy) && (0..in_w).contains(&sx) {
                    table[src[((sy * in_w + sx) * 3) as usize + c] as usize]
                } else {
                    table[0]
                };
            }
        }
    }
    out
}

/// Decodes and preprocesses one image file.
pub fn load_image(path: &Path, cfg: &PreprocessConfig) -> anyhow::Result<Vec<f32>> {
    let img = decode_rgb8(path)?;
    if cfg.do_resize && img.width() > 0 && img.height() > 0 {
        // A resize by the shortest edge blows up extreme aspect ratios (1 x 20000 becomes 224 x 4480000) before the
        // crop throws most of it away; refuse those instead of exhausting memory.
        let (h, w) = cfg.resize_output_size(img.height(), img.width());
        if h as u64 * w as u64 > MAX_RESIZED_PIXELS {
            anyhow::bail!(
                "image {} ({}x{}) would be resized to {w}x{h} before cropping; its aspect ratio is too extreme",
                path.display(),
                img.width(),
                img.height()
            );
        }
    }
    Ok(preprocess(&img, cfg))
}

/// The largest intermediate resize accepted (about 1 GB of RGB bytes).
const MAX_RESIZED_PIXELS: u64 = 1 << 28;

/// Decodes and preprocesses image files in parallel. Results are in the order of `paths`, one per file, so a
/// caller can report and skip the images that fail.
pub fn load_images(paths: &[PathBuf], cfg: &PreprocessConfig) -> Vec<anyhow::Result<Vec<f32>>> {
    let span = tracing::info_span!("load_images", count = paths.len());
    let _entered = span.enter();
    let results: Vec<_> = paths
        .par_iter()
        .map(|path| {
            let _image = tracing::debug_span!(parent: &span, "load_image", path = %path.display()).entered();
            load_image(path, cfg)
        })
        .collect();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        tracing::warn!(failed, "some images could not be loaded");
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]))
    }

    #[test]
    fn output_shape_and_values() {
        let cfg = PreprocessConfig::default();
        let out = preprocess(&RgbImage::from_pixel(640, 480, image::Rgb([200, 100, 0])), &cfg);
        assert_eq!(out.len(), 3 * 224 * 224);
        // Rescale in f64 rounded to f32, then normalise in f32, as transformers does.
        for (c, v) in [200u8, 100, 0].into_iter().enumerate() {
            let rescaled = (v as f64 * (1.0 / 255.0)) as f32;
            let expected = (rescaled - OPENAI_CLIP_MEAN[c] as f32) / OPENAI_CLIP_STD[c] as f32;
            assert!(out[c * 224 * 224..(c + 1) * 224 * 224].iter().all(|&x| x == expected), "channel {c}");
        }
    }

    #[test]
    fn crop_without_resize_takes_the_centre() {
        let cfg = PreprocessConfig {
            do_resize: false,
            crop_size: (2, 3),
            do_rescale: false,
            do_normalize: false,
            ..PreprocessConfig::default()
        };
        // 5x4 image: top = (4 - 2) // 2 = 1, left = (5 - 3) // 2 = 1.
        let out = preprocess(&gradient(5, 4), &cfg);
        assert_eq!(&out[..6], &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]); // red = x
        assert_eq!(&out[6..12], &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]); // green = y
    }

    #[test]
    fn crop_larger_than_image_pads_with_zero() {
        let cfg = PreprocessConfig {
            do_resize: false,
            crop_size: (4, 5),
            do_rescale: false,
            do_normalize: false,
            ..PreprocessConfig::default()
        };
        // 2x1 image of value 9: pad top ceil(3/2) = 2, left ceil(3/2) = 2.
        let img = RgbImage::from_pixel(2, 1, image::Rgb([9, 9, 9]));
        let out = preprocess(&img, &cfg);
        let red: Vec<f32> = out[..20].to_vec();
        let mut expected = vec![0.0; 20];
        expected[2 * 5 + 2] = 9.0;
        expected[2 * 5 + 3] = 9.0;
        assert_eq!(red, expected);
    }

    #[test]
    fn load_images_keeps_order_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.png");
        gradient(30, 20).save(&good).unwrap();
        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"nope").unwrap();
        let cfg = PreprocessConfig::default();
        let results = load_images(&[good.clone(), bad, good], &cfg);
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok() && results[2].is_ok());
        assert!(results[1].as_ref().unwrap_err().to_string().contains("bad.png"));
        assert_eq!(results[0].as_ref().unwrap(), results[2].as_ref().unwrap());
    }
}
