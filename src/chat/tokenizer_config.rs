//! What a model directory says about chat formatting: `tokenizer_config.json` (chat template, special tokens),
//! `chat_template.jinja`, and the generation stop tokens of `generation_config.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value as Json;

/// The file HF writes a checkpoint's default chat template to (it takes priority over `tokenizer_config.json`).
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
/// The tokenizer configuration file.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// Legacy special-token file, consulted only when `tokenizer_config.json` has no `added_tokens_decoder`.
pub const SPECIAL_TOKENS_MAP_FILE: &str = "special_tokens_map.json";
/// Generation defaults, including `eos_token_id`.
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// HF's named special-token attributes, in `SPECIAL_TOKENS_ATTRIBUTES` order. `apply_chat_template` exposes each
/// one that is set to the template under this name.
pub const NAMED_SPECIAL_TOKENS: [&str; 7] =
    ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

/// The special tokens most callers need, as strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
}

/// The parts of `tokenizer_config.json` that chat formatting uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenizerConfig {
    /// bos/eos/pad token strings.
    pub special_tokens: SpecialTokens,
    /// Every named special token that is set (see [`NAMED_SPECIAL_TOKENS`]), in that order: exactly the
    /// `special_tokens_map` variables HF passes to a chat template.
    pub named_special_tokens: Vec<(String, String)>,
    /// The `chat_template` entry: a single template is stored under the name `"default"`; a list of
    /// `{"name", "template"}` objects keeps its names and order.
    pub chat_templates: Vec<(String, String)>,
}

impl TokenizerConfig {
    /// The template HF uses when the caller names none: the one named `"default"` (a plain string template is
    /// stored under that name).
    pub fn default_chat_template(&self) -> Option<&str> {
        self.chat_templates.iter().find(|(name, _)| name == "default").map(|(_, t)| t.as_str())
    }

    /// The string of a named special token (`"bos_token"`, `"unk_token"`, ...), if set.
    pub fn special_token(&self, name: &str) -> Option<&str> {
        self.named_special_tokens.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A special-token entry as stored by HF: a plain string, `null`, or a serialized `AddedToken`
/// (`{"content": "<s>", "lstrip": false, ...}`, sometimes tagged `"__type": "AddedToken"`).
fn token_string(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Object(map) => map.get("content").and_then(Json::as_str).map(str::to_string),
        _ => None,
    }
}

fn read_json(path: &Path) -> anyhow::Result<Json> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Reads `tokenizer_config.json` of a model directory. A directory without one yields the empty config.
///
/// Special tokens follow HF's loading rules: the values in `tokenizer_config.json`, overridden by
/// `special_tokens_map.json` for legacy checkpoints whose config has no `added_tokens_decoder`.
pub fn read_tokenizer_config(dir: &Path) -> anyhow::Result<TokenizerConfig> {
    let path = dir.join(TOKENIZER_CONFIG_FILE);
    let config = if path.is_file() { read_json(&path)? } else { Json::Object(Default::default()) };
    let Json::Object(map) = &config else {
        bail!("{} is not a JSON object", path.display());
    };

    let mut named: Vec<(&str, Option<String>)> =
        NAMED_SPECIAL_TOKENS.iter().map(|&name| (name, map.get(name).and_then(token_string))).collect();
    let legacy_map = dir.join(SPECIAL_TOKENS_MAP_FILE);
    if !map.contains_key("added_tokens_decoder")
        && legacy_map.is_file()
        && let Json::Object(legacy) = read_json(&legacy_map)?
    {
        for (name, value) in named.iter_mut() {
            if let Some(entry) = legacy.get(*name) {
                *value = token_string(entry);
            }
        }
    }
    let named_special_tokens: Vec<(String, String)> =
        named.into_iter().filter_map(|(name, v)| v.map(|v| (name.to_string(), v))).collect();
    let get = |name: &str| named_special_tokens.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let special_tokens =
        SpecialTokens { bos_token: get("bos_token"), eos_token: get("eos_token"), pad_token: get("pad_token") };

    let chat_templates = match map.get("chat_template") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::String(t)) => vec![("default".to_string(), t.clone())],
        Some(Json::Array(entries)) => entries
            .iter()
            .map(|entry| {
                let name = entry.get("name").and_then(Json::as_str);
                let template = entry.get("template").and_then(Json::as_str);
                match (name, template) {
                    (Some(n), Some(t)) => Ok((n.to_string(), t.to_string())),
                    _ => bail!(
                        "{}: chat_template list entries must be {{\"name\": ..., \"template\": ...}} objects",
                        path.display()
                    ),
                }
            })
            .collect::<anyhow::Result<_>>()?,
        Some(other) => bail!("{}: chat_template must be a string or a list, got {other}", path.display()),
    };

    Ok(TokenizerConfig { special_tokens, named_special_tokens, chat_templates })
}

