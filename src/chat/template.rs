//! Compiling and rendering a chat template the way HF transformers' `apply_chat_template` does.
//!
//! HF renders with a Jinja2 `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)` (so
//! `keep_trailing_newline` stays off and one trailing newline of the template is dropped) with the `loopcontrols`
//! extension and its own `{% generation %}` tag, plus these globals and filters (transformers'
//! `utils/chat_template_utils.py`):
//!
//! * `raise_exception(message)` aborts rendering with `message`;
//! * `strftime_now(format)` is `datetime.now().strftime(format)`;
//! * `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)` is `json.dumps`;
//! * `dict(...)` and `namespace(...)`.
//!
//! The template sees `messages`, `tools` (None), `documents` (None), `add_generation_prompt`, each named special
//! token that is set (`bos_token`, `eos_token`, `unk_token`, ...), and any extra keyword arguments.
//!
//! MiniJinja provides the Jinja2 language. On top of it this module sets the same whitespace rules, installs the
//! functions above, Python string/dict methods (`minijinja_contrib::pycompat`), Python's printing of values
//! (`None`, `True`, `['a']`, `2.0`) and Python's `json.dumps`. Message dicts keep their key order (`role`,
//! `content`), as Python dicts do. `{% generation %}...{% endgeneration %}`, which only matters to HF when it
//! computes assistant masks, renders its body in its own scope, as Jinja2's call block does.
//!
//! Known differences from Jinja2, none of which the common chat templates rely on when no tools are passed:
//!
//! * Python's `%` string formatting (`'%s' % x`) is not available (the `format` filter and `str.format` are);
//! * `strftime_now` formats the current time in UTC, where Python uses the local time zone;
//! * filters Jinja2 has and MiniJinja lacks (`center`, `truncate`, `wordwrap`, ...) are unknown filters.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::anyhow;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Rest, Value, ValueKind, ValueOrKwargs, from_args};
use minijinja::{AutoEscape, Environment, Error, ErrorKind};
use serde_json::Value as Json;

use super::Message;
use super::pyfmt::{self, JsonOptions};
use super::strftime::{DateTime, strftime};

/// A Python-style dict: a map that keeps insertion order, so iteration, printing and `tojson` list the keys in
/// the order HF's message dicts have them.
#[derive(Debug, Clone, Default)]
struct PyDict(Vec<(Value, Value)>);

impl Object for PyDict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.iter().map(|(k, _)| k.clone()).collect())
    }
}

impl PyDict {
    fn into_value(self) -> Value {
        Value::from_object(self)
    }
}

fn message_value(message: &Message) -> Value {
    PyDict(vec![
        (Value::from("role"), Value::from(message.role.as_str())),
        (Value::from("content"), Value::from(message.content.as_str())),
    ])
    .into_value()
}

/// Converts JSON to a template value, keeping object key order.
fn json_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from(items.iter().map(json_value).collect::<Vec<_>>()),
        Json::Object(map) => {
            PyDict(map.iter().map(|(k, v)| (Value::from(k.as_str()), json_value(v))).collect()).into_value()
        }
    }
}

/// The error `raise_exception(message)` carries, so that rendering can report the template's own message.
#[derive(Debug)]
struct RaisedException(String);

impl fmt::Display for RaisedException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedException {}

