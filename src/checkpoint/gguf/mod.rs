//! GGUF files (llama.cpp's checkpoint format, versions 2 and 3), memory-mapped: the header's typed metadata and
//! tensor infos, and the tensors themselves as [`StoredTensor`]s over the mapped bytes, in their stored type
//! (quantized ones are dequantized when a backend converts them to f32).
//!
//! [`hf`] turns a file into what an HF model directory holds: a `config.json`-style config and tensors under HF
//! names; `crate::tokenizer::gguf` builds its tokenizer.

mod dequant;
mod ggml_type;
pub mod hf;
mod metadata;
mod parse;

pub use dequant::dequantize;
pub use ggml_type::{GgmlType, QuantType};
pub use metadata::{MetaArray, MetaItem, MetaValue, Metadata, StringArray};

use super::tensor::{DType, Storage, StoredTensor};
use anyhow::{Context, Result, bail};
use parse::Cursor;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: usize = 32;
/// ggml's tensors have at most four dimensions.
const MAX_DIMS: usize = 4;

/// One tensor as the header describes it.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml's order: the first is the fastest-varying (a row's length).
    pub dims: Vec<usize>,
    pub ggml_type: GgmlType,
    /// The type id as stored.
    pub type_id: u32,
    /// The tensor's bytes in the file (empty for types we do not read, whose size we do not compute).
    pub range: Range<usize>,
}

impl TensorInfo {
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// The shape in row-major order, as PyTorch and safetensors write it (ggml's dimensions reversed).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }

    /// The type's name as llama.cpp spells it.
    pub fn type_name(&self) -> String {
        match self.ggml_type {
            GgmlType::F32 => "F32".into(),
            GgmlType::F16 => "F16".into(),
            GgmlType::BF16 => "BF16".into(),
            GgmlType::Quant(q) => q.name().into(),
            GgmlType::Unsupported(name) => name.into(),
        }
    }
}

