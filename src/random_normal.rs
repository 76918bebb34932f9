//! Counter-based, roughly normal random values: value `i` of a stream depends only on `(seed, i)`, so the host and
//! a GPU kernel (`kernels/random.cu`) draw the same weights in any order and in parallel. Enough for benchmark
//! weights, not for statistics.

use crate::sampling::{SPLITMIX_GAMMA, mix64};
use rayon::prelude::*;

/// A uniform in [0, 1) with 24 bits: the top bits of `mix64(seed + (counter + 1) * G)`.
#[inline]
fn uniform(seed: u64, counter: u64) -> f32 {
    let bits = mix64(seed.wrapping_add(counter.wrapping_add(1).wrapping_mul(SPLITMIX_GAMMA)));
    (bits >> 40) as f32 / (1u64 << 24) as f32
}

/// Value `index` of the stream `seed`: `mean + std * (u0 + u1 + u2 + u3 - 2) / sqrt(1/3)`, the four uniforms at
/// counters `4 * index .. 4 * index + 4` summed in order (the sum of four uniforms has variance 4/12).
#[inline]
pub fn normal_value(seed: u64, index: u64, mean: f32, std: f32) -> f32 {
    let scale = std * NORMAL_SCALE;
    let sum = uniform(seed, 4 * index)
        + uniform(seed, 4 * index + 1)
        + uniform(seed, 4 * index + 2)
        + uniform(seed, 4 * index + 3);
    mean + scale * (sum - 2.0)
}

/// `1 / sqrt(4 / 12)`, the factor that gives the sum of four uniforms unit variance.
pub const NORMAL_SCALE: f32 = 1.732_050_8;

/// Values `start .. start + count` of the stream `seed`.
pub fn normal_values(seed: u64, start: u64, count: usize, mean: f32, std: f32) -> Vec<f32> {
    (0..count as u64).into_par_iter().map(|i| normal_value(seed, start + i, mean, std)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_asked_moments_and_depend_only_on_their_index() {
        let values = normal_values(7, 0, 100_000, 1.0, 0.5);
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / values.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.01, "std {}", var.sqrt());
        assert_eq!(normal_values(7, 500, 10, 1.0, 0.5), values[500..510]);
        assert_ne!(normal_values(8, 0, 10, 1.0, 0.5), values[..10]);
    }
}