/// `{% generation %}` / `{% endgeneration %}` are an HF Jinja extension; MiniJinja has no custom tags. HF's tag
/// renders its body through a call block (its own scope) and only records offsets on the side, so it is
/// rewritten to the scoping no-op `{% with %}` / `{% endwith %}`, keeping whitespace-control marks and line
/// numbers intact.
fn rewrite_generation_tags(source: &str) -> std::borrow::Cow<'_, str> {
    if !source.contains("generation") {
        return source.into();
    }
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(off) = source[i..].find("{%") {
        let start = i + off;
        let mut j = start + 2;
        if j < bytes.len() && (bytes[j] == b'-' || bytes[j] == b'+') {
            j += 1;
        }
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        let word_start = j;
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
            j += 1;
        }
        let word = &source[word_start..j];
        let replacement = match word {
            "generation" => Some("with"),
            "endgeneration" => Some("endwith"),
            _ => None,
        };
        if let Some(replacement) = replacement {
            let mut k = j;
            while k < bytes.len() && bytes[k].is_ascii_whitespace() {
                k += 1;
            }
            if k < bytes.len() && (bytes[k] == b'-' || bytes[k] == b'+') {
                k += 1;
            }
            if source[k..].starts_with("%}") {
                out.push_str(&source[copied..word_start]);
                out.push_str(replacement);
                copied = j;
            }
        }
        i = start + 2;
    }
    if copied == 0 {
        return source.into();
    }
    out.push_str(&source[copied..]);
    out.into()
}

/// Sentinel of [`ChatTemplate`]'s clock meaning "read the system clock".
const SYSTEM_CLOCK: i64 = i64::MIN;

/// A compiled chat template with the special-token strings it is rendered with.
pub struct ChatTemplate {
    name: String,
    source: String,
    env: Environment<'static>,
    special_tokens: Vec<(String, String)>,
    /// Unix seconds `strftime_now` reads, or [`SYSTEM_CLOCK`].
    clock: Arc<AtomicI64>,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("name", &self.name)
            .field("special_tokens", &self.special_tokens)
            .field("source_len", &self.source.len())
            .finish()
    }
}

impl ChatTemplate {
    /// Compiles `source` (named `chat_template` in messages) to be rendered with the given bos/eos strings.
    pub fn new(source: &str, bos_token: Option<String>, eos_token: Option<String>) -> anyhow::Result<Self> {
        let mut tokens = Vec::new();
        if let Some(bos) = bos_token {
            tokens.push(("bos_token".to_string(), bos));
        }
        if let Some(eos) = eos_token {
            tokens.push(("eos_token".to_string(), eos));
        }
        Self::compile("chat_template", source, tokens)
    }

    /// Compiles `source` under `name` (used in error messages, e.g. the file it came from). `special_tokens` are
    /// the `(variable, string)` pairs the template sees, as HF passes its `special_tokens_map`.
    pub fn compile(name: &str, source: &str, special_tokens: Vec<(String, String)>) -> anyhow::Result<Self> {
        let clock = Arc::new(AtomicI64::new(SYSTEM_CLOCK));
        let env = build_environment(name, source, clock.clone())?;
        Ok(ChatTemplate { name: name.to_string(), source: source.to_string(), env, special_tokens, clock })
    }

    /// The name the template is reported under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The template text as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The string of a special-token variable (`"bos_token"`, `"eos_token"`, ...) the template is rendered with.
    pub fn special_token(&self, name: &str) -> Option<&str> {
        self.special_tokens.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn bos_token(&self) -> Option<&str> {
        self.special_token("bos_token")
    }

    pub fn eos_token(&self) -> Option<&str> {
        self.special_token("eos_token")
    }

    /// Pins the time `strftime_now` reports (Unix seconds, formatted as UTC) for reproducible renders; by default
    /// it reads the system clock.
    pub fn with_fixed_now(self, unix_seconds: i64) -> Self {
        self.clock.store(unix_seconds, Ordering::Relaxed);
        self
    }

    /// Renders `messages` as `apply_chat_template(messages, tokenize=False, add_generation_prompt=...)` does.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> anyhow::Result<String> {
        self.render_with_kwargs(messages, add_generation_prompt, &serde_json::Map::new())
    }

