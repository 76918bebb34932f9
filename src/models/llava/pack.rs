//! LLaVA-OneVision's packing of one image's tile features into the sequence that replaces its image tokens (HF
//! `pack_image_features`): the whole-image tile's tokens first; the grid tiles joined into one feature map
//! (`grid_h * side` rows of `grid_w * side` tokens), cut back to the image's aspect ratio (the padding the
//! processor added), bilinearly downscaled when it holds more than about `max_tiles` tiles' worth, and an
//! `image_newline` feature after each row. An image of one tile is its tokens and one newline.

use anyhow::{Result, ensure};

/// A feature map: `channels` values per position of a `height x width` grid, position-major.
struct Map {
    height: usize,
    width: usize,
    channels: usize,
    values: Vec<f32>,
}

impl Map {
    fn at(&self, y: usize, x: usize) -> &[f32] {
        let i = (y * self.width + x) * self.channels;
        &self.values[i..i + self.channels]
    }
}

/// Python's `int(round(value, 7))` for the non-negative values unpadding computes.
fn int_round7(value: f64) -> usize {
    ((value * 1e7).round_ties_even() / 1e7).floor() as usize
}

/// HF `unpad_image`: the rows (or columns) the processor's centred padding added, cut off both sides.
fn unpad(map: Map, (height, width): (usize, usize)) -> Map {
    let (h, w) = (map.height, map.width);
    let (original, current) = (width as f64 / height as f64, w as f64 / h as f64);
    let (rows, cols) = if original > current {
        let new_height = int_round7(height as f64 * (w as f64 / width as f64));
        let pad = (h - new_height.min(h)) / 2;
        (pad..h - pad, 0..w)
    } else {
        let new_width = int_round7(width as f64 * (h as f64 / height as f64));
        let pad = (w - new_width.min(w)) / 2;
        (0..h, pad..w - pad)
    };
    let mut values = Vec::with_capacity(rows.len() * cols.len() * map.channels);
    for y in rows.clone() {
        for x in cols.clone() {
            values.extend_from_slice(map.at(y, x));
        }
    }
    Map { height: rows.len(), width: cols.len(), channels: map.channels, values }
}

/// PyTorch's bilinear `interpolate` (`align_corners=False`, no antialiasing) to `out_h x out_w`, in f32 as its CPU
/// kernel computes.
fn bilinear(map: &Map, out_h: usize, out_w: usize) -> Map {
    let source = |i: usize, input: usize, output: usize| -> (usize, usize, f32) {
        let scale = input as f32 / output as f32;
        let s = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (s as usize).min(input - 1);
        let i1 = (i0 + 1).min(input - 1);
        (i0, i1, s - i0 as f32)
    };
    let mut values = Vec::with_capacity(out_h * out_w * map.channels);
    for y in 0..out_h {
        let (y0, y1, ly) = source(y, map.height, out_h);
        for x in 0..out_w {
            let (x0, x1, lx) = source(x, map.width, out_w);
            let (a, b, c, d) = (map.at(y0, x0), map.at(y0, x1), map.at(y1, x0), map.at(y1, x1));
            for k in 0..map.channels {
                let top = (1.0 - lx) * a[k] + lx * b[k];
                let bottom = (1.0 - lx) * c[k] + lx * d[k];
                values.push((1.0 - ly) * top + ly * bottom);
            }
        }
    }
    Map { height: out_h, width: out_w, channels: map.channels, values }
}

/// The packed features `[n, channels]` of one image.
///
/// `features`: `[tiles * tokens, channels]` (the whole-image tile first, then the grid's tiles in row order),
/// `tokens` per tile, which must be `side^2` where there is a grid; `grid`: the grid's `(rows, columns)` of tiles;
/// `size`: the image's `(height, width)`.
#[allow(clippy::too_many_arguments)]
pub fn pack(
    features: &[f32],
    channels: usize,
    tokens: usize,
    side: usize,
    grid: (usize, usize),
    size: (usize, usize),
    max_tiles: usize,
    newline: &[f32],
) -> Result<Vec<f32>> {
    let per_tile = tokens * channels;
    let tiles = features.len() / per_tile.max(1);
    ensure!(features.len() == tiles * per_tile && tiles >= 1, "{} feature values are not whole tiles", features.len());
    ensure!(newline.len() == channels, "image_newline has {} values, the features {channels}", newline.len());
    let mut out = features[..per_tile].to_vec();
    if tiles == 1 {
        out.extend_from_slice(newline);
        return Ok(out);
    }
    ensure!(
        tokens == side * side,
        "{tokens} tokens per tile cannot be laid out as a grid of {side}x{side} (vision_feature_select_strategy \
         default drops one)"
    );
    let (rows, cols) = grid;
    ensure!(tiles == 1 + rows * cols, "{} grid tiles for a grid of {rows}x{cols}", tiles - 1);
    // Tile (r, c)'s token (y, x) goes to map position (r * side + y, c * side + x).
    let (height, width) = (rows * side, cols * side);
    let mut values = vec![0.0f32; height * width * channels];
    for r in 0..rows {
        for c in 0..cols {
            let tile = &features[(1 + r * cols + c) * per_tile..][..per_tile];
            for y in 0..side {
                for x in 0..side {
                    let dst = ((r * side + y) * width + c * side + x) * channels;
                    let src = (y * side + x) * channels;
                    values[dst..dst + channels].copy_from_slice(&tile[src..src + channels]);
                }
            }
        }
    }
    let mut map = unpad(Map { height, width, channels, values }, size);
    let ratio = ((map.height * map.width) as f64 / (max_tiles * side * side) as f64).sqrt();
    if ratio > 1.1 {
        let (h, w) = ((map.height as f64 / ratio).floor() as usize, (map.width as f64 / ratio).floor() as usize);
        map = bilinear(&map, h.max(1), w.max(1));
    }
    for y in 0..map.height {
        for x in 0..map.width {
            out.extend_from_slice(map.at(y, x));
        }
        out.extend_from_slice(newline);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpadding_cuts_the_processor_s_padding_from_both_sides() {
        // A 4x4 map of a wide image (2:1): the rows kept are those the image filled, 2 of 4, centred.
        let values: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let map = unpad(Map { height: 4, width: 4, channels: 1, values }, (10, 20));
        assert_eq!((map.height, map.width), (2, 4));
        assert_eq!(map.values, [4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
    }

    #[test]
    fn bilinear_halving_averages_neighbours() {
        let map = Map { height: 2, width: 2, channels: 1, values: vec![0.0, 2.0, 4.0, 6.0] };
        // Output pixel 0 samples source (0.5, 0.5): the mean of all four.
        assert_eq!(bilinear(&map, 1, 1).values, [3.0]);
        // Doubling: source -0.25 clamps to 0, 0.25 lies a quarter of the way.
        let up = bilinear(&Map { height: 1, width: 2, channels: 1, values: vec![0.0, 4.0] }, 1, 4);
        assert_eq!(up.values, [0.0, 1.0, 3.0, 4.0]);
    }
}
