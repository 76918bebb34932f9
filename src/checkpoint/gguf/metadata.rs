//! GGUF metadata: typed values under dotted keys, and accessors that name the file and the key when a value is
//! missing or of another type.

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
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// The GGUF name of the value's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "uint8",
            MetaValue::I8(_) => "int8",
            MetaValue::U16(_) => "uint16",
            MetaValue::I16(_) => "int16",
            MetaValue::U32(_) => "uint32",
            MetaValue::I32(_) => "int32",
            MetaValue::U64(_) => "uint64",
            MetaValue::I64(_) => "int64",
            MetaValue::F32(_) => "float32",
            MetaValue::F64(_) => "float64",
            MetaValue::Bool(_) => "bool",
            MetaValue::String(_) => "string",
            MetaValue::Array(_) => "array",
        }
    }

    /// An integer of any width and sign, widened.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            MetaValue::U8(v) => v.into(),
            MetaValue::I8(v) => v.into(),
            MetaValue::U16(v) => v.into(),
            MetaValue::I16(v) => v.into(),
            MetaValue::U32(v) => v.into(),
            MetaValue::I32(v) => v.into(),
            MetaValue::U64(v) => v.into(),
            MetaValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// A float of either width.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as JSON (arrays longer than `max_items` cut to a count).
    pub fn to_json(&self, max_items: usize) -> serde_json::Value {
        use serde_json::Value;
        match self {
            MetaValue::Bool(b) => Value::Bool(*b),
            MetaValue::String(s) => Value::String(s.clone()),
            MetaValue::Array(items) if items.len() > max_items => Value::String(format!("[{} items]", items.len())),
            MetaValue::Array(items) => Value::Array(items.iter().map(|v| v.to_json(max_items)).collect()),
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

impl fmt::Display for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaValue::String(s) => write!(f, "{s:?}"),
            MetaValue::Array(items) => {
                write!(f, "[{} {} items]", items.len(), items.first().map_or("", |v| v.type_name()))
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

    fn required<T>(&self, key: &str, value: Result<Option<T>>) -> Result<T> {
        value?.ok_or_else(|| anyhow::anyhow!("{}: metadata {key} is missing", self.origin))
    }

    /// A non-negative integer (of any integer type), if present.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        let Some(value) = self.get(key) else { return Ok(None) };
        match value.as_i128() {
            Some(v) if v >= 0 && v <= usize::MAX as i128 => Ok(Some(v as usize)),
            Some(v) => bail!("{}: metadata {key} is {v}, expected a non-negative integer", self.origin),
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
    pub fn opt_array(&self, key: &str) -> Result<Option<&[MetaValue]>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::Array(items)) => Ok(Some(items)),
            Some(other) => Err(self.wrong_type(key, other, "an array")),
        }
    }

    /// An array of strings, if present.
    pub fn opt_strings(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let Some(items) = self.opt_array(key)? else { return Ok(None) };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().ok_or_else(|| {
                    anyhow::anyhow!("{}: metadata {key}[{i}] is a {}, expected a string", self.origin, v.type_name())
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// An array of numbers, if present.
    pub fn opt_numbers(&self, key: &str) -> Result<Option<Vec<f64>>> {
        let Some(items) = self.opt_array(key)? else { return Ok(None) };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_f64().or(v.as_i128().map(|x| x as f64)).ok_or_else(|| {
                    anyhow::anyhow!("{}: metadata {key}[{i}] is a {}, expected a number", self.origin, v.type_name())
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}