    /// [`render`](Self::render) with extra template variables, like `apply_chat_template`'s `**kwargs`
    /// (e.g. `{"enable_thinking": false}`); they override the special tokens of the same name.
    pub fn render_with_kwargs(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        kwargs: &serde_json::Map<String, Json>,
    ) -> anyhow::Result<String> {
        if messages.is_empty() {
            anyhow::bail!("cannot apply chat template {} to an empty conversation", self.name);
        }
        let mut vars: Vec<(String, Value)> =
            self.special_tokens.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        for (k, v) in kwargs {
            vars.retain(|(name, _)| name != k);
            vars.push((k.clone(), json_value(v)));
        }
        for (k, v) in [
            ("messages", Value::from(messages.iter().map(message_value).collect::<Vec<_>>())),
            ("tools", Value::from(())),
            ("documents", Value::from(())),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
        ] {
            vars.retain(|(name, _)| name != k);
            vars.push((k.to_string(), v));
        }
        let ctx = Value::from_pairs(vars);
        let template = self.env.get_template(&self.name).map_err(|e| anyhow!("chat template {}: {e}", self.name))?;
        template.render(ctx).map_err(|e| self.render_error(e))
    }

    fn render_error(&self, err: Error) -> anyhow::Error {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = cause {
            if let Some(raised) = e.downcast_ref::<RaisedException>() {
                let line = err.line().map(|l| format!(" (line {l})")).unwrap_or_default();
                return anyhow!("chat template {} raised an exception{line}: {}", self.name, raised.0);
            }
            cause = e.source();
        }
        anyhow!("failed to render chat template {}: {err}", self.name)
    }
}

fn build_environment(name: &str, source: &str, clock: Arc<AtomicI64>) -> anyhow::Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|e| anyhow!("configuring the chat template syntax: {e}"))?,
    );
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_unknown_method_callback(python_method);
    env.set_formatter(|out, _state, value| {
        out.write_str(&pyfmt::py_str(value)).map_err(|_| Error::from(ErrorKind::WriteFailure))
    });
    env.add_filter("string", |value: &Value| Value::from(pyfmt::py_str(value)));
    env.add_filter("tojson", tojson);
    env.add_filter("indent", indent);
    // Jinja2's `wordcount`: the number of `\w+` runs.
    env.add_filter("wordcount", |s: &str| {
        let is_word = |c: char| c.is_alphanumeric() || c == '_';
        s.chars().zip(std::iter::once(' ').chain(s.chars())).filter(|&(c, prev)| is_word(c) && !is_word(prev)).count()
    });
    // Jinja2's `sequence` test is "has len() and __getitem__": true for strings, lists, tuples, dicts and
    // (because Jinja2's Undefined has both) undefined values; false for None, numbers and plain iterators.
    env.add_test("sequence", |v: &Value| {
        matches!(v.kind(), ValueKind::Undefined | ValueKind::String | ValueKind::Seq | ValueKind::Map)
    });
    env.add_function("raise_exception", |message: Option<Value>| -> Result<Value, Error> {
        let message = message.map(|m| pyfmt::py_str(&m)).unwrap_or_default();
        Err(Error::new(ErrorKind::InvalidOperation, message.clone()).with_source(RaisedException(message)))
    });
    env.add_function("strftime_now", move |format: &str| -> String {
        let secs = clock.load(Ordering::Relaxed);
        let now = if secs == SYSTEM_CLOCK { DateTime::now_utc() } else { DateTime::from_unix(secs, 0) };
        strftime(&now, format)
    });

    let prepared = rewrite_generation_tags(source).into_owned();
    env.add_template_owned(name.to_string(), prepared)
        .map_err(|e| anyhow!("syntax error in chat template {name}: {e}"))?;
    Ok(env)
}

