//! Python-compatible text forms of template values.
//!
//! HF renders chat templates with Jinja2, so every value a template prints goes through Python's `str()`, and the
//! `tojson` filter is Python's `json.dumps`. MiniJinja's own forms differ in small but visible ways (`none` vs
//! `None`, `true` vs `True`, `["a"]` vs `['a']`, compact JSON vs `", "`/`": "` separators, float spelling), so this
//! module re-implements the Python forms on top of MiniJinja values.

use std::fmt::{self, Write as _};

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// Python's `repr(float)`: the shortest round-tripping digits, positional notation for decimal exponents in
/// `-4..16` (always with a fractional part, e.g. `2.0`), scientific otherwise (`1e+20`, `1.5e-07`).
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "1.5e-7", "-1e20".
    let sci = format!("{:e}", x);
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// A string that refuses to grow past `limit` bytes: every text this module makes is built in one, so that a
/// template cannot make it allocate more than the render's remaining budget (a list holding the same long string
/// many times prints far longer than the memory it takes).
pub struct Bounded {
    text: String,
    limit: usize,
}

impl Bounded {
    pub fn new(limit: usize) -> Self {
        Bounded { text: String::new(), limit }
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() > self.limit - self.text.len() {
            return Err(fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

/// The error for a text that would pass the `limit` of a [`Bounded`] string.
pub fn too_large(what: &str, limit: usize) -> Error {
    Error::new(ErrorKind::OutOfFuel, format!("{what} would take more than the {limit} bytes the render has left"))
}

/// Python's `str(x)` for a template value, which is what Jinja2 prints for `{{ x }}`; at most `limit` bytes.
pub fn py_str(value: &Value, limit: usize) -> Result<String, Error> {
    match value.kind() {
        ValueKind::Undefined => Ok(String::new()),
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            if s.len() > limit {
                return Err(too_large("a string", limit));
            }
            Ok(s.to_string())
        }
        _ => py_repr(value, limit),
    }
}

/// Python's `repr(x)` for a template value (strings quoted, containers recursive); at most `limit` bytes.
pub fn py_repr(value: &Value, limit: usize) -> Result<String, Error> {
    let mut out = Bounded::new(limit);
    write_repr(value, &mut out).map_err(|_| too_large(&format!("the text of a {}", value.kind()), limit))?;
    Ok(out.into_string())
}

fn write_repr(value: &Value, out: &mut dyn fmt::Write) -> fmt::Result {
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.write_str("None")?,
        ValueKind::Bool => out.write_str(if value.is_true() { "True" } else { "False" })?,
        ValueKind::Number => {
            if value.is_integer() {
                write!(out, "{value}")?;
            } else {
                match f64::try_from(value.clone()) {
                    Ok(f) => out.write_str(&float_repr(f))?,
                    Err(_) => write!(out, "{value}")?,
                }
            }
        }
        ValueKind::String => write_str_repr(value.as_str().unwrap_or_default(), out)?,
        ValueKind::Seq | ValueKind::Iterable => {
            let tuple = value.is_tuple();
            out.write_char(if tuple { '(' } else { '[' })?;
            let mut n = 0;
            if let Ok(iter) = value.try_iter() {
                for item in iter {
                    if n > 0 {
                        out.write_str(", ")?;
                    }
                    write_repr(&item, out)?;
                    n += 1;
                }
            }
            if tuple && n == 1 {
                out.write_char(',')?;
            }
            out.write_char(if tuple { ')' } else { ']' })?;
        }
        ValueKind::Map => {
            out.write_char('{')?;
            if let Some(pairs) = value.as_object().and_then(|o| o.try_iter_pairs()) {
                for (i, (k, v)) in pairs.enumerate() {
                    if i > 0 {
                        out.write_str(", ")?;
                    }
                    write_repr(&k, out)?;
                    out.write_str(": ")?;
                    write_repr(&v, out)?;
                }
            }
            out.write_char('}')?;
        }
        _ => write!(out, "{value}")?,
    }
    Ok(())
}

/// Whether Python's `str.isprintable()` would reject `c` (approximated: controls, separators other than the
/// ASCII space, and the common format characters), in which case `repr` escapes it.
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

fn write_str_repr(s: &str, out: &mut dyn fmt::Write) -> fmt::Result {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.write_char(quote)?;
    // Runs of characters printed as they are are copied whole.
    let mut plain = 0;
    for (at, c) in s.char_indices() {
        if !(matches!(c, '\\' | '\n' | '\r' | '\t') || c == quote || is_unprintable(c)) {
            continue;
        }
        out.write_str(&s[plain..at])?;
        plain = at + c.len_utf8();
        match c {
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c == quote => {
                out.write_char('\\')?;
                out.write_char(c)?;
            }
            c => {
                let cp = c as u32;
                if cp < 0x100 {
                    write!(out, "\\x{cp:02x}")?
                } else if cp < 0x10000 {
                    write!(out, "\\u{cp:04x}")?
                } else {
                    write!(out, "\\U{cp:08x}")?
                }
            }
        }
    }
    out.write_str(&s[plain..])?;
    out.write_char(quote)
}

/// Options of Python's `json.dumps` that HF's `tojson` filter exposes; the default is HF's (all off).
#[derive(Clone, Debug, Default)]
pub struct JsonOptions {
    /// Escape every non-ASCII character as `\uXXXX` (HF's default is `false`).
    pub ensure_ascii: bool,
    /// Pretty-printing indent unit; `None` is the single-line form.
    pub indent: Option<String>,
    /// `(item_separator, key_separator)`; defaults to `(", ", ": ")`, or `(",", ": ")` when indenting.
    pub separators: Option<(String, String)>,
    /// Sort object keys.
    pub sort_keys: bool,
}

/// Python's `json.dumps(value, ...)` over a template value, at most `limit` bytes long.
pub fn json_dumps(value: &Value, opts: &JsonOptions, limit: usize) -> Result<String, Error> {
    let (item_sep, key_sep) = match &opts.separators {
        Some((i, k)) => (i.clone(), k.clone()),
        None if opts.indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let mut w = JsonWriter { opts, item_sep, key_sep, out: Bounded::new(limit) };
    w.value(value, 0)?;
    Ok(w.out.into_string())
}

struct JsonWriter<'a> {
    opts: &'a JsonOptions,
    item_sep: String,
    key_sep: String,
    out: Bounded,
}

impl JsonWriter<'_> {
    fn put(&mut self, s: &str) -> Result<(), Error> {
        self.out.write_str(s).map_err(|_| too_large("the JSON text", self.out.limit))
    }

    fn newline(&mut self, level: usize) -> Result<(), Error> {
        if let Some(indent) = &self.opts.indent {
            let indent = indent.clone();
            self.put("\n")?;
            for _ in 0..level {
                self.put(&indent)?;
            }
        }
        Ok(())
    }

    fn separator(&mut self, level: usize) -> Result<(), Error> {
        let sep = std::mem::take(&mut self.item_sep);
        let written = self.put(&sep);
        self.item_sep = sep;
        written?;
        self.newline(level)
    }

    fn value(&mut self, value: &Value, level: usize) -> Result<(), Error> {
        match value.kind() {
            ValueKind::None => self.put("null")?,
            ValueKind::Bool => self.put(if value.is_true() { "true" } else { "false" })?,
            ValueKind::Number => {
                let number = number_text(value);
                self.put(&number)?;
            }
            ValueKind::String => self.string(value.as_str().unwrap_or_default())?,
            ValueKind::Seq | ValueKind::Iterable => {
                let mut items = value.try_iter()?.peekable();
                if items.peek().is_none() {
                    return self.put("[]");
                }
                self.put("[")?;
                self.newline(level + 1)?;
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        self.separator(level + 1)?;
                    }
                    self.value(&item, level + 1)?;
                }
                self.newline(level)?;
                self.put("]")?;
            }
            ValueKind::Map => {
                let mut pairs: Vec<(String, Value)> = Vec::new();
                if let Some(iter) = value.as_object().and_then(|o| o.try_iter_pairs()) {
                    for (k, v) in iter {
                        pairs.push((self.key(&k)?, v));
                    }
                }
                if self.opts.sort_keys {
                    pairs.sort_by(|a, b| a.0.cmp(&b.0));
                }
                if pairs.is_empty() {
                    return self.put("{}");
                }
                self.put("{")?;
                self.newline(level + 1)?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        self.separator(level + 1)?;
                    }
                    self.string(k)?;
                    let sep = std::mem::take(&mut self.key_sep);
                    let written = self.put(&sep);
                    self.key_sep = sep;
                    written?;
                    self.value(v, level + 1)?;
                }
                self.newline(level)?;
                self.put("}")?;
            }
            kind => {
                let type_name = match kind {
                    ValueKind::Undefined => "Undefined".to_string(),
                    other => other.to_string(),
                };
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("Object of type {type_name} is not JSON serializable"),
                ));
            }
        }
        Ok(())
    }

    /// Object keys as `json.dumps` coerces them: strings as-is, numbers/bools/None spelled as JSON.
    fn key(&self, key: &Value) -> Result<String, Error> {
        Ok(match key.kind() {
            ValueKind::String => key.as_str().unwrap_or_default().to_string(),
            ValueKind::None => "null".into(),
            ValueKind::Bool => (if key.is_true() { "true" } else { "false" }).into(),
            ValueKind::Number => number_text(key),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("keys must be str, int, float, bool or None, not {other}"),
                ));
            }
        })
    }

    fn string(&mut self, s: &str) -> Result<(), Error> {
        let ensure_ascii = self.opts.ensure_ascii;
        let limit = self.out.limit;
        write_json_string(s, ensure_ascii, &mut self.out).map_err(|_| too_large("the JSON text", limit))
    }
}

