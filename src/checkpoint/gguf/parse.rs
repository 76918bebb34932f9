//! The GGUF header: magic, version, metadata and tensor infos, read from the start of the mapped file. Every read
//! is bounds-checked, so a truncated or corrupt header is an error that says what was being read.

use super::metadata::MetaValue;
use anyhow::{Result, bail};

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
        match self.pos.checked_add(n).filter(|&end| end <= self.bytes.len()) {
            Some(end) => {
                let out = &self.bytes[self.pos..end];
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
        Ok(self.take(N, what)?.try_into().expect("take returns N bytes"))
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
        let left = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(min_item as u64) > left {
            bail!(
                "the file is truncated: {} claims {n} items at offset {}, more than the {left} bytes left",
                what(),
                self.pos
            );
        }
        Ok(n as usize)
    }

    pub fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.count(1, what)?;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => bail!("{} is not valid UTF-8: {e}", what()),
        }
    }

    /// A metadata value of the given type id (arrays recursively).
    pub fn value(&mut self, type_id: u32, what: &dyn Fn() -> String) -> Result<MetaValue> {
        Ok(match type_id {
            0 => MetaValue::U8(self.array::<1>(what)?[0]),
            1 => MetaValue::I8(self.array::<1>(what)?[0] as i8),
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
            8 => MetaValue::String(self.string(what)?),
            9 => {
                let item_type = self.u32(what)?;
                let len = self.count(1, what)?;
                let mut items = Vec::with_capacity(len);
                for i in 0..len {
                    items.push(self.value(item_type, &|| format!("{}[{i}]", what()))?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(self.u64(what)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            other => bail!("{} has unknown value type {other}", what()),
        })
    }
}