/// Python methods on template values (`'x'.strip()`, `d.items()`, ...): MiniJinja's pycompat set, plus
/// `str.rsplit`, `str.removeprefix` and `str.removesuffix`, with `str.title()` following Python's rule (a letter
/// is upper-cased when the character before it is not cased, so `"«hi» 2nd".title()` is `"«Hi» 2Nd"`) rather
/// than splitting on whitespace only.
fn python_method(state: &mut minijinja::State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        match method {
            "title" => {
                let () = from_args(args)?;
                return Ok(Value::from(py_title(s)));
            }
            "removeprefix" => {
                let (prefix,): (&str,) = from_args(args)?;
                return Ok(Value::from(s.strip_prefix(prefix).unwrap_or(s)));
            }
            "removesuffix" => {
                let (suffix,): (&str,) = from_args(args)?;
                return Ok(Value::from(s.strip_suffix(suffix).unwrap_or(s)));
            }
            "rsplit" => {
                let (positional, kwargs) = split_kwargs(args)?;
                let (sep, maxsplit): (Option<Value>, Option<i64>) = from_args(&positional)?;
                let sep = sep.or(kwargs.get("sep")?).filter(|v| !v.is_none());
                let maxsplit = maxsplit.or(kwargs.get("maxsplit")?).unwrap_or(-1);
                kwargs.assert_all_used()?;
                let sep = match &sep {
                    Some(v) => Some(v.as_str().ok_or_else(|| {
                        Error::new(ErrorKind::InvalidOperation, "rsplit() separator must be a string or None")
                    })?),
                    None => None,
                };
                return py_rsplit(s, sep, maxsplit).map(Value::from);
            }
            _ => {}
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// Separates a trailing keyword-argument value from positional arguments.
fn split_kwargs(args: &[Value]) -> Result<(Vec<Value>, Kwargs), Error> {
    let mut positional = args.to_vec();
    let kwargs = match positional.last() {
        Some(last) if last.is_kwargs() => Kwargs::try_from(positional.pop().unwrap_or_default())?,
        _ => Kwargs::from_iter(std::iter::empty::<(String, Value)>()),
    };
    Ok((positional, kwargs))
}

/// Python's `str.rsplit(sep, maxsplit)`.
fn py_rsplit(s: &str, sep: Option<&str>, maxsplit: i64) -> Result<Vec<String>, Error> {
    let mut parts: Vec<&str> = Vec::new();
    match sep {
        Some("") => return Err(Error::new(ErrorKind::InvalidOperation, "rsplit(): empty separator")),
        Some(sep) if maxsplit < 0 => parts.extend(s.rsplit(sep)),
        Some(sep) => parts.extend(s.rsplitn(maxsplit as usize + 1, sep)),
        None => {
            let mut rest = s.trim_end();
            while !rest.is_empty() {
                if maxsplit >= 0 && parts.len() as i64 == maxsplit {
                    parts.push(rest);
                    break;
                }
                match rest.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
                    Some((i, c)) => {
                        parts.push(&rest[i + c.len_utf8()..]);
                        rest = rest[..i].trim_end();
                    }
                    None => {
                        parts.push(rest);
                        break;
                    }
                }
            }
        }
    }
    parts.reverse();
    Ok(parts.into_iter().map(str::to_string).collect())
}

/// Python's `str.splitlines()` (without line ends).
fn py_splitlines(s: &str) -> Vec<&str> {
    let is_break = |c: char| {
        matches!(
            c,
            '\n' | '\r' | '\u{b}' | '\u{c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}' | '\u{2029}'
        )
    };
    let mut lines = Vec::new();
    let mut start = 0;
    let mut iter = s.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if is_break(c) {
            lines.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' && iter.peek().is_some_and(|&(_, n)| n == '\n') {
                iter.next();
                end += 1;
            }
            start = end;
        }
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

/// Jinja2's `indent(width=4, first=False, blank=False)`: indents every line after the first (and the first too
/// with `first`), skipping blank lines unless `blank`; a trailing newline is kept.
fn indent(s: &str, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let (positional, kwargs) = split_kwargs(&args.into_values())?;
    let (width, first, blank): (Option<Value>, Option<bool>, Option<bool>) = from_args(&positional)?;
    let width = width.or(kwargs.get("width")?);
    let first = first.or(kwargs.get("first")?);
    let blank = blank.or(kwargs.get("blank")?);
    kwargs.assert_all_used()?;
    let unit = match width {
        None => "    ".to_string(),
        Some(w) => match w.as_str() {
            Some(text) => text.to_string(),
            None => " ".repeat(i64::try_from(w)?.max(0) as usize),
        },
    };
    let text = format!("{s}\n");
    let lines = py_splitlines(&text);
    let mut out = if blank.unwrap_or(false) {
        lines.join(&format!("\n{unit}"))
    } else {
        let mut iter = lines.into_iter();
        let mut out = iter.next().unwrap_or_default().to_string();
        for line in iter {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&unit);
            }
            out.push_str(line);
        }
        out
    };
    if first.unwrap_or(false) {
        out.insert_str(0, &unit);
    }
    Ok(out)
}