/// Where a model directory's default chat template comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSource {
    /// A name for messages: the file, and for `tokenizer_config.json` the entry.
    pub name: String,
    pub path: PathBuf,
    pub source: String,
}

/// Finds a model directory's default chat template: `chat_template.jinja` if present, else the `chat_template`
/// of `tokenizer_config.json` (the string, or the list entry named `"default"`). `Ok(None)` when there is none;
/// an error when the config only holds named templates without a default, as HF refuses those too.
pub fn find_chat_template(dir: &Path, config: &TokenizerConfig) -> anyhow::Result<Option<TemplateSource>> {
    let file = dir.join(CHAT_TEMPLATE_FILE);
    if file.is_file() {
        let source = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        return Ok(Some(TemplateSource { name: file.display().to_string(), path: file, source }));
    }
    let config_path = dir.join(TOKENIZER_CONFIG_FILE);
    if let Some(source) = config.default_chat_template() {
        let name = if config.chat_templates.len() == 1 {
            format!("{} (chat_template)", config_path.display())
        } else {
            format!("{} (chat_template \"default\")", config_path.display())
        };
        return Ok(Some(TemplateSource { name, path: config_path, source: source.to_string() }));
    }
    if !config.chat_templates.is_empty() {
        let names: Vec<&str> = config.chat_templates.iter().map(|(n, _)| n.as_str()).collect();
        bail!("{} has several chat templates ({}) but none named \"default\"", config_path.display(), names.join(", "));
    }
    Ok(None)
}

/// Stop token ids for generation: `generation_config.json`'s `eos_token_id` (an int or a list of ints), then the
/// id of `tokenizer_config.json`'s `eos_token` as resolved by `token_to_id`; deduplicated, first occurrence kept.
/// Missing files contribute nothing.
pub fn stop_token_ids(model_dir: &Path, token_to_id: impl Fn(&str) -> Option<u32>) -> anyhow::Result<Vec<u32>> {
    let mut ids: Vec<u32> = Vec::new();
    let mut push = |id: u32| {
        if !ids.contains(&id) {
            ids.push(id);
        }
    };

    let gen_path = model_dir.join(GENERATION_CONFIG_FILE);
    if gen_path.is_file() {
        let config = read_json(&gen_path)?;
        let as_id = |v: &Json| -> anyhow::Result<u32> {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .with_context(|| format!("{}: eos_token_id entries must be token ids, got {v}", gen_path.display()))
        };
        match config.get("eos_token_id") {
            None | Some(Json::Null) => {}
            Some(Json::Array(list)) => {
                for v in list {
                    push(as_id(v)?);
                }
            }
            Some(v) => push(as_id(v)?),
        }
    }

    let tokenizer = read_tokenizer_config(model_dir)?;
    if let Some(eos) = &tokenizer.special_tokens.eos_token {
        match token_to_id(eos) {
            Some(id) => push(id),
            None => tracing::warn!("eos_token {eos:?} of {} is not in the vocabulary", model_dir.display()),
        }
    }
    Ok(ids)
}
