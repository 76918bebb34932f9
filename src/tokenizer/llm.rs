//! LLM tokenisation from `tokenizer.json` (or a GGUF file's metadata): plain text with the tokenizer's own special
//! tokens (a BOS where its post-processor adds one), rendered chat text as it stands (the template already holds
//! the special tokens), and decoding of generated ids.

use super::gguf::GgufSpecialTokens;
use crate::chat::ChatTemplate;
use crate::checkpoint::Checkpoint;
use crate::checkpoint::gguf::{GgufFile, Metadata};
use anyhow::{Context, Result, anyhow};
use std::path::Path;
use std::sync::OnceLock;

/// The text side of an LLM checkpoint: its tokenizer, chat template (if any) and stop tokens, from a model
/// directory's files or a GGUF file's metadata.
pub fn llm_text(checkpoint: &Checkpoint) -> Result<(LlmTokenizer, Option<ChatTemplate>, Vec<u32>)> {
    if let Some(file) = &checkpoint.gguf {
        return gguf_text(file);
    }
    let tokenizer = LlmTokenizer::from_file(&checkpoint.file("tokenizer.json")?)?;
    let chat = ChatTemplate::from_model_dir(&checkpoint.dir)?;
    let stop_tokens = crate::chat::stop_token_ids(&checkpoint.dir, |t| tokenizer.token_to_id(t))?;
    Ok((tokenizer, chat, stop_tokens))
}

fn gguf_text(file: &GgufFile) -> Result<(LlmTokenizer, Option<ChatTemplate>, Vec<u32>)> {
    let origin = file.path.display();
    let (tokenizer, special) = LlmTokenizer::from_gguf(&file.metadata)?;
    let chat = match file.metadata.opt_str("tokenizer.chat_template")? {
        Some(source) => {
            Some(ChatTemplate::compile(&format!("{origin} (tokenizer.chat_template)"), source, special.named.clone())?)
        }
        None => None,
    };
    Ok((tokenizer, chat, special.stop))
}

pub struct LlmTokenizer {
    inner: tokenizers::Tokenizer,
    /// `line_break_tokens`, found in the vocabulary once.
    line_breaks: OnceLock<Vec<u32>>,
}

impl LlmTokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// The tokenizer of a `tokenizer.json` file's bytes; `origin` names the file in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        let mut inner = super::load::tokenizer_from_bytes(bytes, origin)?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| anyhow!("{origin}: {e}"))?;
        Ok(Self { inner, line_breaks: OnceLock::new() })
    }

    /// The tokenizer a GGUF file's metadata describes, and its special tokens.
    pub fn from_gguf(metadata: &Metadata) -> Result<(Self, GgufSpecialTokens)> {
        let (json, special) = super::gguf::tokenizer_json(metadata)?;
        let inner = super::load::tokenizer_from_json(json, metadata.origin())?;
        Ok((Self { inner, line_breaks: OnceLock::new() }, special))
    }

    /// Ids of plain text, with the special tokens the tokenizer adds (as HF tokenizers do by default).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.inner.encode(text, true).map_err(|e| anyhow!("cannot tokenise {text:?}: {e}"))?.get_ids().to_vec())
    }

    /// The ids of every token whose text holds a line break (a newline itself, or SentencePiece's byte token for
    /// it).
    pub fn line_break_tokens(&self) -> &[u32] {
        self.line_breaks.get_or_init(|| {
            let mut ids: Vec<u32> = self
                .inner
                .get_vocab(true)
                .into_iter()
                .filter(|(token, _)| token.contains('\n') || token == "<0x0A>" || token.contains('Ċ'))
                .map(|(_, id)| id)
                .collect();
            ids.sort_unstable();
            ids
        })
    }

    /// Ids of text that already holds its special tokens (a rendered chat template).
    pub fn encode_rendered(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("cannot tokenise the rendered prompt: {e}"))?
            .get_ids()
            .to_vec())
    }

    /// Text of generated ids, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| anyhow!("cannot decode tokens: {e}"))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
