//! A VLM's packed image features on disk: one folder per model checksum and backend, one safetensors file per
//! image, named by a hash of the image's key (canonical path, size and modification time, as the CLIP feature cache
//! keys it) and holding the key in its metadata, so that a changed file misses and a hash collision cannot be read as
//! a hit. An image's features are tens of megabytes (thousands of tokens of the language model's width), so files
//! are read one at a time when asked for, never all at once. Files are written atomically; an unreadable one is
//! reported, ignored and rewritten.

use anyhow::{Context, Result, bail, ensure};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Bumped whenever preprocessing, the vision tower, the projector or the packing changes what features an image
/// gets, so that older files are not read.
const FORMAT_VERSION: u32 = 1;

/// The most tokens one image's features may have in a cache file (`anyres_max_9` packs at most ~7,300).
const MAX_TOKENS: usize = 1 << 20;

/// Features read back: `[tokens, dim]` row-major, and the number of tiles the vision tower saw.
pub struct CachedFeatures {
    pub features: Vec<f32>,
    pub tokens: usize,
    pub tiles: usize,
}

#[derive(Clone, Debug)]
pub struct VlmFeatureCache {
    dir: PathBuf,
    dim: usize,
}

impl VlmFeatureCache {
    /// The cache of one model (by checksum) in `root`, for features computed by `backend` (`cpu`, `cuda`: their
    /// roundings differ) of width `dim`.
    pub fn open(root: &Path, model_checksum: &str, backend: &str, dim: usize) -> Self {
        let checksum = &model_checksum[..model_checksum.len().min(32)];
        Self { dir: root.join(format!("vlm-features-v{FORMAT_VERSION}-{backend}-{checksum}")), dim }
    }

    fn file(&self, key: &str) -> PathBuf {
        let hash = blake3::hash(key.as_bytes()).to_hex();
        self.dir.join(format!("{}.safetensors", &hash[..32]))
    }

    /// The features stored for `key`; `None` when there are none, or when the file cannot be used (reported).
    pub fn get(&self, key: &str) -> Option<CachedFeatures> {
        let file = self.file(key);
        if !file.is_file() {
            return None;
        }
        match read(&file, key, self.dim) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("ignoring the cached image features {}: {e:#}", file.display());
                None
            }
        }
    }

    /// Stores the features of `key`, replacing what was there.
    pub fn put(&self, key: &str, features: &[f32], tiles: usize) -> Result<()> {
        ensure!(
            self.dim > 0 && features.len().is_multiple_of(self.dim),
            "{} feature values are not rows of {}",
            features.len(),
            self.dim
        );
        let bytes: &[u8] = bytemuck::cast_slice(features);
        let shape = vec![features.len() / self.dim, self.dim];
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, bytes)?;
        let metadata = HashMap::from([("key".to_string(), key.to_string()), ("tiles".to_string(), tiles.to_string())]);
        let data = safetensors::serialize([("features", view)], Some(metadata))?;
        crate::atomic_file::write(&self.file(key), &data)
    }
}

/// The file's features if it holds `key`'s; `None` if it holds another key's (a changed image or a collision).
fn read(file: &Path, key: &str, dim: usize) -> Result<Option<CachedFeatures>> {
    let bytes = std::fs::read(file)?;
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let metadata = metadata.metadata().as_ref().context("no metadata")?;
    if metadata.get("key").map(String::as_str) != Some(key) {
        return Ok(None);
    }
    let tiles: usize = metadata.get("tiles").context("no tile count")?.parse().context("the tile count")?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)?;
    let features = tensors.tensor("features")?;
    let tokens = match features.shape() {
        &[tokens, d] if d == dim && (1..=MAX_TOKENS).contains(&tokens) => tokens,
        shape => bail!("features are {shape:?}, expected [1 to {MAX_TOKENS}, {dim}]"),
    };
    ensure!(features.dtype() == safetensors::Dtype::F32, "features are {:?}, expected F32", features.dtype());
    let mut values = vec![0.0f32; tokens * dim];
    crate::checkpoint::DType::F32.convert(features.data(), &mut values);
    Ok(Some(CachedFeatures { features: values, tokens, tiles }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::feature_cache::image_key;

    #[test]
    fn round_trips_misses_changed_files_and_ignores_damage() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("a.png");
        std::fs::write(&image, b"one").unwrap();
        let key = image_key(&image).unwrap();
        let cache = VlmFeatureCache::open(dir.path(), "abc", "cpu", 2);
        assert!(cache.get(&key).is_none());
        cache.put(&key, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2).unwrap();
        let found = VlmFeatureCache::open(dir.path(), "abc", "cpu", 2).get(&key).unwrap();
        assert_eq!((found.features.as_slice(), found.tokens, found.tiles), (&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0][..], 3, 2));
        assert!(VlmFeatureCache::open(dir.path(), "abc", "cuda", 2).get(&key).is_none(), "each backend its own");
        assert!(VlmFeatureCache::open(dir.path(), "zzz", "cpu", 2).get(&key).is_none(), "each model its own");
        assert!(VlmFeatureCache::open(dir.path(), "abc", "cpu", 3).get(&key).is_none(), "another width is not read");

        // The image changes: its key changes, and the old file is not read for it.
        std::fs::write(&image, b"changed content").unwrap();
        let new_key = image_key(&image).unwrap();
        assert!(cache.get(&new_key).is_none());
        // A file holding another key (as a hash collision would) is a miss, not a hit.
        std::fs::copy(cache.file(&key), cache.file(&new_key)).unwrap();
        assert!(cache.get(&new_key).is_none());
        // A damaged file is ignored, then replaced.
        std::fs::write(cache.file(&new_key), b"garbage").unwrap();
        assert!(cache.get(&new_key).is_none());
        cache.put(&new_key, &[7.0, 8.0], 1).unwrap();
        assert_eq!(cache.get(&new_key).unwrap().features, vec![7.0, 8.0]);
        assert!(cache.put(&new_key, &[1.0, 2.0, 3.0], 1).is_err(), "a ragged matrix is refused");
    }
}
