//! One stored tensor: a dtype, a shape, and bytes that live in a memory-mapped file or an owned buffer.

use super::gguf::QuantType;
use anyhow::{Result, bail};
use half::{bf16, f16};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// The element types a checkpoint may store: floats, or ggml's block-quantized types (GGUF files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    BF16,
    Quant(QuantType),
}

impl DType {
    /// Values per block: 1 for floats; a quantized tensor is read whole blocks at a time.
    pub fn block_values(self) -> usize {
        match self {
            DType::Quant(q) => q.block_values(),
            _ => 1,
        }
    }

    /// Bytes that hold `values` values (a whole number of blocks); `None` when they would not fit in memory.
    pub fn bytes_for(self, values: usize) -> Option<usize> {
        match self {
            DType::F32 => values.checked_mul(4),
            DType::F16 | DType::BF16 => values.checked_mul(2),
            DType::Quant(q) => (values / q.block_values()).checked_mul(q.block_bytes()),
        }
    }

    /// Converts little-endian values of this dtype to f32 (`out.len()` values from the start of `bytes`; whole
    /// blocks for quantized types). Panics when `bytes` holds fewer values.
    pub fn convert(self, bytes: &[u8], out: &mut [f32]) {
        let Some(bytes) = self.bytes_for(out.len()).and_then(|n| bytes.get(..n)) else {
            panic!("{} bytes hold fewer than {} {self} values", bytes.len(), out.len())
        };
        match self {
            DType::Quant(q) => super::gguf::dequantize(q, bytes, out),
            DType::F32 => match bytemuck::try_cast_slice::<u8, f32>(bytes) {
                Ok(values) => out.copy_from_slice(values),
                Err(_) => out
                    .iter_mut()
                    .zip(bytes.chunks_exact(4))
                    .for_each(|(o, c)| *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            },
            // bf16 is the top half of an f32: a shift, which the compiler vectorises.
            DType::BF16 => match bytemuck::try_cast_slice::<u8, u16>(bytes) {
                Ok(bits) => {
                    out.iter_mut().zip(bits).for_each(|(o, &b)| *o = f32::from_bits((u16::from_le(b) as u32) << 16))
                }
                Err(_) => out
                    .iter_mut()
                    .zip(bytes.chunks_exact(2))
                    .for_each(|(o, c)| *o = bf16::from_le_bytes([c[0], c[1]]).to_f32()),
            },
            DType::F16 => match bytemuck::try_cast_slice::<u8, f16>(bytes) {
                Ok(halves) if cfg!(target_endian = "little") => {
                    use half::slice::HalfFloatSliceExt;
                    halves.convert_to_f32_slice(out);
                }
                _ => out
                    .iter_mut()
                    .zip(bytes.chunks_exact(2))
                    .for_each(|(o, c)| *o = f16::from_le_bytes([c[0], c[1]]).to_f32()),
            },
        }
    }

    /// Maps a safetensors dtype to ours; other dtypes are named in the error.
    pub fn from_safetensors(dtype: safetensors::Dtype) -> Result<Self> {
        Ok(match dtype {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            other => bail!("unsupported dtype {other:?} (supported: F32, F16, BF16)"),
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::Quant(q) => match q {
                QuantType::Q4_0 => "q4_0",
                QuantType::Q4_1 => "q4_1",
                QuantType::Q5_0 => "q5_0",
                QuantType::Q5_1 => "q5_1",
                QuantType::Q8_0 => "q8_0",
                QuantType::Q4K => "q4_k",
                QuantType::Q5K => "q5_k",
                QuantType::Q6K => "q6_k",
            },
        })
    }
}

/// Where a tensor's bytes live.
#[derive(Clone)]
pub(crate) enum Storage {
    Mapped(Arc<memmap2::Mmap>),
    Owned(Arc<Vec<u8>>),
}

impl Storage {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(map) => map,
            Storage::Owned(vec) => vec,
        }
    }
}

/// A tensor as stored in a checkpoint. Cloning is cheap: the bytes are shared, never copied.
#[derive(Clone)]
pub struct StoredTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    storage: Storage,
    range: Range<usize>,
}

impl StoredTensor {
    /// A tensor over `range` of `storage`. Readers of files make it only after checking what every method here
    /// relies on: the product of the shape's non-zero dimensions fits in a `usize`, and `range` holds exactly the
    /// bytes of the shape's values in `dtype`, inside `storage`.
    pub(crate) fn new(name: String, dtype: DType, shape: Vec<usize>, storage: Storage, range: Range<usize>) -> Self {
        Self { name, dtype, shape, storage, range }
    }

