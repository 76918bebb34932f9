//! GGUF metadata: typed values under dotted keys, and accessors that name the file and the key when a value is
//! missing or of another type.
//!
//! Arrays are kept as one typed vector each ([`MetaArray`]), strings end to end in one buffer, so that the metadata
//! takes memory proportional to the bytes of the file that hold it (a vocabulary of 262k tokens is one buffer and
//! one vector of offsets, not 262k values of a large enum).

use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::fmt;

/// One metadata value, in the type the file stores it in.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(MetaArray),
}

/// An array value: the items of one type, stored as a vector of that type.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(StringArray),
    Array(Vec<MetaArray>),
}

/// Strings stored end to end in one buffer, with where each ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StringArray {
    text: String,
    ends: Vec<usize>,
}

impl StringArray {
    /// An empty array with room for `count` strings.
    pub fn with_capacity(count: usize) -> Self {
        Self { text: String::new(), ends: Vec::with_capacity(count) }
    }

    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The string at `index`.
    pub fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        self.text.get(start..end)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// One value of a metadata array or a metadata value, borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetaItem<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(&'a str),
    Array(&'a MetaArray),
}

impl<'a> MetaItem<'a> {
    /// The GGUF name of the item's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaItem::U8(_) => "uint8",
            MetaItem::I8(_) => "int8",
            MetaItem::U16(_) => "uint16",
            MetaItem::I16(_) => "int16",
            MetaItem::U32(_) => "uint32",
            MetaItem::I32(_) => "int32",
            MetaItem::U64(_) => "uint64",
            MetaItem::I64(_) => "int64",
            MetaItem::F32(_) => "float32",
            MetaItem::F64(_) => "float64",
            MetaItem::Bool(_) => "bool",
            MetaItem::String(_) => "string",
            MetaItem::Array(_) => "array",
        }
    }

    /// An integer of any width and sign, widened.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            MetaItem::U8(v) => v.into(),
            MetaItem::I8(v) => v.into(),
            MetaItem::U16(v) => v.into(),
            MetaItem::I16(v) => v.into(),
            MetaItem::U32(v) => v.into(),
            MetaItem::I32(v) => v.into(),
            MetaItem::U64(v) => v.into(),
            MetaItem::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// A float of either width.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaItem::F32(v) => Some(v.into()),
            MetaItem::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            MetaItem::String(s) => Some(s),
            _ => None,
        }
    }

    /// The item as JSON (arrays longer than `max_items` cut to a count).
    pub fn to_json(&self, max_items: usize) -> serde_json::Value {
        use serde_json::Value;
        match *self {
            MetaItem::Bool(b) => Value::Bool(b),
            MetaItem::String(s) => Value::String(s.to_string()),
            MetaItem::Array(items) if items.len() > max_items => Value::String(format!("[{} items]", items.len())),
            MetaItem::Array(items) => Value::Array(items.iter().map(|v| v.to_json(max_items)).collect()),
            other => match (other.as_i128(), other.as_f64()) {
                (Some(i), _) => match i64::try_from(i) {
                    Ok(small) => serde_json::json!(small),
                    Err(_) => serde_json::json!(i as u64),
                },
                (_, Some(f)) => serde_json::json!(f),
                _ => Value::Null,
            },
        }
    }
}

impl MetaValue {
    /// The value as a borrowed item.
    pub fn item(&self) -> MetaItem<'_> {
        match self {
            MetaValue::U8(v) => MetaItem::U8(*v),
            MetaValue::I8(v) => MetaItem::I8(*v),
            MetaValue::U16(v) => MetaItem::U16(*v),
            MetaValue::I16(v) => MetaItem::I16(*v),
            MetaValue::U32(v) => MetaItem::U32(*v),
            MetaValue::I32(v) => MetaItem::I32(*v),
            MetaValue::U64(v) => MetaItem::U64(*v),
            MetaValue::I64(v) => MetaItem::I64(*v),
            MetaValue::F32(v) => MetaItem::F32(*v),
            MetaValue::F64(v) => MetaItem::F64(*v),
            MetaValue::Bool(v) => MetaItem::Bool(*v),
            MetaValue::String(s) => MetaItem::String(s),
            MetaValue::Array(a) => MetaItem::Array(a),
        }
    }

    /// The GGUF name of the value's type.
    pub fn type_name(&self) -> &'static str {
        self.item().type_name()
    }

    /// An integer of any width and sign, widened.
    pub fn as_i128(&self) -> Option<i128> {
        self.item().as_i128()
    }

    /// A float of either width.
    pub fn as_f64(&self) -> Option<f64> {
        self.item().as_f64()
    }

    pub fn as_str(&self) -> Option<&str> {
        self.item().as_str()
    }

    /// The value as JSON (arrays longer than `max_items` cut to a count).
    pub fn to_json(&self, max_items: usize) -> serde_json::Value {
        self.item().to_json(max_items)
    }
}

