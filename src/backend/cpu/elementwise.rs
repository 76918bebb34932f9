//! Row-wise operations: linear-layer epilogues, layer norm, L2 normalisation.

use crate::backend::Activation;
use rayon::prelude::*;

/// Rows shorter than this are processed in groups, so that rayon's work items are not tiny.
const ROWS_PER_TASK_MIN_VALUES: usize = 16 * 1024;

fn rows_per_task(cols: usize) -> usize {
    (ROWS_PER_TASK_MIN_VALUES / cols.max(1)).max(1)
}

pub fn activate(x: f32, activation: Activation) -> f32 {
    match activation {
        Activation::None => x,
        Activation::QuickGelu => x / (1.0 + (-1.702 * x).exp()),
        Activation::Gelu => 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)),
        Activation::GeluTanh => {
            let inner = (2.0f32 / std::f32::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
            0.5 * x * (1.0 + inner.tanh())
        }
    }
}

/// `out = act(out + bias) + residual`, row by row.
pub fn epilogue(out: &mut [f32], cols: usize, bias: Option<&[f32]>, activation: Activation, residual: Option<&[f32]>) {
    let chunk = rows_per_task(cols) * cols;
    out.par_chunks_mut(chunk).enumerate().for_each(|(c, block)| {
        for (r, row) in block.chunks_mut(cols).enumerate() {
            let start = (c * chunk) + r * cols;
            for (j, v) in row.iter_mut().enumerate() {
                let mut y = *v + bias.map_or(0.0, |b| b[j]);
                y = activate(y, activation);
                if let Some(res) = residual {
                    y += res[start + j];
                }
                *v = y;
            }
        }
    });
}

/// Layer normalisation of each row in place (biased variance, as PyTorch).
pub fn layer_norm(data: &mut [f32], cols: usize, gain: &[f32], bias: &[f32], eps: f32) {
    let chunk = rows_per_task(cols) * cols;
    data.par_chunks_mut(chunk).for_each(|block| {
        for row in block.chunks_mut(cols) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            for (j, v) in row.iter_mut().enumerate() {
                *v = ((*v as f64 - mean) * inv) as f32 * gain[j] + bias[j];
            }
        }
    });
}

/// Divides each row by its L2 norm (a zero row stays zero).
pub fn l2_normalize(data: &mut [f32], cols: usize) {
    data.par_chunks_mut(cols.max(1)).for_each(|row| {
        let norm = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v = (*v as f64 / norm) as f32);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_match_their_formulas() {
        // Reference values of PyTorch's gelu, gelu(approximate="tanh") and x*sigmoid(1.702x) at 1.0 and -0.5.
        assert!((activate(1.0, Activation::Gelu) - 0.841_344_7).abs() < 1e-6);
        assert!((activate(-0.5, Activation::Gelu) + 0.154_268_8).abs() < 1e-6);
        assert!((activate(1.0, Activation::GeluTanh) - 0.841_192).abs() < 1e-5);
        assert!((activate(1.0, Activation::QuickGelu) - 0.845_795_75).abs() < 1e-6);
    }

    #[test]
    fn layer_norm_centres_and_scales() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0, -1.0, -1.0, -1.0, -1.0];
        layer_norm(&mut x, 4, &[1.0; 4], &[0.5; 4], 1e-5);
        // torch.nn.functional.layer_norm([1, 2, 3, 4], (4,)), eps 1e-5.
        let expect = [-1.341_635_5, -0.447_211_8, 0.447_211_8, 1.341_635_5];
        for (v, e) in x[..4].iter().zip(expect) {
            assert!((v - (e + 0.5)).abs() < 1e-6);
        }
        assert!(x[4..].iter().all(|&v| v == 0.5), "a constant row normalises to the bias");
    }
}
