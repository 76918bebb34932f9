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
//! A template comes from a model file a stranger may have written, so compiling and rendering are bounded:
//! templates longer than [`MAX_TEMPLATE_BYTES`] or with a tag of more than [`MAX_TAG_BYTES`] of expression are
//! refused before parsing; a render may spend [`RENDER_FUEL`] of MiniJinja's fuel (steps, and the data it makes:
//! an endless loop or a string that keeps doubling ends with an error); the texts this module's filters and
//! functions make are refused past what the remaining fuel pays for; the prompt stops at [`MAX_RENDERED_BYTES`];
//! and both run on a thread with [`TEMPLATE_STACK_BYTES`] of stack, which the recursion a template can cause
//! within those bounds fits in. One gap is MiniJinja's: where it converts a container to a string itself (`~`, and
//! filters taking a string), it prints it without paying for it, so a list nested in itself twice over and over
//! (`{% set l = [l, l] %}` in a loop) prints exponentially long.
//!
//! Known differences from Jinja2, none of which the common chat templates rely on when no tools are passed:
//!
//! * Python's `%` string formatting (`'%s' % x`) is not available (the `format` filter and `str.format` are);
//! * `strftime_now` formats the current time in UTC, where Python uses the local time zone;
//! * filters Jinja2 has and MiniJinja lacks (`center`, `truncate`, `wordwrap`, ...) are unknown filters;
//! * `pprint` prints `repr`, where `pprint.pformat` sorts dict keys and wraps values longer than a line.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::anyhow;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{
    Enumerator, Kwargs, Object, ObjectRepr, Rest, StringInput, Value, ValueKind, ValueOrKwargs, from_args,
};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State};
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

/// The work one render may do, in MiniJinja's fuel: one per instruction executed, and one per
/// [`BYTES_PER_FUEL`] bytes of data the template makes or processes (its output, strings, lists, filter results),
/// checked before any allocation whose size is known ahead. It bounds both the time a render takes and the
/// memory it allocates (about `RENDER_FUEL * BYTES_PER_FUEL` bytes), so a template that loops forever or keeps
/// doubling a string ends with an error. Measured on the templates of tests/fixtures/chat: their conversations
/// take 30 to 330 fuel (990 for the synthetic `py-compat` one); a conversation of 200 turns of 2 KB each (a
/// 400 KB prompt, longer than most contexts) takes 24,000 to 44,000 (205,000 for `py-compat`, which prints every
/// message through many filters). The budget is 45 times the latter for real templates.
const RENDER_FUEL: u64 = 2_000_000;

/// Bytes of data one fuel pays for, as MiniJinja charges them.
const BYTES_PER_FUEL: u64 = 64;

/// The longest prompt a render may produce: more than the context of any model this engine runs.
const MAX_RENDERED_BYTES: usize = 8 << 20;

/// The stack of the thread a template is compiled and rendered on, whichever thread asks. Printing a nested value
/// recurses once per level (at most a few hundred bytes of stack each), and a template pays about 9 fuel per level
/// of nesting it builds, so [`RENDER_FUEL`] allows ~220,000 levels: under 100 MB of stack. (Compiling needs far
/// less, given [`MAX_TAG_BYTES`].)
const TEMPLATE_STACK_BYTES: usize = 128 << 20;

/// The longest chat template compiled: real ones take a few KB (the longest of tests/fixtures/chat, 4.7 KB), and
/// with [`MAX_TAG_BYTES`] compiling this much takes at most ~2 s.
const MAX_TEMPLATE_BYTES: usize = 256 << 10;

/// The most bytes of expression one tag (`{{ ... }}` or `{% ... %}`) may hold, string literals aside: the tags of
/// tests/fixtures/chat hold at most 150. MiniJinja's parser recurses once per operator of an expression (a few
/// hundred bytes of stack each) and takes time quadratic in a chain of binary operators (7 s for 20,000 `~`).
const MAX_TAG_BYTES: usize = 2048;

