//! Resizing of 8-bit RGB images with results bit-identical to Pillow's `Image.resize` (Resample.c).
//!
//! Pillow resizes with a separable convolution: a horizontal pass, then a vertical pass over its uint8 output.
//! For each output position it centres the filter on the corresponding input position, widens the filter by the
//! downscale factor (so downscaling averages over the whole footprint: antialiasing), evaluates the weights in
//! double precision, normalises them to sum to one, and rounds them to fixed point with 22 fractional bits. Each
//! pass accumulates `pixel * weight` in 32-bit integers starting from one half (for rounding), then shifts and
//! clamps to 0..=255. Reproducing those exact steps, including the rounding of every weight and the uint8
//! intermediate image, gives exactly Pillow's bytes; any shortcut (float accumulation, a single 2-D pass, a
//! different weight rounding) gives off-by-one differences on a fraction of the pixels.
//!
//! Nearest-neighbour resizing in Pillow is a different code path (an affine scaling with an accumulated float
//! position), reproduced separately.

use image::RgbImage;

/// Pillow's resampling filters, numbered as in `PIL.Image.Resampling` (the `resample` of HF configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resample {
    Nearest = 0,
    Lanczos = 1,
    Bilinear = 2,
    Bicubic = 3,
    Box = 4,
    Hamming = 5,
}

impl Resample {
    /// The filter with Pillow's number `code`; an error naming the value for anything else (including Pillow's
    /// Magic Kernel filters 6 and 7, which are not implemented here).
    pub fn from_pil(code: i64) -> Result<Self, String> {
        Ok(match code {
            0 => Self::Nearest,
            1 => Self::Lanczos,
            2 => Self::Bilinear,
            3 => Self::Bicubic,
            4 => Self::Box,
            5 => Self::Hamming,
            6 | 7 => {
                return Err(format!(
                    "PIL resampling filter {code} ({}) is not supported; use 0 (NEAREST), 1 (LANCZOS), 2 (BILINEAR), \
                     3 (BICUBIC), 4 (BOX) or 5 (HAMMING)",
                    if code == 6 { "MKS2013" } else { "MKS2021" }
                ));
            }
            _ => {
                return Err(format!(
                    "unknown PIL resampling filter {code}; expected 0 (NEAREST), 1 (LANCZOS), 2 (BILINEAR), \
                     3 (BICUBIC), 4 (BOX) or 5 (HAMMING)"
                ));
            }
        })
    }

    /// The convolution kernel and its support radius (in input pixels, before widening for downscaling).
    fn kernel(self) -> Option<(Kernel, f64)> {
        match self {
            Self::Nearest => None,
            Self::Box => Some((box_filter, 0.5)),
            Self::Bilinear => Some((bilinear_filter, 1.0)),
            Self::Hamming => Some((hamming_filter, 1.0)),
            Self::Bicubic => Some((bicubic_filter, 2.0)),
            Self::Lanczos => Some((lanczos_filter, 3.0)),
        }
    }
}

/// A filter kernel: weight as a function of the distance in (possibly widened) input pixels.
type Kernel = fn(f64) -> f64;

// The kernels below keep Pillow's exact floating-point expressions (operation order and constants), since the
// weights are rounded to fixed point afterwards and a last-bit difference can move a rounded weight.

fn box_filter(x: f64) -> f64 {
    if x > -0.5 && x <= 0.5 { 1.0 } else { 0.0 }
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

fn hamming_filter(x: f64) -> f64 {
    let x = x.abs();
    if x == 0.0 {
        1.0
    } else if x >= 1.0 {
        0.0
    } else {
        let x = x * std::f64::consts::PI;
        // Pillow writes these constants as C floats, which are widened to double.
        x.sin() / x * (0.54f32 as f64 + 0.46f32 as f64 * x.cos())
    }
}

/// Keys' cubic convolution kernel with a = -0.5 (Catmull-Rom).
fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

fn lanczos_filter(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) { sinc(x) * sinc(x / 3.0) } else { 0.0 }
}

