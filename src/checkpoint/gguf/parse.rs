//! The GGUF header: magic, version, metadata and tensor infos, read from the start of the mapped file. Every read
//! is bounds-checked, so a truncated or corrupt header is an error that says what was being read; every count is
//! bounded by the bytes left in the file before anything is allocated from it, and arrays nest at most
//! [`MAX_ARRAY_DEPTH`] deep, so that a hostile header costs memory proportional to its size and a bounded stack.

use super::metadata::{MetaArray, MetaValue, StringArray};
use anyhow::{Result, bail};

/// How deep arrays may nest: an array of arrays of scalars is two levels. llama.cpp refuses any nesting; the GGUF
/// format allows it, and Python's `gguf` writes it, so a little is read.
pub const MAX_ARRAY_DEPTH: usize = 3;

/// GGUF's value type ids.
const ARRAY: u32 = 9;
const STRING: u32 = 8;

/// The fewest bytes a value of type `type_id` takes in the file; `None` for an unknown type.
fn min_size(type_id: u32) -> Option<usize> {
    Some(match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        // A string is at least its 8-byte length.
        10..=12 | STRING => 8,
        // An array is at least its item type and its 8-byte count.
        ARRAY => 12,
        _ => return None,
    })
}

/// A reader over the header bytes that names what it was reading when the bytes run out.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        match self.pos.checked_add(n).and_then(|end| Some((end, self.bytes.get(self.pos..end)?))) {
            Some((end, out)) => {
                self.pos = end;
                Ok(out)
            }
            None => bail!(
                "the file is truncated: {} needs {n} bytes at offset {}, the file has {}",
                what(),
                self.pos,
                self.bytes.len()
            ),
        }
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let bytes = self.take(N, what)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length or count, which must fit in the bytes that remain (each item taking at least `min_item` bytes).
    pub fn count(&mut self, min_item: usize, what: &dyn Fn() -> String) -> Result<usize> {
        let n = self.u64(what)?;
        let left = self.bytes.len().saturating_sub(self.pos);
        match usize::try_from(n) {
            Ok(count) if count.checked_mul(min_item).is_some_and(|bytes| bytes <= left) => Ok(count),
            _ => bail!(
                "the file is truncated: {} claims {n} items at offset {}, more than the {left} bytes left",
                what(),
                self.pos
            ),
        }
    }

    fn str(&mut self, what: &dyn Fn() -> String) -> Result<&'a str> {
        let len = self.count(1, what)?;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s),
            Err(e) => bail!("{} is not valid UTF-8: {e}", what()),
        }
    }

    pub fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        self.str(what).map(str::to_string)
    }

    /// A metadata value of the given type id.
    pub fn value(&mut self, type_id: u32, what: &dyn Fn() -> String) -> Result<MetaValue> {
        Ok(match type_id {
            0 => MetaValue::U8(u8::from_le_bytes(self.array(what)?)),
            1 => MetaValue::I8(i8::from_le_bytes(self.array(what)?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => MetaValue::U32(self.u32(what)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                other => bail!("{} is a bool stored as {other}, expected 0 or 1", what()),
            },
            STRING => MetaValue::String(self.string(what)?),
            ARRAY => MetaValue::Array(self.metadata_array(1, what)?),
            10 => MetaValue::U64(self.u64(what)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            other => bail!("{} has unknown value type {other}", what()),
        })
    }

    /// `count` fixed-size items, each decoded from its `N` bytes, read at once into a vector of exactly that size.
    fn items<const N: usize, T>(
        &mut self,
        count: usize,
        decode: fn([u8; N]) -> T,
        what: &dyn Fn() -> String,
    ) -> Result<Vec<T>> {
        let Some(len) = count.checked_mul(N) else { bail!("{} claims {count} items, too many", what()) };
        let bytes = self.take(len, what)?;
        Ok(bytes
            .chunks_exact(N)
            .map(|chunk| {
                let mut item = [0; N];
                item.copy_from_slice(chunk);
                decode(item)
            })
            .collect())
    }

    /// `count` bools, each stored as a byte 0 or 1.
    fn bools(&mut self, count: usize, what: &dyn Fn() -> String) -> Result<Vec<bool>> {
        let bytes = self.take(count, what)?;
        match bytes.iter().position(|&b| b > 1) {
            None => Ok(bytes.iter().map(|&b| b == 1).collect()),
            Some(i) => bail!("{}[{i}] is a bool stored as {}, expected 0 or 1", what(), bytes[i]),
        }
    }

    /// An array value (its item type, count and items), `depth` levels deep (the outermost array is level 1).
    fn metadata_array(&mut self, depth: usize, what: &dyn Fn() -> String) -> Result<MetaArray> {
        let item_type = self.u32(what)?;
        let Some(min_item) = min_size(item_type) else {
            bail!("{} is an array of unknown value type {item_type}", what())
        };
        if item_type == ARRAY && depth >= MAX_ARRAY_DEPTH {
            bail!("{} nests arrays more than {MAX_ARRAY_DEPTH} deep, which glov-cuda does not read", what());
        }
        let count = self.count(min_item, what)?;
        Ok(match item_type {
            0 => MetaArray::U8(self.items(count, u8::from_le_bytes, what)?),
            1 => MetaArray::I8(self.items(count, i8::from_le_bytes, what)?),
            2 => MetaArray::U16(self.items(count, u16::from_le_bytes, what)?),
            3 => MetaArray::I16(self.items(count, i16::from_le_bytes, what)?),
            4 => MetaArray::U32(self.items(count, u32::from_le_bytes, what)?),
            5 => MetaArray::I32(self.items(count, i32::from_le_bytes, what)?),
            6 => MetaArray::F32(self.items(count, f32::from_le_bytes, what)?),
            7 => MetaArray::Bool(self.bools(count, what)?),
            STRING => {
                let mut strings = StringArray::with_capacity(count);
                for i in 0..count {
                    strings.push(self.str(&|| format!("{}[{i}]", what()))?);
                }
                MetaArray::String(strings)
            }
            ARRAY => {
                let mut arrays = Vec::with_capacity(count);
                for i in 0..count {
                    arrays.push(self.metadata_array(depth + 1, &|| format!("{}[{i}]", what()))?);
                }
                MetaArray::Array(arrays)
            }
            10 => MetaArray::U64(self.items(count, u64::from_le_bytes, what)?),
            11 => MetaArray::I64(self.items(count, i64::from_le_bytes, what)?),
            12 => MetaArray::F64(self.items(count, f64::from_le_bytes, what)?),
            other => bail!("{} is an array of unknown value type {other}", what()),
        })
    }
}