/// Refuses a template longer than [`MAX_TEMPLATE_BYTES`], or with a tag holding more than [`MAX_TAG_BYTES`] of
/// expression outside its string literals.
fn check_template_size(name: &str, source: &str) -> anyhow::Result<()> {
    if source.len() > MAX_TEMPLATE_BYTES {
        anyhow::bail!(
            "chat template {name} is {} bytes long, more than the {MAX_TEMPLATE_BYTES} a chat template may take",
            source.len()
        );
    }
    let bytes = source.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let close: &[u8] = match &bytes[i..i + 2] {
            b"{{" => b"}}",
            b"{%" => b"%}",
            b"{#" => b"#}",
            _ => {
                i += 1;
                continue;
            }
        };
        let start = i;
        let mut expression = 0usize;
        i += 2;
        while i < bytes.len() && !bytes[i..].starts_with(close) {
            match bytes[i] {
                quote @ (b'\'' | b'"') if close != b"#}" => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != quote {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                }
                _ => expression += 1,
            }
            i += 1;
        }
        if close != b"#}" && expression > MAX_TAG_BYTES {
            let line = 1 + bytes[..start].iter().filter(|&&b| b == b'\n').count();
            anyhow::bail!(
                "chat template {name}: the tag on line {line} holds {expression} bytes of expression, more than the \
                 {MAX_TAG_BYTES} a tag may hold"
            );
        }
        i += close.len();
    }
    Ok(())
}

/// Runs `work` (`what`, for errors) on a thread of its own with [`TEMPLATE_STACK_BYTES`] of stack, a panic inside
/// the template engine becoming an error.
fn on_template_thread<T: Send>(what: &str, work: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("chat-template".into())
            .stack_size(TEMPLATE_STACK_BYTES)
            .spawn_scoped(scope, work)
            .map_err(|e| anyhow!("cannot start {what}: {e}"))?;
        thread.join().map_err(|_| anyhow!("{what} failed inside the template engine"))
    })
}

/// The bytes a text made on a template's behalf may still take: what the render's remaining fuel pays for.
fn byte_budget(state: &State) -> usize {
    let fuel = state.fuel_levels().map_or(RENDER_FUEL, |(_, remaining)| remaining);
    usize::try_from(fuel.saturating_mul(BYTES_PER_FUEL)).unwrap_or(usize::MAX)
}

