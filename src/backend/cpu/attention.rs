//! Multi-head attention, one query row at a time, with a numerically stable softmax over the keys the row may
//! see. Grouped-query attention: query head `h` reads key/value head `h / (heads / kv_heads)`.

use crate::backend::{AttentionShape, HeadShape, Scoring};
use rayon::prelude::*;

/// Keys and values visible to one query row, as up to two runs of rows (a shared prefix, then a sequence's own
/// part); each row is `kv_heads * head_dim` wide. `bias`, where given, is added to the row's scores: `[heads,
/// visible keys]`.
pub struct Visible<'a> {
    pub keys: [&'a [f32]; 2],
    pub values: [&'a [f32]; 2],
    pub bias: Option<&'a [f32]>,
}

/// Attention of one query row (`heads * head_dim`) over the visible keys (the last `scoring.window` of them in a
/// sliding-window layer), written to `out`.
pub fn attend_row(q: &[f32], visible: &Visible, heads: HeadShape, scoring: Scoring, out: &mut [f32]) {
    let HeadShape { heads: n_heads, kv_heads, head_dim } = heads;
    let kv_width = kv_heads * head_dim;
    let group = n_heads / kv_heads;
    let visible_count: usize = visible.keys.iter().map(|k| k.len() / kv_width).sum();
    let first = scoring.first_key(visible_count);
    let mut scores = vec![0.0f32; visible_count - first];
    for h in 0..n_heads {
        let kv = (h / group) * head_dim;
        let q = &q[h * head_dim..(h + 1) * head_dim];
        let keys = visible.keys.iter().flat_map(|run| run.chunks_exact(kv_width)).skip(first);
        for (s, k) in scores.iter_mut().zip(keys) {
            *s = q.iter().zip(&k[kv..kv + head_dim]).map(|(a, b)| a * b).sum::<f32>() * scoring.scale;
        }
        if let Some(bias) = visible.bias {
            let row = &bias[h * visible_count + first..(h + 1) * visible_count];
            scores.iter_mut().zip(row).for_each(|(s, b)| *s += b);
        }
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0f32;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            total += *s;
        }
        let o = &mut out[h * head_dim..(h + 1) * head_dim];
        o.fill(0.0);
        let values = visible.values.iter().flat_map(|run| run.chunks_exact(kv_width)).skip(first);
        for (&p, v) in scores.iter().zip(values) {
            let w = p / total;
            o.iter_mut().zip(&v[kv..kv + head_dim]).for_each(|(acc, &x)| *acc += w * x);
        }
    }
}

