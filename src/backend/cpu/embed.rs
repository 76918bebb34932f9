//! The vision tower's input: image patches and the ViT token sequence.

/// Cuts CHW images `[batch, 3 * size * size]` into patches, one row per patch in raster order, each row laid out
/// as the convolution weight is (channel, then patch row, then patch column).
pub fn im2col(pixels: &[f32], batch: usize, size: usize, patch: usize) -> Vec<f32> {
    let grid = size / patch;
    let mut out = Vec::with_capacity(batch * grid * grid * 3 * patch * patch);
    for b in 0..batch {
        let image = &pixels[b * 3 * size * size..(b + 1) * 3 * size * size];
        for gy in 0..grid {
            for gx in 0..grid {
                for c in 0..3 {
                    for dy in 0..patch {
                        let start = c * size * size + (gy * patch + dy) * size + gx * patch;
                        out.extend_from_slice(&image[start..start + patch]);
                    }
                }
            }
        }
    }
    out
}

/// `[batch * (1 + patches), dim]`: per image the class token then its projected patches, plus positions.
pub fn assemble_vit_tokens(
    projected: &[f32],
    batch: usize,
    patches: usize,
    class: &[f32],
    positions: &[f32],
    dim: usize,
) -> Vec<f32> {
    let tokens = patches + 1;
    let mut out = Vec::with_capacity(batch * tokens * dim);
    for b in 0..batch {
        out.extend(class.iter().zip(&positions[..dim]).map(|(c, p)| c + p));
        for p in 0..patches {
            let row = &projected[(b * patches + p) * dim..][..dim];
            let pos = &positions[(p + 1) * dim..][..dim];
            out.extend(row.iter().zip(pos).map(|(x, q)| x + q));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn im2col_leaves_out_the_pixels_past_the_last_whole_patch() {
        // A 5x5 image in 2x2 patches: a 2x2 grid, row and column 4 unseen (a stride-2 convolution's output).
        let pixels: Vec<f32> =
            (0..3).flat_map(|c| (0..5).flat_map(move |y| (0..5).map(move |x| (100 * c + 10 * y + x) as f32))).collect();
        let cols = im2col(&pixels, 1, 5, 2);
        assert_eq!(cols.len(), 4 * 12);
        // The last patch (bottom right): rows 2-3, columns 2-3 of each channel.
        assert_eq!(&cols[36..40], &[22.0, 23.0, 32.0, 33.0]);
        assert_eq!(&cols[44..48], &[222.0, 223.0, 232.0, 233.0]);
        assert!(cols.iter().all(|v| (*v as i32) % 10 != 4 && ((*v as i32) / 10) % 10 != 4));
    }

    #[test]
    fn im2col_orders_patches_in_raster_order() {
        // One 4x4 image with 2x2 patches; channel c, pixel (y, x) holds 100c + 10y + x.
        let pixels: Vec<f32> =
            (0..3).flat_map(|c| (0..4).flat_map(move |y| (0..4).map(move |x| (100 * c + 10 * y + x) as f32))).collect();
        let cols = im2col(&pixels, 1, 4, 2);
        assert_eq!(cols.len(), 4 * 12);
        // Second patch (top right): channel 0 rows 0-1, columns 2-3.
        assert_eq!(&cols[12..16], &[2.0, 3.0, 12.0, 13.0]);
        // Its channel 2 part.
        assert_eq!(&cols[20..24], &[202.0, 203.0, 212.0, 213.0]);
    }
}