/// The rendered prompt, which refuses to grow past [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct Prompt {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for Prompt {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > MAX_RENDERED_BYTES - self.bytes.len() {
            self.overflowed = true;
            return Err(std::io::Error::other("the rendered prompt is too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes of `value` as MiniJinja prints it (what `join` and `str.format` insert), counted up to `limit`: `None`
/// past it, which also stops the printing.
fn printed_len(value: &Value, limit: usize) -> Option<usize> {
    struct Counter {
        bytes: usize,
        limit: usize,
    }
    impl fmt::Write for Counter {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.bytes += s.len();
            if self.bytes > self.limit { Err(fmt::Error) } else { Ok(()) }
        }
    }
    if let Some(s) = value.as_str() {
        return (s.len() <= limit).then_some(s.len());
    }
    let mut counter = Counter { bytes: 0, limit };
    write!(counter, "{value}").ok().map(|()| counter.bytes)
}

/// Refuses to join the items of `items` with a `joiner_len`-byte joiner when the result would take more than the
/// render has left: MiniJinja's `join` filter and `str.join` pay for the joiners as they go, but not for the items,
/// which may all be the same long string. Each item costs one fuel, so a huge lazy list ends the render. Values
/// that are not iterable are left for the join itself to refuse.
fn check_join_size(state: &State, items: &Value, joiner_len: usize) -> Result<(), Error> {
    let Ok(iter) = items.try_iter() else { return Ok(()) };
    let limit = byte_budget(state);
    let mut total = 0usize;
    for (i, item) in iter.enumerate() {
        state.consume_fuel(1)?;
        let joiner = if i > 0 { joiner_len } else { 0 };
        let item_len = printed_len(&item, limit.saturating_sub(total)).unwrap_or(usize::MAX);
        total = total.saturating_add(joiner).saturating_add(item_len);
        if total > limit {
            return Err(pyfmt::too_large("the joined text", limit));
        }
    }
    Ok(())
}

/// Jinja2's `join(d='', attribute=None)`: MiniJinja's, once [`check_join_size`] has found the result affordable
/// (counting whole items even where an attribute of each is joined).
fn join(
    state: &mut State,
    value: &Value,
    joiner: Option<StringInput<'_>>,
    attribute: Option<&str>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let joiner_len = match &joiner {
        Some(j) => j.as_str().len(),
        None => kwargs.get::<Option<Value>>("d")?.map_or(0, |d| printed_len(&d, usize::MAX).unwrap_or(0)),
    };
    check_join_size(state, value, joiner_len)?;
    minijinja::filters::join(state, value, joiner, attribute, kwargs)
}

/// Refuses `format_str.format(*args)` when its result could take more than the render has left: MiniJinja's
/// `str.format` honours any width or precision and repeats an argument per field without paying for either. The
/// estimate is every field at the largest number written in any field's spec (or passed as an argument, for nested
/// widths) plus the longest argument.
fn check_format_size(state: &State, format_str: &str, args: &[Value]) -> Result<(), Error> {
    let limit = byte_budget(state);
    let mut fields = 0usize;
    let mut widest = 0usize;
    let mut nested = false;
    let mut rest = format_str;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(after) = rest.strip_prefix('{') {
            rest = after;
            continue;
        }
        let end = rest.find('}').unwrap_or(rest.len());
        let field = &rest[..end];
        fields += 1;
        if let Some((_, spec)) = field.split_once(':') {
            nested |= spec.contains('{');
            for digits in spec.split(|c: char| !c.is_ascii_digit()).filter(|d| !d.is_empty()) {
                widest = widest.max(digits.parse().unwrap_or(usize::MAX));
            }
        }
        rest = &rest[end..];
    }
    let mut values: Vec<Value> = Vec::new();
    for arg in args {
        match arg.try_iter() {
            Ok(keys) if arg.is_kwargs() => values.extend(keys.map(|key| arg.get_item(&key).unwrap_or_default())),
            _ => values.push(arg.clone()),
        }
    }
    let mut longest = 0usize;
    for value in &values {
        if nested && let Some(n) = value.as_usize() {
            widest = widest.max(n);
        }
        longest = longest.max(printed_len(value, limit).unwrap_or(usize::MAX));
    }
    let estimate = fields.saturating_mul(widest.saturating_add(longest)).saturating_add(format_str.len());
    if estimate > limit {
        return Err(pyfmt::too_large("the formatted text", limit));
    }
    Ok(())
}

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
    ///
    /// A template longer than [`MAX_TEMPLATE_BYTES`], or with a tag holding more than [`MAX_TAG_BYTES`] of
    /// expression, is refused before MiniJinja parses it: its parser recurses once per operator of an expression
    /// and takes time quadratic in a chain of binary operators.
    pub fn compile(name: &str, source: &str, special_tokens: Vec<(String, String)>) -> anyhow::Result<Self> {
        check_template_size(name, source)?;
        let clock = Arc::new(AtomicI64::new(SYSTEM_CLOCK));
        let env = on_template_thread(&format!("compiling chat template {name}"), || {
            build_environment(name, source, clock.clone())
        })??;
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
        let mut prompt = Prompt::default();
        let rendered = on_template_thread(&format!("rendering chat template {}", self.name), || {
            template.render_captured_to(ctx, &mut prompt).map(|done| done.state().fuel_levels())
        })?;
        match rendered {
            Err(e) => Err(self.render_error(e, prompt.overflowed)),
            Ok(fuel) => {
                if let Some((used, _)) = fuel {
                    let bytes = prompt.bytes.len();
                    tracing::debug!(template = %self.name, fuel = used, bytes, "chat template rendered");
                }
                String::from_utf8(prompt.bytes)
                    .map_err(|e| anyhow!("chat template {} rendered invalid UTF-8: {e}", self.name))
            }
        }
    }

    fn render_error(&self, err: Error, overflowed: bool) -> anyhow::Error {
        let line = err.line().map(|l| format!(" (line {l})")).unwrap_or_default();
        if overflowed {
            return anyhow!(
                "chat template {} exceeded its output limit{line}: the rendered prompt would pass {MAX_RENDERED_BYTES} \
                 bytes",
                self.name
            );
        }
        if err.kind() == ErrorKind::OutOfFuel {
            return anyhow!(
                "chat template {} exceeded its budget{line}: a render may take {RENDER_FUEL} fuel (one per step, one \
                 per {BYTES_PER_FUEL} bytes of data made), and {}",
                self.name,
                err.detail()
                    .unwrap_or("the template used it up (an endless or very long loop, or a value that keeps growing)")
            );
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = cause {
            if let Some(raised) = e.downcast_ref::<RaisedException>() {
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
    env.set_fuel(Some(RENDER_FUEL));
    env.set_unknown_method_callback(python_method);
    env.set_formatter(|out, state, value| {
        let text = match value.as_str() {
            Some(s) if value.kind() == ValueKind::String => std::borrow::Cow::Borrowed(s),
            _ => std::borrow::Cow::Owned(pyfmt::py_str(value, byte_budget(state))?),
        };
        out.write_str(&text).map_err(|_| Error::from(ErrorKind::WriteFailure))
    });
    env.add_filter("string", |state: &State, value: &Value| pyfmt::py_str(value, byte_budget(state)).map(Value::from));
    env.add_filter("tojson", tojson);
    env.add_filter("indent", indent);
    env.add_filter("join", join);
    // Jinja2's `pprint` is Python's `pprint.pformat`: `repr`, with dict keys sorted and long values wrapped (neither
    // done here). MiniJinja's own prints Rust's pretty debug form, whose indentation costs time quadratic in the
    // nesting.
    env.add_filter("pprint", |state: &State, value: &Value| pyfmt::py_repr(value, byte_budget(state)));
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
    env.add_function("raise_exception", |state: &State, message: Option<Value>| -> Result<Value, Error> {
        let message = match message {
            Some(m) => pyfmt::py_str(&m, byte_budget(state))?,
            None => String::new(),
        };
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
fn python_method(state: &mut State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        match method {
            "join" => {
                if let Some(items) = args.first() {
                    check_join_size(state, items, s.len())?;
                }
            }
            "format" => check_format_size(state, s, args)?,
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
fn indent(state: &State, s: &str, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let (positional, kwargs) = split_kwargs(&args.into_values())?;
    let (width, first, blank): (Option<Value>, Option<bool>, Option<bool>) = from_args(&positional)?;
    let width = width.or(kwargs.get("width")?);
    let first = first.or(kwargs.get("first")?);
    let blank = blank.or(kwargs.get("blank")?);
    kwargs.assert_all_used()?;
    let limit = byte_budget(state);
    let unit = match width {
        None => "    ".to_string(),
        Some(w) => match w.as_str() {
            Some(text) => text.to_string(),
            None => {
                let width = usize::try_from(i64::try_from(w)?.max(0)).unwrap_or(usize::MAX);
                if width > limit {
                    return Err(pyfmt::too_large("the indent", limit));
                }
                " ".repeat(width)
            }
        },
    };
    let lines = s.bytes().filter(|&b| b == b'\n').count() + 2;
    if unit.len().saturating_mul(lines).saturating_add(s.len()) > limit {
        return Err(pyfmt::too_large("the indented text", limit));
    }
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
fn tojson(state: &State, value: &Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let limit = byte_budget(state);
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
            let width = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
            if width > limit {
                return Err(pyfmt::too_large("the tojson indent", limit));
            }
            Some(" ".repeat(width))
        }
    };
    let separators = match pick(separators, "separators")? {
        None => None,
        Some(v) => {
            let parts: Vec<String> = v.try_iter()?.map(|p| pyfmt::py_str(&p, limit)).collect::<Result<_, _>>()?;
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
    pyfmt::json_dumps(value, &JsonOptions { ensure_ascii, indent, separators, sort_keys }, limit)
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

    /// Renders `source` (named `dir/tokenizer_config.json (chat_template)`) and returns its error.
    fn hostile(source: &str) -> String {
        let t = ChatTemplate::compile("dir/tokenizer_config.json (chat_template)", source, vec![]).unwrap();
        let start = std::time::Instant::now();
        let err = format!("{:#}", t.render(&msgs(&[("user", "u")]), true).unwrap_err());
        assert!(start.elapsed().as_secs_f64() < 10.0, "{source}: {:?}", start.elapsed());
        assert!(err.contains("dir/tokenizer_config.json (chat_template)"), "{err}");
        err
    }

    #[test]
    fn endless_loops_and_growing_values_exceed_the_budget() {
        for source in [
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
            "{{ 'x' * 10**12 }}",
            "{% set s = 'x' * 1000000 %}{{ ([s] * 1000)|join }}",
            "{% set s = 'x' * 1000000 %}{{ ''.join([s] * 1000) }}",
            "{% set s = 'x' * 1000000 %}{{ [s] * 1000 }}",
            "{% set s = 'x' * 1000000 %}{{ ([s] * 1000)|string|length }}",
            "{% set s = 'x' * 1000000 %}{{ ([s] * 1000)|pprint|length }}",
            "{% set s = 'x' * 1000000 %}{{ ([s] * 1000)|tojson|length }}",
            "{% set s = 'x' * 1000000 %}{{ raise_exception([s] * 1000) }}",
            "{{ '{:>1000000000}'.format('x') }}",
            "{{ '{:{w}}'.format('x', w=1000000000) }}",
            "{% set s = 'x' * 100000 %}{{ ('{0}' * 2000).format(s) }}",
            "{{ 'a'|indent(10**12) }}",
            "{{ ('a\\n' * 100000)|indent(2000) }}",
            "{{ messages|tojson(indent=10**12) }}",
        ] {
            let err = hostile(source);
            assert!(err.contains("exceeded its budget") && err.contains("may take 2000000 fuel"), "{source}: {err}");
        }
    }

    #[test]
    fn long_output_exceeds_the_output_limit() {
        let err = hostile("{% for i in range(100) %}{{ 'x' * 100000 }}{% endfor %}");
        assert!(err.contains("exceeded its output limit") && err.contains("would pass 8388608 bytes"), "{err}");
    }

    #[test]
    fn values_nested_as_deeply_as_the_budget_allows_print_without_overflowing() {
        let t = ChatTemplate::new(
            "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% for j in range(3) %}\
             {% set ns.l = [ns.l] %}{% endfor %}{% endfor %}{{ ns.l|length }}{{ ns.l|tojson|length }}\
             {{ ns.l|string|length }}{{ ns.l }}{{ ('' ~ ns.l)|length }}",
            None,
            None,
        )
        .unwrap();
        let err = format!("{:#}", t.render(&msgs(&[("user", "u")]), false).unwrap_err());
        assert!(err.contains("exceeded its budget"), "{err}");
        let t = ChatTemplate::new(
            "{% set ns = namespace(l=[]) %}{% for i in range(60000) %}{% for j in range(2) %}\
             {% set ns.l = [ns.l] %}{% endfor %}{% endfor %}{{ (ns.l|tojson|length) + (ns.l|string|length) }}\
             {{ ('' ~ ns.l)|length }}",
            None,
            None,
        )
        .unwrap();
        assert_eq!(t.render(&msgs(&[("user", "u")]), false).unwrap(), "480004240002");
    }

    #[test]
    fn templates_too_long_or_with_too_deep_expressions_are_refused_before_parsing() {
        let compile = |source: &str| ChatTemplate::compile("dir/chat_template.jinja", source, vec![]);
        let err = compile(&"x".repeat(MAX_TEMPLATE_BYTES + 1)).unwrap_err().to_string();
        assert!(err.contains("dir/chat_template.jinja is 262145 bytes long, more than the 262144"), "{err}");
        for expression in ["-".repeat(100_000) + "1", "x".to_string() + &"~x".repeat(20_000), "x|e".repeat(1000)] {
            let start = std::time::Instant::now();
            let err = compile(&format!("ok\n{{{{ {expression} }}}}")).unwrap_err().to_string();
            assert!(err.contains("the tag on line 2 holds") && err.contains("more than the 2048"), "{err}");
            assert!(start.elapsed().as_secs_f64() < 1.0, "{:?}", start.elapsed());
        }
        // String literals and comments do not count, and a tag just under the limit compiles.
        let literal =
            format!("{{{{ '{}' ~ \"{}\\\"\" }}}}{{# {} #}}", "x".repeat(100_000), "y".repeat(10_000), "-".repeat(5000));
        assert_eq!(compile(&literal).unwrap().render(&msgs(&[("user", "u")]), false).unwrap().len(), 110_001);
        let deep = format!("{{{{ {}1 }}}}", "-".repeat(MAX_TAG_BYTES - 3));
        assert_eq!(compile(&deep).unwrap().render(&msgs(&[("user", "u")]), false).unwrap(), "-1");
    }

    #[test]
    fn pprint_prints_python_repr() {
        let t = ChatTemplate::new("{{ messages[0]|pprint }} {{ [1, none, 'it\\'s']|pprint }}", None, None).unwrap();
        assert_eq!(
            t.render(&msgs(&[("user", "u")]), false).unwrap(),
            "{'role': 'user', 'content': 'u'} [1, None, \"it's\"]"
        );
    }
}