/// Fractional bits of the fixed-point weights: 32 bits, less 8 for the pixel value, less 2 of headroom for
/// kernels with negative lobes (partial sums can exceed 255 or drop below 0).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Fixed-point weights of one axis: for every output position, the first input index, the number of inputs it
/// reads, and `ksize` weights (only the first `len` of them used).
struct AxisCoeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

impl AxisCoeffs {
    /// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`, for the whole input range.
    fn new(in_size: usize, out_size: usize, kernel: Kernel, support: f64) -> Self {
        // Pillow passes the input range as C floats; `in_size - 0` is exact in f32 for any realistic size.
        let scale = (in_size as f32) as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = support * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv_filterscale = 1.0 / filterscale;

        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut k = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero, as `as i64` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let len = (xmax - xmin).max(0) as usize;
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(len) {
                let w = kernel(((x as i64 + xmin) as f64 - center + 0.5) * inv_filterscale);
                *kx = w;
                ww += w;
            }
            let row = &mut weights[xx * ksize..(xx + 1) * ksize];
            for (x, slot) in row.iter_mut().enumerate().take(len) {
                let w = if ww != 0.0 { k[x] / ww } else { k[x] };
                let scaled = w * (1u32 << PRECISION_BITS) as f64;
                *slot = if w < 0.0 { (-0.5 + scaled) as i32 } else { (0.5 + scaled) as i32 };
            }
            bounds.push((xmin as usize, len));
        }
        Self { ksize, bounds, weights }
    }

    fn taps(&self, out: usize) -> (usize, &[i32]) {
        let (start, len) = self.bounds[out];
        (start, &self.weights[out * self.ksize..out * self.ksize + len])
    }
}

/// Pillow's `clip8`: drop the fractional bits and clamp to a byte.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Horizontal pass over input rows `rows` of an interleaved RGB buffer `src` (`in_w` pixels per row).
fn resample_horizontal(
    src: &[u8],
    in_w: usize,
    rows: std::ops::Range<usize>,
    coeffs: &AxisCoeffs,
    out_w: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; rows.len() * out_w * 3];
    for (dst_row, y) in out.chunks_exact_mut(out_w * 3).zip(rows) {
        let line = &src[y * in_w * 3..(y + 1) * in_w * 3];
        for (xx, px) in dst_row.chunks_exact_mut(3).enumerate() {
            let (start, k) = coeffs.taps(xx);
            let (mut r, mut g, mut b) = (HALF, HALF, HALF);
            for (p, &w) in line[start * 3..(start + k.len()) * 3].chunks_exact(3).zip(k) {
                r += p[0] as i32 * w;
                g += p[1] as i32 * w;
                b += p[2] as i32 * w;
            }
            px[0] = clip8(r);
            px[1] = clip8(g);
            px[2] = clip8(b);
        }
    }
    out
}

