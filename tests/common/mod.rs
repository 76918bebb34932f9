//! Helpers shared by the integration tests: fixture paths, reading reference tensors, comparing features.

#![allow(dead_code)]

use std::path::PathBuf;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// A float32 tensor from a safetensors file: (shape, values).
pub fn read_tensor(file: &std::path::Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = tensors.tensor(name).unwrap_or_else(|e| panic!("{name} in {}: {e}", file.display()));
    assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name} is not float32");
    let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (view.shape().to_vec(), values)
}

/// The largest, over rows, of `max |got - want| / max |want|` within the row.
pub fn max_row_relative_error(got: &[f32], want: &[f32], cols: usize) -> f32 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.chunks(cols)
        .zip(want.chunks(cols))
        .map(|(g, w)| {
            let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
            let diff = g.iter().zip(w).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            diff / scale
        })
        .fold(0.0, f32::max)
}