impl MetaArray {
    pub fn len(&self) -> usize {
        match self {
            MetaArray::U8(v) => v.len(),
            MetaArray::I8(v) => v.len(),
            MetaArray::U16(v) => v.len(),
            MetaArray::I16(v) => v.len(),
            MetaArray::U32(v) => v.len(),
            MetaArray::I32(v) => v.len(),
            MetaArray::U64(v) => v.len(),
            MetaArray::I64(v) => v.len(),
            MetaArray::F32(v) => v.len(),
            MetaArray::F64(v) => v.len(),
            MetaArray::Bool(v) => v.len(),
            MetaArray::String(v) => v.len(),
            MetaArray::Array(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The item at `index`.
    pub fn get(&self, index: usize) -> Option<MetaItem<'_>> {
        Some(match self {
            MetaArray::U8(v) => MetaItem::U8(*v.get(index)?),
            MetaArray::I8(v) => MetaItem::I8(*v.get(index)?),
            MetaArray::U16(v) => MetaItem::U16(*v.get(index)?),
            MetaArray::I16(v) => MetaItem::I16(*v.get(index)?),
            MetaArray::U32(v) => MetaItem::U32(*v.get(index)?),
            MetaArray::I32(v) => MetaItem::I32(*v.get(index)?),
            MetaArray::U64(v) => MetaItem::U64(*v.get(index)?),
            MetaArray::I64(v) => MetaItem::I64(*v.get(index)?),
            MetaArray::F32(v) => MetaItem::F32(*v.get(index)?),
            MetaArray::F64(v) => MetaItem::F64(*v.get(index)?),
            MetaArray::Bool(v) => MetaItem::Bool(*v.get(index)?),
            MetaArray::String(v) => MetaItem::String(v.get(index)?),
            MetaArray::Array(v) => MetaItem::Array(v.get(index)?),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = MetaItem<'_>> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl fmt::Display for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaValue::String(s) => write!(f, "{s:?}"),
            MetaValue::Array(items) => {
                write!(f, "[{} {} items]", items.len(), items.get(0).map_or("", |v| v.type_name()))
            }
            other => write!(f, "{}", other.to_json(0)),
        }
    }
}

/// The metadata of one file, with accessors whose errors name the file and the key.
pub struct Metadata {
    pub(super) origin: String,
    pub(super) values: BTreeMap<String, MetaValue>,
}

impl Metadata {
    /// The file the metadata was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.values.get(key)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&String, &MetaValue)> {
        self.values.iter()
    }

    fn wrong_type(&self, key: &str, value: &MetaValue, expected: &str) -> anyhow::Error {
        anyhow::anyhow!("{}: metadata {key} is a {}, expected {expected}", self.origin, value.type_name())
    }

    /// The error for an array `key` whose first item is not of the `expected` type.
    fn wrong_item_type(&self, key: &str, items: &MetaArray, expected: &str) -> anyhow::Error {
        let found = items.get(0).map_or("", |v| v.type_name());
        anyhow::anyhow!("{}: metadata {key}[0] is a {found}, expected {expected}", self.origin)
    }

    fn required<T>(&self, key: &str, value: Result<Option<T>>) -> Result<T> {
        value?.ok_or_else(|| anyhow::anyhow!("{}: metadata {key} is missing", self.origin))
    }

    /// A non-negative integer (of any integer type), if present.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        let Some(value) = self.get(key) else { return Ok(None) };
        match value.as_i128() {
            Some(v) => match usize::try_from(v) {
                Ok(v) => Ok(Some(v)),
                Err(_) => bail!("{}: metadata {key} is {v}, expected a non-negative integer", self.origin),
            },
            None => Err(self.wrong_type(key, value, "an integer")),
        }
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        self.required(key, self.opt_usize(key))
    }

    /// A number (float, or integer), if present.
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        let Some(value) = self.get(key) else { return Ok(None) };
        match (value.as_f64(), value.as_i128()) {
            (Some(v), _) => Ok(Some(v)),
            (_, Some(v)) => Ok(Some(v as f64)),
            _ => Err(self.wrong_type(key, value, "a number")),
        }
    }

    pub fn f64(&self, key: &str) -> Result<f64> {
        self.required(key, self.opt_f64(key))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(key, other, "a bool")),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, other, "a string")),
        }
    }

    pub fn str(&self, key: &str) -> Result<&str> {
        self.required(key, self.opt_str(key))
    }

    /// An array, if present.
    pub fn opt_array(&self, key: &str) -> Result<Option<&MetaArray>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::Array(items)) => Ok(Some(items)),
            Some(other) => Err(self.wrong_type(key, other, "an array")),
        }
    }

    /// An array of strings, if present.
    pub fn opt_strings(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let Some(items) = self.opt_array(key)? else { return Ok(None) };
        match items {
            MetaArray::String(strings) => Ok(Some(strings.iter().collect())),
            other if other.is_empty() => Ok(Some(Vec::new())),
            other => Err(self.wrong_item_type(key, other, "a string")),
        }
    }

    /// An array of numbers, if present.
    pub fn opt_numbers(&self, key: &str) -> Result<Option<Vec<f64>>> {
        let Some(items) = self.opt_array(key)? else { return Ok(None) };
        match items {
            MetaArray::Bool(_) | MetaArray::String(_) | MetaArray::Array(_) if !items.is_empty() => {
                Err(self.wrong_item_type(key, items, "a number"))
            }
            _ => Ok(Some(items.iter().filter_map(|v| v.as_f64().or(v.as_i128().map(|x| x as f64))).collect())),
        }
    }

    /// An array of bools, if present.
    pub fn opt_bools(&self, key: &str) -> Result<Option<&[bool]>> {
        let Some(items) = self.opt_array(key)? else { return Ok(None) };
        match items {
            MetaArray::Bool(flags) => Ok(Some(flags)),
            other if other.is_empty() => Ok(Some(&[])),
            other => Err(self.wrong_item_type(key, other, "a bool")),
        }
    }
}
