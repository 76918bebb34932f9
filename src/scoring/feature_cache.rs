//! Image features on disk: one safetensors file per model checksum, holding a `features` matrix and, in its
//! metadata, the key of each row (canonical path, size and modification time of the image file). A row whose file
//! changed no longer matches its key and is recomputed; files are replaced atomically (write, then rename).

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What identifies one image file's content for caching.
pub fn image_key(path: &Path) -> Result<String> {
    let canonical = path.canonicalize().with_context(|| format!("cannot open image {}", path.display()))?;
    let meta = std::fs::metadata(&canonical).with_context(|| format!("cannot stat image {}", path.display()))?;
    let mtime =
        meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    Ok(format!("{}\t{}\t{}", canonical.display(), meta.len(), mtime))
}

/// The path part of a key.
fn key_path(key: &str) -> &str {
    key.split('\t').next().unwrap_or(key)
}

/// Bumped whenever decoding, preprocessing or the vision tower changes what features an image gets, so that older
/// cache files are not read.
const FORMAT_VERSION: u32 = 1;

pub struct FeatureCache {
    file: PathBuf,
    dim: usize,
    rows: HashMap<String, Vec<f32>>,
}

impl FeatureCache {
    /// Opens (or starts) the cache of one model in `dir`, for features computed by `backend` (`cpu`, `cuda`: their
    /// roundings differ). An unreadable cache file is reported and ignored.
    pub fn open(dir: &Path, model_checksum: &str, backend: &str, dim: usize) -> Self {
        let checksum = &model_checksum[..model_checksum.len().min(32)];
        let file = dir.join(format!("image-features-v{FORMAT_VERSION}-{backend}-{checksum}.safetensors"));
        let rows = match read_rows(&file, dim) {
            Ok(rows) => rows,
            Err(e) => {
                if file.exists() {
                    tracing::warn!("ignoring the image feature cache {}: {e:#}", file.display());
                }
                HashMap::new()
            }
        };
        Self { file, dim, rows }
    }

    pub fn get(&self, key: &str) -> Option<&[f32]> {
        self.rows.get(key).map(Vec::as_slice)
    }

    /// Adds rows, replacing older rows of the same files.
    pub fn insert(&mut self, entries: Vec<(String, Vec<f32>)>) {
        let replaced: std::collections::HashSet<String> =
            entries.iter().map(|(k, _)| key_path(k).to_string()).collect();
        self.rows.retain(|k, _| !replaced.contains(key_path(k)));
        self.rows.extend(entries);
    }

    /// Writes the cache atomically.
    pub fn save(&self) -> Result<()> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create cache folder {}", dir.display()))?;
        let mut keys: Vec<&String> = self.rows.keys().collect();
        keys.sort();
        let mut values = Vec::with_capacity(keys.len() * self.dim);
        for key in &keys {
            values.extend_from_slice(&self.rows[*key]);
        }
        let bytes: &[u8] = bytemuck::cast_slice(&values);
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![keys.len(), self.dim], bytes)?;
        let metadata = HashMap::from([("keys".to_string(), serde_json::to_string(&keys)?)]);
        let data = safetensors::serialize([("features", view)], Some(metadata))?;
        crate::atomic_file::write(&self.file, &data)
    }
}

fn read_rows(file: &Path, dim: usize) -> Result<HashMap<String, Vec<f32>>> {
    let bytes = std::fs::read(file)?;
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let keys: Vec<String> = match metadata.metadata().as_ref().and_then(|m| m.get("keys")) {
        Some(json) => serde_json::from_str(json)?,
        None => bail!("no keys in its metadata"),
    };
    let tensors = safetensors::SafeTensors::deserialize(&bytes)?;
    let features = tensors.tensor("features")?;
    if features.dtype() != safetensors::Dtype::F32 || features.shape() != [keys.len(), dim] {
        bail!("features are {:?} {:?}, expected F32 [{}, {dim}]", features.dtype(), features.shape(), keys.len());
    }
    let mut values = vec![0.0f32; keys.len() * dim];
    crate::checkpoint::DType::F32.convert(features.data(), &mut values);
    Ok(keys.into_iter().zip(values.chunks_exact(dim).map(<[f32]>::to_vec)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("a.png");
        std::fs::write(&image, b"one").unwrap();
        let key = image_key(&image).unwrap();
        let mut cache = FeatureCache::open(dir.path(), "abc", "cpu", 2);
        assert!(cache.get(&key).is_none());
        cache.insert(vec![(key.clone(), vec![1.0, 2.0])]);
        cache.save().unwrap();
        let cache = FeatureCache::open(dir.path(), "abc", "cpu", 2);
        assert_eq!(cache.get(&key), Some(&[1.0, 2.0][..]));
        std::fs::write(&image, b"changed content").unwrap();
        let new_key = image_key(&image).unwrap();
        assert_ne!(new_key, key, "a file of another size has another key");
        assert!(cache.get(&new_key).is_none());
        let mut cache = cache;
        cache.insert(vec![(new_key.clone(), vec![3.0, 4.0])]);
        assert!(cache.get(&key).is_none(), "the stale row of the same file is dropped");
        // Another model's cache is separate; a corrupt file is ignored.
        std::fs::write(dir.path().join(format!("image-features-v{FORMAT_VERSION}-cpu-zzz.safetensors")), b"garbage")
            .unwrap();
        assert!(FeatureCache::open(dir.path(), "zzz", "cpu", 2).get(&key).is_none());
        assert!(
            FeatureCache::open(dir.path(), "abc", "cuda", 2).get(&key).is_none(),
            "another backend has its own file"
        );
    }
}
