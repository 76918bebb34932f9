//! Row-wise operations of decoder LLMs: RMS norm (of rows, or of each head of packed QKV rows), the gated MLP
//! activations, rotary embeddings.

use crate::backend::HeadShape;
use rayon::prelude::*;

/// `x / sqrt(mean(x^2) + eps) * (gain_offset + gain)` of one row.
fn rms_norm_row(row: &mut [f32], gain: &[f32], gain_offset: f32, eps: f32) {
    let mean_square = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / row.len() as f64;
    let inv = (1.0 / (mean_square + eps as f64).sqrt()) as f32;
    row.iter_mut().zip(gain).for_each(|(v, g)| *v = *v * inv * (gain_offset + g));
}

/// `x / sqrt(mean(x^2) + eps) * (gain_offset + gain)` per row.
pub fn rms_norm(data: &mut [f32], cols: usize, gain: &[f32], gain_offset: f32, eps: f32) {
    data.par_chunks_mut(cols.max(1)).for_each(|row| rms_norm_row(row, gain, gain_offset, eps));
}

/// RMS norm of each query head (gain `q_gain`) and key head (`k_gain`) of packed QKV rows, in place.
pub fn head_rms_norm(qkv: &mut [f32], heads: HeadShape, q_gain: &[f32], k_gain: &[f32], gain_offset: f32, eps: f32) {
    let d = heads.head_dim;
    qkv.par_chunks_mut(heads.qkv_width()).for_each(|row| {
        for (h, head) in row[..(heads.heads + heads.kv_heads) * d].chunks_exact_mut(d).enumerate() {
            rms_norm_row(head, if h < heads.heads { q_gain } else { k_gain }, gain_offset, eps);
        }
    });
}

/// `act(gate) * up` for rows laid out `[gate (f), up (f)]`.
pub fn gated(gate_up: &[f32], f: usize, act: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; gate_up.len() / 2];
    out.par_chunks_mut(f.max(1)).zip(gate_up.par_chunks(2 * f.max(1))).for_each(|(o, row)| {
        let (gate, up) = row.split_at(f);
        for ((o, &g), &u) in o.iter_mut().zip(gate).zip(up) {
            *o = act(g) * u;
        }
    });
    out
}

/// `silu(gate) * up` for rows laid out `[gate (f), up (f)]`.
pub fn silu_mul(gate_up: &[f32], f: usize) -> Vec<f32> {
    gated(gate_up, f, |g| g / (1.0 + (-g).exp()))
}

/// Rotates the query and key heads of each packed QKV row in place: for pair `i < d/2` of a head, `(x_i,
/// x_{i+d/2})` turns by the angle `position * inv_freq[i]` (HF's rotate-half layout).
pub fn rope(qkv: &mut [f32], positions: &[usize], heads: HeadShape, inv_freq: &[f32]) {
    let HeadShape { heads: n_heads, kv_heads, head_dim } = heads;
    let half = head_dim / 2;
    let rotated_heads = n_heads + kv_heads;
    qkv.par_chunks_mut(heads.qkv_width()).zip(positions.par_iter()).for_each(|(row, &position)| {
        // The angle is formed in f32 as HF does (position times inverse frequency), its cosine and sine in f64.
        let angles: Vec<(f32, f32)> = inv_freq
            .iter()
            .map(|&f| {
                let angle = (position as f32 * f) as f64;
                (angle.cos() as f32, angle.sin() as f32)
            })
            .collect();
        for head in row[..rotated_heads * head_dim].chunks_exact_mut(head_dim) {
            for (i, &(cos, sin)) in angles.iter().enumerate().take(half) {
                let (a, b) = (head[i], head[i + half]);
                head[i] = a * cos - b * sin;
                head[i + half] = b * cos + a * sin;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_matches_its_formula() {
        let mut x = vec![3.0, 4.0];
        rms_norm(&mut x, 2, &[1.0, 2.0], 0.0, 0.0);
        let rms = (12.5f32).sqrt();
        assert!((x[0] - 3.0 / rms).abs() < 1e-6 && (x[1] - 8.0 / rms).abs() < 1e-6);
        let mut y = vec![3.0, 4.0];
        rms_norm(&mut y, 2, &[0.0, 1.0], 1.0, 0.0);
        assert!((y[0] - 3.0 / rms).abs() < 1e-6 && (y[1] - 8.0 / rms).abs() < 1e-6, "gains offset by 1");
    }

    #[test]
    fn head_rms_norm_normalises_query_and_key_heads_only() {
        let heads = HeadShape { heads: 1, kv_heads: 1, head_dim: 2 };
        let mut qkv = vec![3.0, 4.0, 0.0, 2.0, 5.0, 6.0];
        head_rms_norm(&mut qkv, heads, &[1.0, 1.0], &[2.0, 2.0], 0.0, 0.0);
        let rms = (12.5f32).sqrt();
        assert!((qkv[0] - 3.0 / rms).abs() < 1e-6 && (qkv[1] - 4.0 / rms).abs() < 1e-6);
        assert!(qkv[2].abs() < 1e-6 && (qkv[3] - 2.0 * 2.0f32.sqrt()).abs() < 1e-6, "k with its own gain");
        assert_eq!(&qkv[4..], &[5.0, 6.0]);
    }

    #[test]
    fn rope_at_position_zero_is_identity_and_rotates_pairs() {
        let heads = HeadShape { heads: 1, kv_heads: 1, head_dim: 2 };
        let mut qkv = vec![1.0, 0.0, 0.0, 1.0, 5.0, 6.0];
        rope(&mut qkv, &[0], heads, &[1.0]);
        assert_eq!(qkv, vec![1.0, 0.0, 0.0, 1.0, 5.0, 6.0]);
        rope(&mut qkv, &[1], heads, &[std::f32::consts::FRAC_PI_2]);
        // q (1, 0) turns to (0, 1); k (0, 1) to (-1, 0); v is untouched.
        assert!(qkv[0].abs() < 1e-6 && (qkv[1] - 1.0).abs() < 1e-6);
        assert!((qkv[2] + 1.0).abs() < 1e-6 && qkv[3].abs() < 1e-6);
        assert_eq!(&qkv[4..], &[5.0, 6.0]);
    }

    #[test]
    fn silu_mul_gates_up() {
        let out = silu_mul(&[0.0, 2.0, 5.0, 3.0], 2);
        assert_eq!(out[0], 0.0);
        assert!((out[1] - 2.0 / (1.0 + (-2.0f32).exp()) * 3.0).abs() < 1e-6);
    }
}
