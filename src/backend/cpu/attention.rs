//! Multi-head attention on a packed QKV tensor: each query row is handled on its own, with a numerically stable
//! softmax over the keys it may see.

use crate::backend::AttentionShape;
use rayon::prelude::*;

/// `qkv` is `[batch * seq, 3 * heads * head_dim]` (Q, then K, then V, each head-major); returns
/// `[batch * seq, heads * head_dim]`.
pub fn attention(qkv: &[f32], shape: AttentionShape) -> Vec<f32> {
    let AttentionShape { batch: _, seq, heads, head_dim, causal } = shape;
    let width = heads * head_dim;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = vec![0.0f32; shape.batch * seq * width];
    out.par_chunks_mut(width).enumerate().for_each(|(row, out_row)| {
        let (b, i) = (row / seq, row % seq);
        let visible = if causal { i + 1 } else { seq };
        let mut scores = vec![0.0f32; visible];
        for h in 0..heads {
            let q = &qkv[row * 3 * width + h * head_dim..][..head_dim];
            for (j, s) in scores.iter_mut().enumerate() {
                let k = &qkv[(b * seq + j) * 3 * width + width + h * head_dim..][..head_dim];
                *s = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0.0f32;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                total += *s;
            }
            let o = &mut out_row[h * head_dim..(h + 1) * head_dim];
            for (j, &p) in scores.iter().enumerate() {
                let v = &qkv[(b * seq + j) * 3 * width + 2 * width + h * head_dim..][..head_dim];
                let w = p / total;
                o.iter_mut().zip(v).for_each(|(acc, &x)| *acc += w * x);
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_key_returns_its_value_and_causal_hides_the_future() {
        // One head of width 2, two positions.
        let qkv = vec![
            1.0, 0.0, 1.0, 0.0, 10.0, 20.0, // position 0: q, k, v
            0.0, 1.0, 0.0, 1.0, 30.0, 40.0, // position 1
        ];
        let shape = AttentionShape { batch: 1, seq: 2, heads: 1, head_dim: 2, causal: true };
        let out = attention(&qkv, shape);
        assert_eq!(&out[..2], &[10.0, 20.0], "position 0 sees only itself");
        // Position 1: scores 0 and 1/sqrt(2); weights by softmax.
        let w1 = 1.0 / (1.0 + (-(0.5f32).sqrt()).exp());
        let expect = [10.0 * (1.0 - w1) + 30.0 * w1, 20.0 * (1.0 - w1) + 40.0 * w1];
        assert!((out[2] - expect[0]).abs() < 1e-4 && (out[3] - expect[1]).abs() < 1e-4);
        let full = attention(&qkv, AttentionShape { causal: false, ..shape });
        assert!(full[0] > 10.0, "without the mask position 0 sees position 1");
    }
}