/// Python's `str.title()`.
fn py_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_cased = false;
    for c in s.chars() {
        if prev_cased {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        prev_cased = c.is_lowercase() || c.is_uppercase();
    }
    out
}

/// HF's `tojson`: `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`, with the
/// same positional order and keyword names, and without Jinja's HTML escaping.
fn tojson(value: &Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let (positional, kwargs) = split_kwargs(&args.into_values())?;
    if positional.len() > 4 {
        return Err(Error::new(ErrorKind::TooManyArguments, "tojson() takes at most 4 arguments after the value"));
    }
    let mut positional = positional.into_iter();
    let (ensure_ascii, indent, separators, sort_keys) =
        (positional.next(), positional.next(), positional.next(), positional.next());
    let pick = |positional: Option<Value>, key: &str| -> Result<Option<Value>, Error> {
        let keyword: Option<Value> = kwargs.get(key)?;
        if positional.is_some() && keyword.is_some() {
            return Err(Error::new(ErrorKind::TooManyArguments, format!("tojson() got multiple values for {key}")));
        }
        Ok(positional.or(keyword).filter(|v| !v.is_none() && !v.is_undefined()))
    };
    let ensure_ascii = pick(ensure_ascii, "ensure_ascii")?.is_some_and(|v| v.is_true());
    let indent = match pick(indent, "indent")? {
        None => None,
        Some(v) if v.as_str().is_some() => Some(v.as_str().unwrap_or_default().to_string()),
        Some(v) => {
            let n = i64::try_from(v.clone()).map_err(|_| {
                Error::new(ErrorKind::InvalidOperation, format!("tojson indent must be an int or a string, got {v}"))
            })?;
            Some(" ".repeat(n.max(0) as usize))
        }
    };
    let separators = match pick(separators, "separators")? {
        None => None,
        Some(v) => {
            let parts: Vec<String> = v.try_iter()?.map(|p| pyfmt::py_str(&p)).collect();
            match <[String; 2]>::try_from(parts) {
                Ok([item, key]) => Some((item, key)),
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson separators must be an (item_separator, key_separator) pair",
                    ));
                }
            }
        }
    };
    let sort_keys = pick(sort_keys, "sort_keys")?.is_some_and(|v| v.is_true());
    kwargs.assert_all_used()?;
    pyfmt::json_dumps(value, &JsonOptions { ensure_ascii, indent, separators, sort_keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(pairs: &[(&str, &str)]) -> Vec<Message> {
        pairs.iter().map(|(r, c)| Message { role: r.to_string(), content: c.to_string() }).collect()
    }

    #[test]
    fn generation_tags_become_scoping_blocks() {
        assert_eq!(
            rewrite_generation_tags("a{%- generation -%}b{%+ endgeneration %}c{% set generation = 1 %}"),
            "a{%- with -%}b{%+ endwith %}c{% set generation = 1 %}"
        );
        assert_eq!(rewrite_generation_tags("{{ 'generation' }}"), "{{ 'generation' }}");
    }

    #[test]
    fn renders_with_hf_whitespace_rules() {
        let t = ChatTemplate::new(
            "{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}\n",
            None,
            None,
        )
        .unwrap();
        assert_eq!(t.render(&msgs(&[("user", "a"), ("assistant", "b")]), false).unwrap(), "[a]\n");
    }

    #[test]
    fn raise_exception_names_template_and_message() {
        let t = ChatTemplate::compile(
            "models/x/chat_template.jinja",
            "ok\n{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}",
            vec![],
        )
        .unwrap();
        let err = t.render(&msgs(&[("system", "s")]), false).unwrap_err().to_string();
        assert!(err.contains("models/x/chat_template.jinja"), "{err}");
        assert!(err.contains("raised an exception (line 2): System role not supported"), "{err}");
        assert_eq!(t.render(&msgs(&[("user", "u")]), false).unwrap(), "ok\n");
    }

    #[test]
    fn syntax_and_runtime_errors_name_the_template() {
        let err = ChatTemplate::compile("dir/chat_template.jinja", "{% if %}", vec![]).unwrap_err().to_string();
        assert!(err.contains("syntax error in chat template dir/chat_template.jinja"), "{err}");
        let t = ChatTemplate::new("{% for m in messages %}{{ m.content }}{% break %}{% endfor %}", None, None).unwrap();
        assert_eq!(
            t.render(&msgs(&[("user", "a"), ("user", "b")]), false).unwrap(),
            "a",
            "loop controls work as in Jinja2"
        );
        let t = ChatTemplate::new("{{ messages[0].content.nope.deeper }}", None, None).unwrap();
        let err = t.render(&msgs(&[("user", "u")]), false).unwrap_err().to_string();
        assert!(err.contains("failed to render chat template chat_template"), "{err}");
        let err = t.render(&[], false).unwrap_err().to_string();
        assert!(err.contains("empty conversation"), "{err}");
    }

    #[test]
    fn strftime_now_reads_the_pinned_clock() {
        let t = ChatTemplate::new("{{ strftime_now('%d %b %Y') }}", None, None).unwrap().with_fixed_now(1_709_647_629);
        assert_eq!(t.render(&msgs(&[("user", "u")]), false).unwrap(), "05 Mar 2024");
        let live = ChatTemplate::new("{{ strftime_now('%Y') }}", None, None).unwrap();
        let year: i32 = live.render(&msgs(&[("user", "u")]), false).unwrap().parse().unwrap();
        assert!(year >= 2024);
    }

    #[test]
    fn variables_match_what_hf_passes() {
        let t = ChatTemplate::new(
            "{{ bos_token }}|{{ eos_token }}|{{ tools is none }}|{{ documents is none }}|{{ pad_token is defined }}|\
             {{ add_generation_prompt }}|{{ enable_thinking is defined and enable_thinking is false }}",
            Some("<s>".into()),
            Some("</s>".into()),
        )
        .unwrap();
        assert_eq!(t.bos_token(), Some("<s>"));
        assert_eq!(t.render(&msgs(&[("user", "u")]), true).unwrap(), "<s>|</s>|True|True|False|True|False");
        let kwargs = serde_json::json!({"enable_thinking": false, "bos_token": "<B>"});
        let out = t.render_with_kwargs(&msgs(&[("user", "u")]), false, kwargs.as_object().unwrap()).unwrap();
        assert_eq!(out, "<B>|</s>|True|True|False|False|True");
    }

    #[test]
    fn tojson_accepts_python_arguments() {
        let t = ChatTemplate::new(
            "{{ messages[0] | tojson }}\n{{ messages[0] | tojson(indent=1, separators=(',', '=')) }}\n\
             {{ messages[0].content | tojson(true) }}\n{{ messages | tojson(sort_keys=true) }}",
            None,
            None,
        )
        .unwrap();
        let out = t.render(&msgs(&[("user", "é")]), false).unwrap();
        assert_eq!(
            out,
            "{\"role\": \"user\", \"content\": \"é\"}\n{\n \"role\"=\"user\",\n \"content\"=\"é\"\n}\n\"\\u00e9\"\n\
             [{\"content\": \"é\", \"role\": \"user\"}]"
        );
    }
}