/// A number as `json.dumps` spells it.
fn number_text(value: &Value) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    match f64::try_from(value.clone()) {
        Ok(f) if f.is_nan() => "NaN".into(),
        Ok(f) if f.is_infinite() => (if f > 0.0 { "Infinity" } else { "-Infinity" }).into(),
        Ok(f) => float_repr(f),
        Err(_) => value.to_string(),
    }
}

fn write_json_string(s: &str, ensure_ascii: bool, out: &mut dyn fmt::Write) -> fmt::Result {
    out.write_char('"')?;
    // Runs of characters written as they are are copied whole.
    let mut plain = 0;
    for (at, c) in s.char_indices() {
        if !(c == '"' || c == '\\' || (c as u32) < 0x20 || (ensure_ascii && !c.is_ascii())) {
            continue;
        }
        out.write_str(&s[plain..at])?;
        plain = at + c.len_utf8();
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            '\u{8}' => out.write_str("\\b")?,
            '\u{c}' => out.write_str("\\f")?,
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32)?,
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(out, "\\u{:04x}", unit)?;
                }
            }
        }
    }
    out.write_str(&s[plain..])?;
    out.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (2.5, "2.5"),
            (-3.0, "-3.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456.789, "123456.789"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e20, "1e+20"),
            (1.25e300, "1.25e+300"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x), want, "repr({x:e})");
        }
    }

    #[test]
    fn str_and_repr_use_python_spelling() {
        let py_str = |v: &Value| super::py_str(v, usize::MAX).unwrap();
        let py_repr = |v: &Value| super::py_repr(v, usize::MAX).unwrap();
        assert_eq!(py_str(&Value::from(())), "None");
        assert_eq!(py_str(&Value::from(true)), "True");
        assert_eq!(py_str(&Value::UNDEFINED), "");
        assert_eq!(py_str(&Value::from("it's")), "it's");
        assert_eq!(py_repr(&Value::from("it's")), "\"it's\"");
        assert_eq!(py_repr(&Value::from("a'b\"c\n")), "'a\\'b\"c\\n'");
        assert_eq!(py_repr(&Value::from("\u{1}\u{a0}é")), "'\\x01\\xa0é'");
        let list = Value::from(vec![Value::from(1), Value::from("x"), Value::from(()), Value::from(0.5)]);
        assert_eq!(py_str(&list), "[1, 'x', None, 0.5]");
    }

    #[test]
    fn texts_stop_at_their_limit() {
        let list = Value::from(vec![Value::from("x".repeat(100)); 1000]);
        assert_eq!(super::py_repr(&list, 102).unwrap_err().kind(), ErrorKind::OutOfFuel);
        assert_eq!(super::py_repr(&list, 104 * 1000).unwrap().len(), 2 + 102 * 1000 + 2 * 999);
        assert!(super::py_str(&Value::from("abc"), 2).is_err());
        let err = json_dumps(&list, &JsonOptions::default(), 1000).unwrap_err();
        assert!(err.to_string().contains("the JSON text would take more than the 1000 bytes"), "{err}");
        let pretty = JsonOptions { indent: Some(" ".repeat(1 << 20)), ..Default::default() };
        assert!(json_dumps(&list, &pretty, 1 << 20).is_err());
    }

    #[test]
    fn json_dumps_matches_python_defaults() {
        let v = Value::from_pairs([
            ("b", Value::from(vec![Value::from(1), Value::from(())])),
            ("a", Value::from("é\u{1}")),
        ]);
        let json_dumps = |v: &Value, opts: &JsonOptions| super::json_dumps(v, opts, usize::MAX);
        let compact = json_dumps(&v, &JsonOptions { sort_keys: true, ..Default::default() }).unwrap();
        assert_eq!(compact, "{\"a\": \"é\\u0001\", \"b\": [1, null]}");
        let ascii = json_dumps(&Value::from("é🚀"), &JsonOptions { ensure_ascii: true, ..Default::default() }).unwrap();
        assert_eq!(ascii, "\"\\u00e9\\ud83d\\ude80\"");
        let pretty = json_dumps(
            &Value::from(vec![Value::from(1), Value::from(Vec::<Value>::new())]),
            &JsonOptions { indent: Some("  ".into()), ..Default::default() },
        )
        .unwrap();
        assert_eq!(pretty, "[\n  1,\n  []\n]");
        assert!(json_dumps(&Value::UNDEFINED, &JsonOptions::default()).is_err());
    }
}