/// Vertical pass: output row `yy` combines rows `start..start+len` of `src` (offset by `row_offset`, the first
/// row `src` holds). Integer accumulation is exact, so summing row by row gives Pillow's per-pixel sums.
fn resample_vertical(src: &[u8], width: usize, row_offset: usize, coeffs: &AxisCoeffs, out_h: usize) -> Vec<u8> {
    let row_len = width * 3;
    let mut out = vec![0u8; out_h * row_len];
    let mut acc = vec![0i32; row_len];
    for (yy, dst_row) in out.chunks_exact_mut(row_len).enumerate() {
        let (start, k) = coeffs.taps(yy);
        acc.fill(HALF);
        for (j, &w) in k.iter().enumerate() {
            let y = start + j - row_offset;
            let line = &src[y * row_len..(y + 1) * row_len];
            for (a, &p) in acc.iter_mut().zip(line) {
                *a += p as i32 * w;
            }
        }
        for (d, &a) in dst_row.iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    out
}

/// Pillow's nearest-neighbour resize (`ImagingScaleAffine`): source positions advance by accumulated float
/// steps from half a step; positions that fall outside the source stay black (they do not occur in practice).
fn resize_nearest(img: &RgbImage, out_w: usize, out_h: usize) -> RgbImage {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let positions = |in_size: usize, out_size: usize| -> Vec<Option<usize>> {
        let step = (in_size as f32) as f64 / out_size as f64;
        let mut pos = step * 0.5;
        (0..out_size)
            .map(|_| {
                let idx = if pos < 0.0 { None } else { Some(pos as usize) };
                pos += step;
                idx.filter(|&i| i < in_size)
            })
            .collect()
    };
    let xs = positions(in_w, out_w);
    let ys = positions(in_h, out_h);
    let src = img.as_raw();
    let mut out = vec![0u8; out_w * out_h * 3];
    for (row, y) in out.chunks_exact_mut(out_w * 3).zip(&ys) {
        let Some(y) = *y else { continue };
        for (px, x) in row.chunks_exact_mut(3).zip(&xs) {
            if let Some(x) = *x {
                px.copy_from_slice(&src[(y * in_w + x) * 3..(y * in_w + x) * 3 + 3]);
            }
        }
    }
    RgbImage::from_raw(out_w as u32, out_h as u32, out).expect("buffer sized for the image")
}

/// Resizes an 8-bit RGB image to `width` x `height` exactly as Pillow's `Image.resize((width, height), filter)`
/// does for a mode "RGB" image (no `box`, no `reducing_gap`).
///
/// # Panics
/// If either target dimension is zero (Pillow raises an error there too).
pub fn resize_rgb8(img: &RgbImage, width: u32, height: u32, filter: Resample) -> RgbImage {
    assert!(width > 0 && height > 0, "cannot resize to {width}x{height}");
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    if (in_w, in_h) == (out_w, out_h) || in_w == 0 || in_h == 0 {
        // Pillow returns a copy when the size is unchanged; an empty source has nothing to sample.
        return if in_w == 0 || in_h == 0 { RgbImage::new(width, height) } else { img.clone() };
    }
    let Some((kernel, support)) = filter.kernel() else {
        return resize_nearest(img, out_w, out_h);
    };

    let src = img.as_raw();
    let vertical = (in_h != out_h).then(|| AxisCoeffs::new(in_h, out_h, kernel, support));
    let horizontal = (in_w != out_w).then(|| AxisCoeffs::new(in_w, out_w, kernel, support));
    // Pillow runs each pass only when that dimension changes (with a scale of 1 the kernels are the identity
    // anyway). The order of the passes changes the result, since the intermediate image is rounded to bytes.
    let out = match (horizontal, vertical) {
        (None, None) => src.clone(),
        (Some(h), None) => resample_horizontal(src, in_w, 0..in_h, &h, out_w),
        (None, Some(v)) => resample_vertical(src, in_w, 0, &v, out_h),
        (Some(h), Some(v)) if vertical_first(in_w, in_h, out_w, out_h) => {
            let tmp = resample_vertical(src, in_w, 0, &v, out_h);
            resample_horizontal(&tmp, in_w, 0..out_h, &h, out_w)
        }
        (Some(h), Some(v)) => {
            // Horizontal first, over only the rows the vertical pass reads.
            let first = v.bounds[0].0;
            let last = v.bounds.last().map_or(first, |&(s, l)| s + l);
            let tmp = resample_horizontal(src, in_w, first..last, &h, out_w);
            resample_vertical(&tmp, out_w, first, &v, out_h)
        }
    };
    RgbImage::from_raw(width, height, out).expect("buffer sized for the image")
}

/// Whether Pillow runs the vertical pass first. Pillow 13 does so when the height shrinks by more than twice as
/// many pixels as the width does (a speed heuristic for tall images); earlier versions always ran the horizontal
/// pass first. This rule was established by comparing with Pillow 13.0.0 over many sizes: at the boundary
/// (`in_h - out_h == 2 * (in_w - out_w)`) the horizontal pass still runs first. Under Pillow 12 and older, images
/// that meet the condition come out slightly different (±1 on some pixels).
fn vertical_first(in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> bool {
    out_h < in_h && (in_h - out_h) as i64 > 2 * (in_w as i64 - out_w as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 37 + y * 11) as u8, (x * y) as u8, (255 - x * 5) as u8]))
    }

    const FILTERS: [Resample; 6] =
        [Resample::Nearest, Resample::Lanczos, Resample::Bilinear, Resample::Bicubic, Resample::Box, Resample::Hamming];

    #[test]
    fn same_size_is_identity() {
        let img = pattern(17, 9);
        for f in FILTERS {
            assert_eq!(resize_rgb8(&img, 17, 9, f), img, "{f:?}");
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([200, 0, 255]));
        for f in FILTERS {
            for (w, h) in [(5, 3), (64, 40), (37, 100), (11, 23), (1, 1), (300, 2)] {
                let out = resize_rgb8(&img, w, h, f);
                assert_eq!((out.width(), out.height()), (w, h));
                assert!(out.pixels().all(|p| p.0 == [200, 0, 255]), "{f:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        // Rounding each weight separately can leave the sum a few units off 2^22, never more than one per tap.
        for (n_in, n_out) in [(640, 224), (100, 333), (7, 3)] {
            let c = AxisCoeffs::new(n_in, n_out, bicubic_filter, 2.0);
            for xx in 0..n_out {
                let (_, k) = c.taps(xx);
                let sum: i64 = k.iter().map(|&w| w as i64).sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= k.len() as i64, "{n_in}->{n_out} @{xx}: {sum}");
            }
        }
    }

    /// Bytes produced by Pillow 13.0.0's `Image.resize` on the same pattern (horizontal-first and vertical-first
    /// cases); `scripts/compare_preprocess.py --sweep` checks many more sizes against the installed Pillow.
    #[test]
    fn matches_pillow_bytes() {
        let pattern = |w: u32, h: u32| {
            RgbImage::from_fn(w, h, |x, y| {
                let (x, y) = (x as i32, y as i32);
                image::Rgb([x * 37 + y * 11, x * y * 7, 255 - x * 5 - y * 3].map(|v| v.rem_euclid(256) as u8))
            })
        };
        let horizontal_first: [u8; 60] = [
            42, 6, 248, 143, 22, 235, 158, 40, 222, 65, 64, 209, 166, 86, 196, 71, 21, 240, 174, 85, 227, 132, 156,
            214, 94, 157, 201, 199, 149, 188, 105, 39, 232, 188, 155, 219, 80, 152, 206, 132, 127, 193, 190, 142, 180,
            139, 61, 224, 165, 157, 211, 65, 126, 198, 169, 153, 185, 134, 122, 172,
        ];
        assert_eq!(resize_rgb8(&pattern(13, 11), 5, 4, Resample::Bicubic).as_raw(), &horizontal_first);
        let vertical_first: [u8; 108] = [
            31, 4, 249, 83, 22, 241, 142, 42, 234, 202, 65, 226, 78, 12, 236, 130, 73, 228, 195, 147, 221, 172, 166,
            213, 127, 22, 222, 192, 132, 214, 177, 164, 207, 42, 114, 199, 185, 32, 209, 194, 173, 201, 64, 115, 194,
            78, 135, 186, 194, 49, 196, 59, 116, 188, 72, 136, 181, 134, 122, 173, 81, 62, 182, 62, 113, 174, 129, 148,
            167, 187, 115, 159, 60, 72, 169, 119, 164, 161, 184, 83, 154, 191, 140, 146, 117, 83, 155, 173, 228, 147,
            207, 174, 140, 73, 134, 132, 165, 33, 142, 213, 101, 134, 83, 105, 127, 61, 111, 119,
        ];
        assert_eq!(resize_rgb8(&pattern(6, 40), 4, 9, Resample::Bicubic).as_raw(), &vertical_first);
    }

    #[test]
    fn rejects_unknown_filters_by_number() {
        assert_eq!(Resample::from_pil(3), Ok(Resample::Bicubic));
        assert!(Resample::from_pil(6).unwrap_err().contains('6'));
        assert!(Resample::from_pil(42).unwrap_err().contains("42"));
    }
}
