//! The weights of a model directory: one `model.safetensors`, or shards listed by `model.safetensors.index.json`,
//! each memory-mapped once. Tensors keep their stored dtype; callers convert where they use them.

use super::tensor::{DType, Storage, StoredTensor};
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct WeightStore {
    origin: String,
    files: Vec<PathBuf>,
    tensors: HashMap<String, StoredTensor>,
    /// Tensors of dtypes we do not compute with (such as int64 `position_ids` buffers), named so that a use of one
    /// gets a precise error.
    unsupported: HashMap<String, String>,
}

/// The Python that writes a safetensors copy of a model folder, with the class that keeps every weight of its kind
/// (a causal LM keeps its head, CLIP both towers) and the tokenizer or processor files beside it.
fn conversion_hint(dir: &Path) -> String {
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap_or_default();
    let (model, extras) = if config.contains("\"clip") || config.contains("CLIPModel") {
        ("CLIPModel", "CLIPProcessor")
    } else {
        ("AutoModelForCausalLM", "AutoTokenizer")
    };
    let source = dir.display();
    format!(
        "`python -c \"from transformers import {model}, {extras}; \
         {model}.from_pretrained('{source}').save_pretrained('NEW_DIR', safe_serialization=True); \
         {extras}.from_pretrained('{source}').save_pretrained('NEW_DIR')\"`, then pass NEW_DIR"
    )
}

impl WeightStore {
    /// Opens the safetensors weights of a model directory.
    pub fn open(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let files = if index.is_file() {
            shard_files(&index)?
        } else if single.is_file() {
            vec![single]
        } else if dir.join("pytorch_model.bin").is_file() || dir.join("pytorch_model.bin.index.json").is_file() {
            bail!(
                "{} holds only PyTorch pickle weights (pytorch_model.bin); glov-cuda reads safetensors. Convert \
                 them once with Python into a new folder (the original, perhaps an HF cache snapshot, is left \
                 alone): {}",
                dir.display(),
                conversion_hint(dir)
            );
        } else {
            bail!("{} has no model.safetensors or model.safetensors.index.json", dir.display());
        };
        let mut tensors = HashMap::new();
        let mut unsupported = HashMap::new();
        for file in &files {
            let (usable, skipped) = map_file(file)?;
            unsupported.extend(skipped);
            for tensor in usable {
                if let Some(previous) = tensors.insert(tensor.name.clone(), tensor) {
                    bail!("tensor {} appears in more than one weight file (second: {})", previous.name, file.display());
                }
            }
        }
        Ok(Self { origin: dir.display().to_string(), files, tensors, unsupported })
    }

    /// The tensors of one weight file (a GGUF file), with those left out and why.
    pub fn from_file(file: &Path, tensors: Vec<StoredTensor>, unsupported: Vec<Unsupported>) -> Self {
        let tensors = tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        Self {
            origin: file.display().to_string(),
            files: vec![file.to_path_buf()],
            tensors,
            unsupported: unsupported.into_iter().collect(),
        }
    }

    /// A store of in-memory tensors (random weights for benchmarks and tests).
    pub fn from_tensors(origin: &str, tensors: Vec<StoredTensor>) -> Self {
        let tensors = tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        Self { origin: origin.to_string(), files: Vec::new(), tensors, unsupported: HashMap::new() }
    }

    /// The weight files, in load order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// A tensor by name; the error names the tensor and the model.
    pub fn get(&self, name: &str) -> Result<&StoredTensor> {
        if let Some(why) = self.unsupported.get(name) {
            bail!("tensor {name} in the weights of {}: {why}", self.origin);
        }
        self.tensors.get(name).with_context(|| format!("tensor {name} is missing from the weights of {}", self.origin))
    }

    /// A tensor by name, checked against the expected shape.
    pub fn get_shaped(&self, name: &str, shape: &[usize]) -> Result<&StoredTensor> {
        self.get(name)?.expect_shape(shape).with_context(|| format!("in the weights of {}", self.origin))
    }

