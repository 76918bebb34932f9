//! Decoding image files to 8-bit RGB the way transformers' CLIP processor sees them after `PIL.Image.open`.
//!
//! transformers' `convert_to_rgb` converts with Pillow, compositing onto a white background whenever the image
//! has an alpha band or a transparency key (PNG `tRNS`, GIF transparent index); otherwise it is Pillow's
//! `convert("RGB")`. The `image` crate expands palettes and transparency keys into RGB(A) itself, so the rules
//! here are:
//!
//! * grey: replicated into R, G and B (Pillow's `L` -> `RGB`);
//! * palette: looked up (the decoder does it), with a transparency key becoming an alpha channel;
//! * alpha (grey+alpha, RGBA, palette or grey/RGB with a transparency key): composited over white with Pillow's
//!   integer `alpha_composite` arithmetic, so the result equals transformers' bit for bit. Not simply dropped:
//!   transparent areas become white, not whatever colour the encoder left under them;
//! * 16-bit RGB, RGBA and grey+alpha: the high byte of each sample, which is what Pillow keeps when it opens them
//!   (it opens such PNGs as 8-bit `RGB` / `RGBA`);
//! * 16-bit grey: **deliberately different from Pillow**. Pillow opens it as mode `I;16` and `convert("RGB")`
//!   clamps the 16-bit value to 255, so almost every pixel becomes white and the image is destroyed. Here it takes
//!   the high byte (`v >> 8`), consistent with the other 16-bit modes;
//! * 32-bit float RGB(A) (some TIFFs; Pillow cannot open these as RGB): `round(clamp(v, 0, 1) * 255)`.
//!
//! EXIF orientation is not applied (Pillow and transformers do not apply it either). The format is recognised
//! from the file's content, not its name.

use anyhow::anyhow;
use image::{DynamicImage, ImageReader, RgbImage};
use std::io::BufReader;
use std::path::Path;

/// Decodes the image file at `path` to 8-bit RGB (see the module documentation for the conversions). Errors name
/// the file: `cannot decode image PATH: REASON`.
pub fn decode_rgb8(path: &Path) -> anyhow::Result<RgbImage> {
    let file = std::fs::File::open(path).map_err(|e| anyhow!("cannot open image {}: {e}", path.display()))?;
    let reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| anyhow!("cannot decode image {}: {e}", path.display()))?;
    if reader.format().is_none() {
        return Err(anyhow!("cannot decode image {}: unrecognised image format", path.display()));
    }
    let img = reader.decode().map_err(|e| anyhow!("cannot decode image {}: {e}", path.display()))?;
    Ok(to_rgb8(img))
}

/// Pillow's `alpha_composite` of one channel over an opaque white background. With an opaque destination its
/// general formula reduces to weights `alpha * 128` and `(255 - alpha) * 128` (7 fractional bits) and a rounded
/// division by 255 done with shifts.
#[inline]
fn over_white(c: u8, alpha: u8) -> u8 {
    if alpha == 0 {
        return 255;
    }
    let coef1 = alpha as u32 * 128;
    let coef2 = 255 * 128 - coef1;
    let tmp = c as u32 * coef1 + 255 * coef2 + (0x80 << 7);
    ((((tmp >> 8) + tmp) >> 8) >> 7) as u8
}

/// Converts any decoded image to 8-bit RGB following the rules in the module documentation.
pub fn to_rgb8(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let from_pixels = |data: Vec<u8>| RgbImage::from_raw(w, h, data).expect("buffer sized for the image");
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageLuma8(grey) => from_pixels(grey.as_raw().iter().flat_map(|&v| [v; 3]).collect()),
        DynamicImage::ImageLumaA8(la) => {
            from_pixels(la.as_raw().chunks_exact(2).flat_map(|p| [over_white(p[0], p[1]); 3]).collect())
        }
        DynamicImage::ImageRgba8(rgba) => from_pixels(
            rgba.as_raw()
                .chunks_exact(4)
                .flat_map(|p| [over_white(p[0], p[3]), over_white(p[1], p[3]), over_white(p[2], p[3])])
                .collect(),
        ),
        DynamicImage::ImageLuma16(grey) => {
            from_pixels(grey.as_raw().iter().flat_map(|&v| [(v >> 8) as u8; 3]).collect())
        }
        DynamicImage::ImageLumaA16(la) => from_pixels(
            la.as_raw().chunks_exact(2).flat_map(|p| [over_white((p[0] >> 8) as u8, (p[1] >> 8) as u8); 3]).collect(),
        ),
        DynamicImage::ImageRgb16(rgb) => from_pixels(rgb.as_raw().iter().map(|&v| (v >> 8) as u8).collect()),
        DynamicImage::ImageRgba16(rgba) => from_pixels(
            rgba.as_raw()
                .chunks_exact(4)
                .flat_map(|p| {
                    let a = (p[3] >> 8) as u8;
                    [0, 1, 2].map(|c| over_white((p[c] >> 8) as u8, a))
                })
                .collect(),
        ),
        DynamicImage::ImageRgb32F(rgb) => from_pixels(rgb.as_raw().iter().map(|&v| float_to_u8(v)).collect()),
        DynamicImage::ImageRgba32F(rgba) => from_pixels(
            rgba.as_raw()
                .chunks_exact(4)
                .flat_map(|p| {
                    let a = float_to_u8(p[3]);
                    [0, 1, 2].map(|c| over_white(float_to_u8(p[c]), a))
                })
                .collect(),
        ),
        // Layouts added to the `image` crate later: its own conversion.
        other => other.to_rgb8(),
    }
}

fn float_to_u8(v: f32) -> u8 {
    if v.is_nan() { 0 } else { (v.clamp(0.0, 1.0) * 255.0).round() as u8 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compositing_matches_pillow_at_the_ends() {
        for c in 0..=255u8 {
            assert_eq!(over_white(c, 255), c);
            assert_eq!(over_white(c, 0), 255);
        }
        assert_eq!(over_white(255, 77), 255);
    }

    #[test]
    fn grey_alpha_and_16_bit_conversions() {
        let la = image::GrayAlphaImage::from_raw(2, 1, vec![10, 255, 10, 0]).unwrap();
        let rgb = to_rgb8(DynamicImage::ImageLumaA8(la));
        assert_eq!(rgb.as_raw(), &[10, 10, 10, 255, 255, 255]);
        let g16 = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(3, 1, vec![0u16, 1000, 65535]).unwrap();
        let rgb = to_rgb8(DynamicImage::ImageLuma16(g16));
        assert_eq!(rgb.as_raw(), &[0, 0, 0, 3, 3, 3, 255, 255, 255]);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not_an_image.png");
        std::fs::write(&path, b"definitely not an image").unwrap();
        let msg = decode_rgb8(&path).unwrap_err().to_string();
        assert!(msg.starts_with("cannot decode image") && msg.contains("not_an_image.png"), "{msg}");
        let msg = decode_rgb8(&dir.path().join("missing.jpg")).unwrap_err().to_string();
        assert!(msg.contains("missing.jpg"), "{msg}");
    }
}