/// Attention without a cache over packed QKV rows `[batch * seq, qkv_width]`, with an optional bias of the scores
/// `[heads * seq, seq]` shared by the batch; returns `[batch * seq, heads * head_dim]`.
pub fn attention(qkv: &[f32], shape: AttentionShape, bias: Option<&[f32]>) -> Vec<f32> {
    let AttentionShape { batch, seq, heads, kv_heads, head_dim, causal } = shape;
    let heads_shape = HeadShape { heads, kv_heads, head_dim };
    let (width, kv_width, qkv_width) = (heads * head_dim, kv_heads * head_dim, shape.qkv_width());
    // Keys and values of every row, contiguous, so that a row's visible run is one slice.
    let mut keys = Vec::with_capacity(batch * seq * kv_width);
    let mut values = Vec::with_capacity(batch * seq * kv_width);
    for row in qkv.chunks_exact(qkv_width) {
        keys.extend_from_slice(&row[width..width + kv_width]);
        values.extend_from_slice(&row[width + kv_width..]);
    }
    let mut out = vec![0.0f32; batch * seq * width];
    out.par_chunks_mut(width).enumerate().for_each(|(row, out_row)| {
        let (b, i) = (row / seq, row % seq);
        let end = if causal { i + 1 } else { seq };
        let run = (b * seq * kv_width)..((b * seq + end) * kv_width);
        // This row's bias, for the keys it sees, head after head.
        let row_bias: Option<Vec<f32>> = bias.map(|bias| {
            (0..heads).flat_map(|h| &bias[(h * seq + i) * seq..(h * seq + i) * seq + end]).copied().collect()
        });
        let visible =
            Visible { keys: [&keys[run.clone()], &[]], values: [&values[run], &[]], bias: row_bias.as_deref() };
        attend_row(
            &qkv[row * qkv_width..row * qkv_width + width],
            &visible,
            heads_shape,
            Scoring::full(head_dim),
            out_row,
        );
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
        let shape = AttentionShape { batch: 1, seq: 2, heads: 1, kv_heads: 1, head_dim: 2, causal: true };
        let out = attention(&qkv, shape, None);
        assert_eq!(&out[..2], &[10.0, 20.0], "position 0 sees only itself");
        // Position 1: scores 0 and 1/sqrt(2); weights by softmax.
        let w1 = 1.0 / (1.0 + (-(0.5f32).sqrt()).exp());
        let expect = [10.0 * (1.0 - w1) + 30.0 * w1, 20.0 * (1.0 - w1) + 40.0 * w1];
        assert!((out[2] - expect[0]).abs() < 1e-4 && (out[3] - expect[1]).abs() < 1e-4);
        let full = attention(&qkv, AttentionShape { causal: false, ..shape }, None);
        assert!(full[0] > 10.0, "without the mask position 0 sees position 1");
    }

    #[test]
    fn a_sliding_window_sees_only_the_last_keys() {
        // One head of width 1; keys 0..3 over two runs, values 1, 2, 3, 4.
        let (keys, values) = ([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]);
        let visible = Visible { keys: [&keys[..3], &keys[3..]], values: [&values[..3], &values[3..]], bias: None };
        let heads = HeadShape { heads: 1, kv_heads: 1, head_dim: 1 };
        let mut out = [0.0];
        attend_row(&[1.0], &visible, heads, Scoring { scale: 1.0, window: Some(2) }, &mut out);
        assert_eq!(out, [3.5], "equal scores: the mean of the last two values");
        attend_row(&[1.0], &visible, heads, Scoring { scale: 1.0, window: Some(9) }, &mut out);
        assert_eq!(out, [2.5], "a window wider than the keys sees them all");
    }

    #[test]
    fn grouped_query_heads_share_their_key_value_head() {
        // Two query heads over one key/value head equal two separate single-head attentions with copied K/V.
        let (q0, q1, k, v) = ([0.3, -1.0], [1.2, 0.4], [[0.5, 0.1], [-0.7, 0.9]], [[1.0, 2.0], [3.0, -4.0]]);
        let row = |i: usize| [q0[0], q0[1], q1[0], q1[1], k[i][0], k[i][1], v[i][0], v[i][1]];
        let qkv: Vec<f32> = [row(0), row(1)].concat();
        let shape = AttentionShape { batch: 1, seq: 2, heads: 2, kv_heads: 1, head_dim: 2, causal: false };
        let gqa = attention(&qkv, shape, None);
        for (h, q) in [q0, q1].iter().enumerate() {
            let single: Vec<f32> = (0..2).flat_map(|i| [q[0], q[1], k[i][0], k[i][1], v[i][0], v[i][1]]).collect();
            let want = attention(&single, AttentionShape { heads: 1, ..shape }, None);
            assert_eq!(&gqa[h * 2..h * 2 + 2], &want[..2]);
            assert_eq!(&gqa[4 + h * 2..4 + h * 2 + 2], &want[2..4]);
        }
    }

    #[test]
    fn a_bias_moves_each_head_s_scores_for_its_own_row() {
        // Two heads of width 1, two positions, equal scores everywhere: without a bias each row averages the
        // values. A bias of ln 3 on key 1 for head 0's row 0 and on key 0 for head 1's row 1 weighs that key 3:1.
        let qkv = vec![
            0.0, 0.0, 1.0, 1.0, 10.0, 100.0, // position 0: q (2 heads), k, v
            0.0, 0.0, 1.0, 1.0, 20.0, 200.0, // position 1
        ];
        let shape = AttentionShape { batch: 1, seq: 2, heads: 2, kv_heads: 2, head_dim: 1, causal: false };
        let l = 3f32.ln();
        // [heads * seq, seq]: head 0 rows 0 and 1, then head 1 rows 0 and 1.
        let bias = [0.0, l, 0.0, 0.0, 0.0, 0.0, l, 0.0];
        let out = attention(&qkv, shape, Some(&bias));
        let close = |a: f32, b: f32| (a - b).abs() < 1e-4;
        assert!(close(out[0], 17.5) && close(out[1], 150.0), "row 0: {:?}", &out[..2]);
        assert!(close(out[2], 15.0) && close(out[3], 125.0), "row 1: {:?}", &out[2..]);
        // Causal: row 0 sees key 0 alone, whatever the bias on key 1.
        let causal = attention(&qkv, AttentionShape { causal: true, ..shape }, Some(&bias));
        assert_eq!(&causal[..2], &[10.0, 100.0]);
    }
}