    /// The names of all tensors, those of unsupported dtypes included, in no order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().chain(self.unsupported.keys()).map(String::as_str)
    }

    /// All tensors, sorted by name.
    pub fn tensors(&self) -> Vec<&StoredTensor> {
        let mut all: Vec<&StoredTensor> = self.tensors.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Count of stored values per dtype.
    pub fn dtype_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for t in self.tensors.values() {
            *counts.entry(t.dtype.to_string()).or_insert(0) += t.numel();
        }
        counts
    }
}

/// The shard files named by a `model.safetensors.index.json`, in first-use order. A name must stay inside the model
/// directory by its spelling alone: relative, without `..`. Where its file lies is not checked (the shards of an
/// HF cache snapshot are symlinks into the cache's blob folder), only the name.
fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let json = super::read_json(index)?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .with_context(|| format!("{} has no \"weight_map\" object", index.display()))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = Vec::new();
    for (tensor, file) in map {
        let Some(file) = file.as_str() else {
            bail!("{}: weight_map entry for {tensor} is not a file name", index.display());
        };
        if !stays_inside(Path::new(file)) {
            bail!(
                "{} names the shard {file:?} (for {tensor}), which is not a file name inside the model directory",
                index.display()
            );
        }
        let path = dir.join(file);
        if !files.contains(&path) {
            if !path.is_file() {
                bail!("{} names the shard {file} (for {tensor}), which is missing", index.display());
            }
            files.push(path);
        }
    }
    if files.is_empty() {
        bail!("{} lists no weight files", index.display());
    }
    Ok(files)
}

