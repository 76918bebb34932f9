//! Randomly initialised weights of any shape, in memory: for benchmarks of real model sizes without a checkpoint
//! on disk.

use crate::checkpoint::{DType, StoredTensor, WeightStore};

/// SplitMix64 turned into roughly normal values (sum of four uniforms), enough for benchmark weights.
struct Values(u64);

impl Values {
    fn next_uniform(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }

    fn normal(&mut self, count: usize, mean: f32, std: f32) -> Vec<f32> {
        // The sum of four uniforms has variance 4/12.
        let scale = std / (4.0f32 / 12.0).sqrt();
        (0..count).map(|_| mean + scale * ((0..4).map(|_| self.next_uniform()).sum::<f32>() - 2.0)).collect()
    }
}

/// Collects named random tensors stored as one dtype.
pub struct RandomWeights {
    values: Values,
    dtype: DType,
    tensors: Vec<StoredTensor>,
}

impl RandomWeights {
    pub fn new(dtype: DType, seed: u64) -> Self {
        Self { values: Values(seed), dtype, tensors: Vec::new() }
    }

    /// Adds a tensor of roughly normal values.
    pub fn add(&mut self, name: &str, shape: &[usize], mean: f32, std: f32) {
        let values = self.values.normal(shape.iter().product(), mean, std);
        self.tensors.push(StoredTensor::from_f32_as(name, shape, &values, self.dtype));
    }

    pub fn into_store(self) -> WeightStore {
        WeightStore::from_tensors("random weights", self.tensors)
    }
}
