//! Chat templates: rendering a checkpoint's Jinja chat template as HF's apply_chat_template does.
//!
//! A checkpoint's template lives in `chat_template.jinja` or in the `chat_template` entry of
//! `tokenizer_config.json`; [`ChatTemplate::from_model_dir`] finds it and the special tokens it is rendered with,
//! and [`ChatTemplate::render`] produces the same prompt text as
//! `tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)`. [`stop_token_ids`]
//! gathers the token ids that end a generated reply.

mod pyfmt;
mod strftime;
mod template;
mod tokenizer_config;

use std::path::Path;

pub use template::ChatTemplate;
pub use tokenizer_config::{
    CHAT_TEMPLATE_FILE, GENERATION_CONFIG_FILE, NAMED_SPECIAL_TOKENS, SPECIAL_TOKENS_MAP_FILE, SpecialTokens,
    TOKENIZER_CONFIG_FILE, TemplateSource, TokenizerConfig, find_chat_template, read_tokenizer_config, stop_token_ids,
};

/// One chat turn, as the `{"role": ..., "content": ...}` dicts HF templates iterate over.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message { role: role.into(), content: content.into() }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

impl ChatTemplate {
    /// Finds the template of a model directory: `chat_template.jinja` if present, else `chat_template` in
    /// `tokenizer_config.json` (a string, or a list of `{"name", "template"}` where `"default"` is used); `None` if
    /// there is none. The template is rendered with every named special token of `tokenizer_config.json` (each a
    /// string, `null`, or an `AddedToken` object `{"content": ...}`), as HF passes them.
    pub fn from_model_dir(dir: &Path) -> anyhow::Result<Option<ChatTemplate>> {
        let config = read_tokenizer_config(dir)?;
        let Some(found) = find_chat_template(dir, &config)? else {
            return Ok(None);
        };
        ChatTemplate::compile(&found.name, &found.source, config.named_special_tokens).map(Some)
    }
}

#[cfg(test)]
mod tests;