/// Whether a relative path names something inside the folder it is relative to, by its components alone: a name,
/// not absolute, without `..`.
fn stays_inside(path: &Path) -> bool {
    use std::path::Component;
    path.components().any(|c| matches!(c, Component::Normal(_)))
        && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// A tensor left out of a store, with the reason.
type Unsupported = (String, String);

/// Maps one safetensors file and describes its tensors without reading their data. Tensors of unsupported dtypes
/// are returned apart, with the reason. The `safetensors` crate checks the header, the offsets, and each shape's
/// size against its bytes; a shape is also refused when the product of its non-zero dimensions overflows, which
/// that check misses after a dimension of 0.
fn map_file(path: &Path) -> Result<(Vec<StoredTensor>, Vec<Unsupported>)> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: the weights are read-only for the life of the process; a file truncated or rewritten by another
    // process while mapped is outside what any mmap-based loader can guard against.
    let map = Arc::new(unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?);
    let parsed = safetensors::SafeTensors::deserialize(&map)
        .map_err(|e| anyhow::anyhow!("{} is not a valid safetensors file: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (name, view) in parsed.tensors() {
        let shape = view.shape().to_vec();
        if shape.iter().filter(|&&d| d != 0).try_fold(1usize, |n, &d| n.checked_mul(d)).is_none() {
            bail!("{}: tensor {name} has shape {shape:?}, too many values", path.display());
        }
        let dtype = match DType::from_safetensors(view.dtype()) {
            Ok(dtype) => dtype,
            Err(e) => {
                skipped.push((name, format!("{e} (in {})", path.display())));
                continue;
            }
        };
        let start = view.data().as_ptr() as usize - map.as_ptr() as usize;
        let range = start..start + view.data().len();
        out.push(StoredTensor::new(name, dtype, shape, Storage::Mapped(map.clone()), range));
    }
    Ok((out, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_safetensors(path: &Path, tensors: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)]) {
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.to_string(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, None, path).unwrap();
    }

    #[test]
    fn reads_sharded_mixed_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        let a: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b: Vec<u8> =
            [half::bf16::from_f32(0.5), half::bf16::from_f32(3.0)].iter().flat_map(|v| v.to_le_bytes()).collect();
        write_safetensors(&dir.path().join("s1.safetensors"), &[("a", safetensors::Dtype::F32, vec![2], a)]);
        write_safetensors(&dir.path().join("s2.safetensors"), &[("b", safetensors::Dtype::BF16, vec![1, 2], b)]);
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            r#"{"metadata": {}, "weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}"#,
        )
        .unwrap();
        let store = WeightStore::open(dir.path()).unwrap();
        assert_eq!(store.get("a").unwrap().to_f32(), vec![1.5, -2.0]);
        assert_eq!(store.get_shaped("b", &[1, 2]).unwrap().to_f32(), vec![0.5, 3.0]);
        let err = format!("{:#}", store.get_shaped("b", &[2]).unwrap_err());
        assert!(err.contains("tensor b has shape [1, 2], expected [2]"), "{err}");
        let err = store.get("c").unwrap_err().to_string();
        assert!(err.contains("tensor c is missing"), "{err}");
    }

    #[test]
    fn truncated_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let a: Vec<u8> = [1.0f32; 64].iter().flat_map(|v| v.to_le_bytes()).collect();
        write_safetensors(&path, &[("a", safetensors::Dtype::F32, vec![64], a)]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = WeightStore::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("model.safetensors is not a valid safetensors file"), "{err}");
    }

    #[test]
    fn pickle_only_directory_explains_conversion() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pytorch_model.bin"), b"pickle").unwrap();
        let err = WeightStore::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("safe_serialization=True") && err.contains("AutoModelForCausalLM"), "{err}");
        assert!(err.contains("AutoTokenizer") && err.contains("NEW_DIR") && !err.contains("AutoModel."), "{err}");
    }

    #[test]
    fn unsupported_dtype_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_safetensors(
            &dir.path().join("model.safetensors"),
            &[("ids", safetensors::Dtype::I64, vec![1], vec![0; 8])],
        );
        let store = WeightStore::open(dir.path()).unwrap();
        let err = store.get("ids").unwrap_err().to_string();
        assert!(err.contains("tensor ids") && err.contains("unsupported dtype I64"), "{err}");
    }

    #[test]
    fn shard_names_stay_inside_the_directory_by_their_spelling() {
        // An HF cache snapshot: the shards are symlinks into the cache's blob folder, outside the model directory.
        let root = tempfile::tempdir().unwrap();
        let (blobs, snapshot) = (root.path().join("blobs"), root.path().join("snapshots").join("abc"));
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::create_dir_all(snapshot.join("sub")).unwrap();
        let a: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        write_safetensors(&blobs.join("b1"), &[("a", safetensors::Dtype::F32, vec![2], a.clone())]);
        write_safetensors(&blobs.join("b2"), &[("b", safetensors::Dtype::F32, vec![2], a)]);
        std::os::unix::fs::symlink("../../blobs/b1", snapshot.join("s1.safetensors")).unwrap();
        std::os::unix::fs::symlink("../../../blobs/b2", snapshot.join("sub").join("s2.safetensors")).unwrap();
        let index = |a: &str, b: &str| {
            let json = serde_json::json!({"weight_map": {"a": a, "b": b}});
            std::fs::write(snapshot.join("model.safetensors.index.json"), json.to_string()).unwrap();
        };
        index("s1.safetensors", "./sub/s2.safetensors");
        let store = WeightStore::open(&snapshot).unwrap();
        assert_eq!(store.get("b").unwrap().to_f32(), vec![1.5, -2.0]);
        for bad in ["../abc/s1.safetensors", "sub/../../abc/s1.safetensors", "/etc/passwd", "", ".", "sub/.."] {
            index("s1.safetensors", bad);
            let err = WeightStore::open(&snapshot).err().unwrap().to_string();
            assert!(
                err.contains(&format!("names the shard {bad:?} (for b), which is not a file name inside the model")),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn shapes_whose_dimensions_overflow_are_refused() {
        // The safetensors crate multiplies in order and stops caring after a 0; the other dimensions still count.
        let dir = tempfile::tempdir().unwrap();
        let header = br#"{"w":{"dtype":"F32","shape":[0,1099511627776,1099511627776],"data_offsets":[0,0]}}"#;
        let bytes = [&(header.len() as u64).to_le_bytes()[..], header].concat();
        std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
        let err = WeightStore::open(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("model.safetensors: tensor w has shape [0, 1099511627776, 1099511627776], too many"),
            "{err}"
        );
    }
}