/// A mapped GGUF file.
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub alignment: usize,
    /// Where the tensor data starts.
    pub data_start: usize,
    storage: Storage,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let _span = tracing::info_span!("gguf_header", file = %path.display()).entered();
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: the weights are read-only for the life of the process; a file truncated or rewritten by another
        // process while mapped is outside what any mmap-based loader can guard against.
        let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
        Self::parse(path, Storage::Mapped(Arc::new(map)))
    }

    /// Reads a GGUF file from its bytes; `path` names it in errors. Any input gives a file or an error, never a
    /// panic or an allocation beyond a small multiple of its size.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        Self::parse(path, Storage::Owned(Arc::new(bytes)))
    }

    fn parse(path: &Path, storage: Storage) -> Result<Self> {
        Self::parse_header(path, storage).with_context(|| format!("{} is not a valid GGUF file", path.display()))
    }

    fn parse_header(path: &Path, storage: Storage) -> Result<Self> {
        let origin = path.display().to_string();
        let bytes = storage.bytes();
        let mut cursor = Cursor::new(bytes);
        let magic = cursor.u32(&|| "the magic number".into())?.to_le_bytes();
        if &magic != MAGIC {
            bail!("it starts with {magic:?}, not the GGUF magic {MAGIC:?}");
        }
        let version = cursor.u32(&|| "the version".into())?;
        match version {
            2 | 3 => {}
            1 => bail!("GGUF version 1 is not supported (versions 2 and 3 are); convert the file again"),
            v if v.swap_bytes() <= 3 => bail!("the file is big-endian GGUF, which is not supported"),
            v => bail!("GGUF version {v} is not supported (versions 2 and 3 are)"),
        }
        let tensor_count = cursor.count(24, &|| "the tensor count".into())?;
        let kv_count = cursor.count(12, &|| "the metadata count".into())?;
        let mut values = BTreeMap::new();
        for i in 0..kv_count {
            let key = cursor.string(&|| format!("the key of metadata entry {i}"))?;
            let type_id = cursor.u32(&|| format!("the type of metadata {key}"))?;
            let value = cursor.value(type_id, &|| format!("metadata {key}"))?;
            if values.insert(key.clone(), value).is_some() {
                bail!("metadata {key} appears twice");
            }
        }
        let metadata = Metadata { origin: origin.clone(), values };
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(MetaValue::U32(a)) if a.is_power_of_two() => *a as usize,
            Some(MetaValue::U32(a)) => bail!("metadata general.alignment is {a}, not a power of two"),
            Some(other) => bail!("metadata general.alignment is a {}, expected a uint32", other.type_name()),
        };
        let mut infos = Vec::with_capacity(tensor_count);
        for i in 0..tensor_count {
            let name = cursor.string(&|| format!("the name of tensor {i}"))?;
            let what = |field: &str| format!("the {field} of tensor {name}");
            let n_dims = cursor.u32(&|| what("dimension count"))?;
            if n_dims as usize > MAX_DIMS {
                bail!("tensor {name} has {n_dims} dimensions; ggml tensors have at most {MAX_DIMS}");
            }
            let dims = (0..n_dims).map(|_| cursor.u64(&|| what("dimensions"))).collect::<Result<Vec<_>>>()?;
            let type_id = cursor.u32(&|| what("type"))?;
            let offset = cursor.u64(&|| what("data offset"))?;
            let Some(ggml_type) = GgmlType::from_id(type_id) else {
                bail!("tensor {name} has unknown type id {type_id} (supported: {})", GgmlType::SUPPORTED);
            };
            infos.push((name, dims, type_id, ggml_type, offset));
        }
        let Some(data_start) = cursor.pos.checked_next_multiple_of(alignment) else {
            bail!("the tensor data would start past the largest address")
        };
        let mut names = HashSet::new();
        let mut tensors = Vec::with_capacity(infos.len());
        for (name, dims, type_id, ggml_type, offset) in infos {
            if !names.insert(name.clone()) {
                bail!("tensor {name} appears twice");
            }
            if offset % alignment as u64 != 0 {
                bail!("tensor {name} starts at data offset {offset}, not a multiple of the alignment {alignment}");
            }
            let dims = dimensions(&name, &dims)?;
            let size = byte_size(&name, &dims, ggml_type)?;
            let start = usize::try_from(offset).ok().and_then(|offset| data_start.checked_add(offset));
            let range = match start.and_then(|start| Some(start..start.checked_add(size)?)) {
                Some(range) if range.end <= bytes.len() => range,
                _ => bail!(
                    "tensor {name} ({size} bytes at data offset {offset}) runs past the end of the file ({} bytes, \
                     data from {data_start}): the file is truncated or corrupt",
                    bytes.len()
                ),
            };
            tensors.push(TensorInfo { name, dims, ggml_type, type_id, range });
        }
        Ok(Self { path: path.to_path_buf(), version, metadata, tensors, alignment, data_start, storage })
    }

    /// The tensor `info` as a [`StoredTensor`] over the mapped bytes, named `name`.
    pub fn stored(&self, info: &TensorInfo, name: &str) -> Result<StoredTensor> {
        let dtype = match info.ggml_type {
            GgmlType::F32 => DType::F32,
            GgmlType::F16 => DType::F16,
            GgmlType::BF16 => DType::BF16,
            GgmlType::Quant(q) => DType::Quant(q),
            GgmlType::Unsupported(type_name) => bail!(
                "tensor {} of {} has type {type_name}, which glov-cuda does not read (supported: {})",
                info.name,
                self.path.display(),
                GgmlType::SUPPORTED
            ),
        };
        Ok(StoredTensor::new(name.to_string(), dtype, info.shape(), self.storage.clone(), info.range.clone()))
    }

    /// A tensor's info by its GGUF name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> usize {
        self.storage.bytes().len()
    }
}

/// The dimensions of tensor `name` as stored, checked as ggml checks them: each fits in an `int64_t`, and so does
/// the product of those that are not zero (so that no product of some of them, in any order, overflows).
fn dimensions(name: &str, dims: &[u64]) -> Result<Vec<usize>> {
    let nonzero = dims.iter().filter(|&&d| d != 0).try_fold(1u64, |n, &d| n.checked_mul(d));
    let usable = dims.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<Vec<_>>>();
    match (nonzero.filter(|&n| i64::try_from(n).is_ok()), usable) {
        (Some(_), Some(dims)) => Ok(dims),
        _ => bail!("tensor {name} has dimensions {dims:?}, too many values"),
    }
}

/// The bytes of a tensor of these dimensions and type; checks that its rows are whole blocks. Types we do not
/// read are given no bytes (they are refused when used).
fn byte_size(name: &str, dims: &[usize], ggml_type: GgmlType) -> Result<usize> {
    let numel: usize = dims.iter().product();
    let (block_values, block_bytes) = match ggml_type {
        GgmlType::F32 => (1, 4),
        GgmlType::F16 | GgmlType::BF16 => (1, 2),
        GgmlType::Quant(q) => (q.block_values(), q.block_bytes()),
        GgmlType::Unsupported(_) => return Ok(0),
    };
    let row = dims.first().copied().unwrap_or(1);
    if row % block_values != 0 {
        bail!(
            "tensor {name} has rows of {row} values, not a whole number of {}-value blocks of its type {}",
            block_values,
            match ggml_type {
                GgmlType::Quant(q) => q.name(),
                _ => "",
            }
        );
    }
    match (numel / block_values).checked_mul(block_bytes) {
        Some(bytes) => Ok(bytes),
        None => bail!("tensor {name} has dimensions {dims:?}, too many values for its type to hold in memory"),
    }
}

#[cfg(test)]
mod tests;