    /// An owned f32 tensor (random weights for benchmarks, tests).
    pub fn from_f32(name: &str, shape: &[usize], values: &[f32]) -> Self {
        assert_eq!(shape.iter().product::<usize>(), values.len(), "shape and data of {name} disagree");
        let bytes: Vec<u8> = bytemuck::cast_slice(values).to_vec();
        let len = bytes.len();
        Self::new(name.to_string(), DType::F32, shape.to_vec(), Storage::Owned(Arc::new(bytes)), 0..len)
    }

    /// An owned tensor stored as `dtype` (a float type), rounded from f32 values.
    pub fn from_f32_as(name: &str, shape: &[usize], values: &[f32], dtype: DType) -> Self {
        let bytes: Vec<u8> = match dtype {
            DType::F32 => bytemuck::cast_slice(values).to_vec(),
            DType::F16 => values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
            DType::BF16 => values.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(),
            DType::Quant(q) => panic!("{name}: values are not quantized to {q}"),
        };
        Self::from_bytes(name, shape, dtype, bytes)
    }

    /// An owned tensor of `dtype` over little-endian `bytes`.
    pub fn from_bytes(name: &str, shape: &[usize], dtype: DType, bytes: Vec<u8>) -> Self {
        let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        assert_eq!(numel.and_then(|n| dtype.bytes_for(n)), Some(bytes.len()), "shape and data of {name} disagree");
        let len = bytes.len();
        Self::new(name.to_string(), dtype, shape.to_vec(), Storage::Owned(Arc::new(bytes)), 0..len)
    }

    /// The tensor as owned f32 values when it is quantized (dequantized once, for backends that compute in
    /// floats), or itself.
    pub fn dequantized(&self) -> Self {
        match self.dtype {
            DType::Quant(_) => Self::from_f32(&self.name, &self.shape, &self.to_f32()),
            _ => self.clone(),
        }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.storage.bytes()[self.range.clone()]
    }

    /// The values as f32 without a copy, when stored as f32 at a 4-byte-aligned address.
    pub fn as_f32_slice(&self) -> Option<&[f32]> {
        match self.dtype {
            DType::F32 => bytemuck::try_cast_slice(self.bytes()).ok(),
            _ => None,
        }
    }

    /// Converts `out.len()` values starting at element `start` to f32 into `out` (a range of whole blocks for
    /// quantized tensors: their rows always are).
    pub fn read_f32_range(&self, start: usize, out: &mut [f32]) {
        let block = self.dtype.block_values();
        assert!(
            start.is_multiple_of(block) && out.len().is_multiple_of(block),
            "{}: values {start}..{} are not whole {}-value blocks",
            self.name,
            start.saturating_add(out.len()),
            block
        );
        let range = self.dtype.bytes_for(start).zip(self.dtype.bytes_for(out.len()));
        let bytes = range.and_then(|(first, len)| self.bytes().get(first..first.checked_add(len)?));
        let Some(bytes) = bytes else {
            panic!(
                "{}: values {start}..{} are past the tensor's {} values",
                self.name,
                start.saturating_add(out.len()),
                self.numel()
            )
        };
        self.dtype.convert(bytes, out);
    }

    /// All values converted to f32.
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.numel()];
        self.read_f32_range(0, &mut out);
        out
    }

    /// Checks the shape, naming the tensor and both shapes on a mismatch.
    pub fn expect_shape(&self, shape: &[usize]) -> Result<&Self> {
        if self.shape != shape {
            bail!("tensor {} has shape {:?}, expected {:?}", self.name, self.shape, shape);
        }
        Ok(self)
    }
}

impl fmt::Debug for StoredTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {:?}", self.name, self.dtype, self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_converts_to_f32() {
        let values = [1.5f32, -0.25, 65504.0, 3.0e-5];
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let t = StoredTensor::from_f32_as("t", &[2, 2], &values, dtype);
            assert_eq!(Some(t.bytes().len()), dtype.bytes_for(4));
            let back = t.to_f32();
            for (b, v) in back.iter().zip(values) {
                let tolerance = match dtype {
                    DType::F32 => 0.0,
                    DType::F16 => v.abs() * 1e-3,
                    DType::BF16 => v.abs() * 8e-3,
                    DType::Quant(_) => unreachable!(),
                };
                assert!((b - v).abs() <= tolerance, "{dtype}: {b} vs {v}");
            }
            let mut tail = [0.0f32; 2];
            t.read_f32_range(2, &mut tail);
            assert_eq!(tail, [back[2], back[3]]);
        }
        assert!(StoredTensor::from_f32_as("t", &[1], &[1.0], DType::F16).as_f32_slice().is_none());
    }
}
