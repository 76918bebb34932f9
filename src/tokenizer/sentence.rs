//! A sentence encoder's tokenizer (WordPiece for BERT and MPNet, from `tokenizer.json`), with the special tokens
//! its post-processor adds and sentence-transformers' truncation: at most `max_len` tokens, the end token kept.

use anyhow::{Context, Result, anyhow};
use std::path::Path;
use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

pub struct SentenceTokenizer {
    inner: tokenizers::Tokenizer,
    lower_case: bool,
}

impl SentenceTokenizer {
    /// `lower_case`: sentence-transformers 2's `do_lower_case`, applied to the text before tokenising.
    pub fn from_file(path: &Path, max_len: usize, lower_case: bool) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let origin = path.display().to_string();
        let mut inner = super::load::tokenizer_from_bytes(&bytes, &origin)?;
        inner.with_padding(None);
        let truncation = TruncationParams {
            max_length: max_len,
            strategy: TruncationStrategy::LongestFirst,
            direction: TruncationDirection::Right,
            stride: 0,
        };
        inner.with_truncation(Some(truncation)).map_err(|e| anyhow!("{origin}: {e}"))?;
        Ok(Self { inner, lower_case })
    }

    /// The ids of one sentence, special tokens included.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let text = if self.lower_case { text.to_lowercase() } else { text.to_string() };
        let encoding = self.inner.encode(text.as_str(), true).map_err(|e| anyhow!("cannot tokenise {text:?}: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }
}
