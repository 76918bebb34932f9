//! LLM tokenisation from `tokenizer.json`: plain text with the tokenizer's own special tokens (a BOS where its
//! post-processor adds one), rendered chat text as it stands (the template already holds the special tokens), and
//! decoding of generated ids.

use anyhow::{Context, Result, anyhow};
use std::path::Path;

pub struct LlmTokenizer {
    inner: tokenizers::Tokenizer,
}

impl LlmTokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| anyhow!("cannot parse {}: {e}", path.display()))?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| anyhow!("{e}"))?;
        Ok(Self { inner })
    }

    /// Ids of plain text, with the special tokens the tokenizer adds (as HF tokenizers do by default).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.inner.encode(text, true).map_err(|e| anyhow!("cannot tokenise {text:?}: {e}"))?.get_ids().to_vec())
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
