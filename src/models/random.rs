//! Randomly initialised weights of any shape, in memory: for benchmarks of real model sizes without a checkpoint
//! on disk.

use crate::checkpoint::{DType, StoredTensor, WeightStore};
use crate::random_normal::normal_values;

/// Collects named random tensors stored as one dtype.
pub struct RandomWeights {
    seed: u64,
    /// Index of the next value of the stream.
    next: u64,
    dtype: DType,
    tensors: Vec<StoredTensor>,
}

impl RandomWeights {
    pub fn new(dtype: DType, seed: u64) -> Self {
        Self { seed, next: 0, dtype, tensors: Vec::new() }
    }

    /// Adds a tensor of roughly normal values.
    pub fn add(&mut self, name: &str, shape: &[usize], mean: f32, std: f32) {
        let count: usize = shape.iter().product();
        let values = normal_values(self.seed, self.next, count, mean, std);
        self.next += count as u64;
        self.tensors.push(StoredTensor::from_f32_as(name, shape, &values, self.dtype));
    }

    pub fn into_store(self) -> WeightStore {
        WeightStore::from_tensors("random weights", self.tensors)
    }
}
