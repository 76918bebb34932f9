//! CLIP's conventions on top of a `tokenizer.json`: a start and an end token around every text, truncation to the
//! context length that keeps the end token, and the pooled position chosen as HF chooses it for the config.

use anyhow::{Context, Result, anyhow, bail, ensure};
use std::path::Path;

/// Which position's output the text tower pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The position of the largest id: HF's rule for configs with the legacy `eos_token_id` of 2, where the end
    /// token has the highest id in the vocabulary.
    ArgMaxId,
    /// The first position holding this end-token id.
    FirstEnd(u32),
}

/// A batch of tokenised texts, padded to the longest real length of the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    /// `[len(lengths), seq]` ids, row-major; positions past a text's length hold the pad id.
    pub ids: Vec<u32>,
    pub seq: usize,
    pub lengths: Vec<usize>,
    /// Per text, the position whose output is pooled.
    pub pooled: Vec<usize>,
}

impl TokenBatch {
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// The real (unpadded) ids of text `i`.
    pub fn text_ids(&self, i: usize) -> &[u32] {
        &self.ids[i * self.seq..i * self.seq + self.lengths[i]]
    }
}

pub struct ClipTokenizer {
    inner: tokenizers::Tokenizer,
    context_length: usize,
    end: u32,
    pad: u32,
    pooling: Pooling,
}

impl ClipTokenizer {
    /// Loads `tokenizer.json`; `eos_token_id` is the text config's value (which selects the pooling rule) and
    /// `context_length` its `max_position_embeddings`.
    pub fn from_file(path: &Path, eos_token_id: Option<u32>, context_length: usize) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_bytes(&bytes, eos_token_id, context_length).with_context(|| format!("tokenizer {}", path.display()))
    }

    pub fn from_bytes(bytes: &[u8], eos_token_id: Option<u32>, context_length: usize) -> Result<Self> {
        let mut inner = super::load::tokenizer_from_bytes(bytes, "tokenizer.json")?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| anyhow!("{e}"))?;
        let start = special_id(&inner, "<|startoftext|>")?;
        let end = special_id(&inner, "<|endoftext|>")?;
        ensure!(context_length >= 2, "context length {context_length} cannot hold the start and end tokens");
        let pooling = match eos_token_id {
            Some(2) => Pooling::ArgMaxId,
            Some(id) => Pooling::FirstEnd(id),
            None => Pooling::FirstEnd(end),
        };
        // The encoder must add the start and end tokens itself (CLIP's post-processor does).
        let probe = inner.encode("a", true).map_err(|e| anyhow!("{e}"))?;
        let ids = probe.get_ids();
        ensure!(
            ids.first() == Some(&start) && ids.last() == Some(&end),
            "tokenizer.json does not add <|startoftext|> and <|endoftext|> around a text (its post_processor)"
        );
        Ok(Self { inner, context_length, end, pad: end, pooling })
    }

    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Ids of one text, with start and end tokens, truncated to the context length keeping the end token.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, true).map_err(|e| anyhow!("cannot tokenise {text:?}: {e}"))?;
        let mut ids = encoding.get_ids().to_vec();
        if ids.len() > self.context_length {
            ids.truncate(self.context_length - 1);
            ids.push(self.end);
        }
        Ok(ids)
    }

    /// The position pooled for one text's ids.
    pub fn pooled_position(&self, ids: &[u32]) -> usize {
        match self.pooling {
            // The first maximum, as torch.argmax returns.
            Pooling::ArgMaxId => ids.iter().enumerate().fold(0, |best, (i, &id)| if id > ids[best] { i } else { best }),
            Pooling::FirstEnd(end) => ids.iter().position(|&id| id == end).unwrap_or(0),
        }
    }

    /// Tokenises a batch, padded to its longest text (trimmed: never to the full context unless a text needs it).
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<TokenBatch> {
        use rayon::prelude::*;
        let encoded: Vec<Vec<u32>> = texts.par_iter().map(|t| self.encode(t.as_ref())).collect::<Result<_>>()?;
        let seq = encoded.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(encoded.len() * seq);
        let mut lengths = Vec::with_capacity(encoded.len());
        let mut pooled = Vec::with_capacity(encoded.len());
        for text in &encoded {
            ids.extend_from_slice(text);
            ids.extend(std::iter::repeat_n(self.pad, seq - text.len()));
            lengths.push(text.len());
            pooled.push(self.pooled_position(text));
        }
        Ok(TokenBatch { ids, seq, lengths, pooled })
    }
}

fn special_id(tokenizer: &tokenizers::Tokenizer, token: &str) -> Result<u32> {
    match tokenizer.token_to_id(token) {
        Some(id) => Ok(id),
        None => bail!("tokenizer.json has no {token} token; it is not a CLIP tokenizer"),
    }
}
