//! Checkpoints: HF model directories (their JSON files and memory-mapped safetensors weights) and GGUF files
//! (seen as the same config and HF-named tensors).

pub mod gguf;
mod hf_cache;
pub mod limits;
mod store;
mod tensor;

pub use hf_cache::resolve_model;
pub use store::WeightStore;
pub use tensor::{DType, StoredTensor};

use anyhow::{Context, Result};
use gguf::GgufFile;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A model directory or GGUF file: its path, its `config.json` (read, or built from GGUF metadata), and its
/// weights (memory-mapped, in their stored dtype).
pub struct Checkpoint {
    /// The model directory, or the GGUF file.
    pub dir: PathBuf,
    pub config: serde_json::Value,
    pub weights: WeightStore,
    /// The GGUF file the checkpoint is, whose metadata also holds the tokenizer and chat template.
    pub gguf: Option<Arc<GgufFile>>,
    /// [`Checkpoint::checksum`], computed on first use.
    checksum: std::sync::OnceLock<String>,
}

impl Checkpoint {
    /// Opens a model given as a directory, a `.gguf` file, or an `org/name` id found in the local HF cache.
    pub fn open(model: &str) -> Result<Self> {
        if is_gguf(Path::new(model)) {
            return Self::open_gguf(Path::new(model));
        }
        let dir = resolve_model(model)?;
        let _span = tracing::info_span!("checkpoint", dir = %dir.display()).entered();
        let config = model_config(&dir)?;
        let weights = WeightStore::open(&dir)?;
        Ok(Self { dir, config, weights, gguf: None, checksum: std::sync::OnceLock::new() })
    }

    fn open_gguf(path: &Path) -> Result<Self> {
        let _span = tracing::info_span!("checkpoint", gguf = %path.display()).entered();
        let file = GgufFile::open(path)?;
        let hf = gguf::hf::load(&file).context("reading the model")?;
        let weights = WeightStore::from_file(path, hf.tensors, hf.unsupported);
        Ok(Self {
            dir: path.to_path_buf(),
            config: hf.config,
            weights,
            gguf: Some(Arc::new(file)),
            checksum: std::sync::OnceLock::new(),
        })
    }

    /// The path of a file inside the model directory, or an error naming it when it is absent.
    pub fn file(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if !path.is_file() {
            anyhow::bail!("{} is missing from the model directory {}", name, self.dir.display());
        }
        Ok(path)
    }

    /// A content checksum of the model: BLAKE3 over config.json, preprocessor_config.json (when present) and
    /// every weight file (the GGUF file alone for a GGUF checkpoint). Used to key caches of computed features.
    /// Hashed once per opened checkpoint.
    pub fn checksum(&self) -> Result<String> {
        if let Some(sum) = self.checksum.get() {
            return Ok(sum.clone());
        }
        let sum = self.hash_files()?;
        Ok(self.checksum.get_or_init(|| sum).clone())
    }

    fn hash_files(&self) -> Result<String> {
        let _span = tracing::info_span!("checksum").entered();
        let mut hasher = blake3::Hasher::new();
        let mut files = Vec::new();
        if self.gguf.is_none() {
            files.push(self.dir.join("config.json"));
            let preprocessor = self.dir.join("preprocessor_config.json");
            if preprocessor.is_file() {
                files.push(preprocessor);
            }
        }
        files.extend(self.weights.files().iter().cloned());
        for file in &files {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            hasher.update(name.as_bytes());
            hasher.update(&[0]);
            let data = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
            // SAFETY: the file is only read while it is mapped; a concurrent writer could change the bytes read,
            // which would change the checksum, never memory safety of the hash computation itself.
            let map = unsafe { memmap2::Mmap::map(&data) }.with_context(|| format!("cannot map {}", file.display()))?;
            hasher.update_rayon(&map);
        }
        Ok(hasher.finalize().to_hex().to_string())
    }
}

/// Whether a model argument names a GGUF file (by its extension, or its magic number).
pub fn is_gguf(path: &Path) -> bool {
    if !path.is_file() {
        return false;
    }
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        return true;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && &magic == b"GGUF"
}

/// Reads and parses a JSON file, naming the file in any error.
/// A model folder's `config.json`; a folder without one is told which formats are read.
pub fn model_config(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("config.json");
    if !path.exists() {
        let open_clip = dir.join("open_clip_config.json").exists()
            || ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"].iter().any(|f| dir.join(f).exists());
        let found = if open_clip { " It looks like an open_clip checkpoint, which is not read." } else { "" };
        anyhow::bail!(
            "{} has no config.json: glov-cuda reads Hugging Face transformers model folders (config.json, \
             model.safetensors or its shards, tokenizer.json and, for CLIP, preprocessor_config.json) and GGUF files \
             (LLMs).{found} Use the transformers form of the model (e.g. openai/clip-vit-base-patch32 from the \
             Hub), or convert it with transformers' save_pretrained.",
            dir.display()
        );
    }
    read_json(&path)
}

pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}
