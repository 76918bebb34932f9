//! Sentence embeddings as sentence-transformers' `encode` computes them, for MPNet (`all-mpnet-base-v2`, the
//! matcher of GLOV's encoder-decoder path) and BERT-family models (`all-MiniLM-L6-v2`, ...): tokenise with the
//! model's `tokenizer.json` (truncated to the model's length), encode, pool (mean, CLS or max), and L2-normalise
//! where the model has a Normalize module.
//!
//! Sentences are encoded in batches of one token count each, so that no sentence is padded: the result of a
//! sentence does not depend on the others. Max pooling runs on the host (a download of the batch's hidden states).

pub mod config;
pub mod encoder;
pub mod random;

use crate::backend::Backend;
use crate::checkpoint::Checkpoint;
use crate::tokenizer::SentenceTokenizer;
use anyhow::{Context, Result};
use config::{EncoderConfig, Pooling, SentenceConfig};
use encoder::Encoder;
use std::collections::BTreeMap;

/// The most tokens encoded in one pass.
const TOKENS_PER_PASS: usize = 16384;

pub struct SentenceModel<B: Backend> {
    pub checkpoint: Checkpoint,
    pub config: SentenceConfig,
    pub tokenizer: SentenceTokenizer,
    pub encoder: SentenceEncoder<B>,
}

/// The transformer with its pooling and normalisation: token ids in, sentence embeddings out.
pub struct SentenceEncoder<B: Backend> {
    pub config: EncoderConfig,
    pub pooling: Pooling,
    pub normalize: bool,
    encoder: Encoder<B>,
}

impl<B: Backend> SentenceModel<B> {
    /// Opens a sentence-transformers directory (or `org/name` in the HF cache).
    pub fn open(backend: &B, model: &str) -> Result<Self> {
        let dir = crate::checkpoint::resolve_model(model)?;
        let (config, encoder_config) = SentenceConfig::read(&dir)?;
        let checkpoint = Checkpoint::open(&config.transformer_dir.display().to_string())?;
        let tokenizer = SentenceTokenizer::from_file(
            &checkpoint.file("tokenizer.json")?,
            config.max_seq_length,
            config.lower_case,
        )?;
        let encoder =
            SentenceEncoder::load(backend, &checkpoint.weights, encoder_config, config.pooling, config.normalize)
                .with_context(|| format!("loading the sentence encoder from {}", checkpoint.dir.display()))?;
        Ok(Self { checkpoint, config, tokenizer, encoder })
    }

    /// The embedding's width.
    pub fn dim(&self) -> usize {
        self.encoder.dim()
    }

    /// One embedding per text, in order.
    pub fn embed(&self, backend: &B, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let _span = tracing::info_span!("sentence_embed", texts = texts.len()).entered();
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenizer.encode(t)).collect::<Result<_>>()?;
        self.encoder.embed_ids(backend, &ids)
    }
}

impl<B: Backend> SentenceEncoder<B> {
    pub fn load(
        backend: &B,
        store: &crate::checkpoint::WeightStore,
        config: EncoderConfig,
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Self> {
        let encoder = Encoder::load(backend, store, &config)?;
        Ok(Self { config, pooling, normalize, encoder })
    }

    /// The embedding's width.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// One embedding per tokenised sentence, in order.
    pub fn embed_ids(&self, backend: &B, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, row) in ids.iter().enumerate() {
            by_length.entry(row.len()).or_default().push(i);
        }
        let mut out = vec![Vec::new(); ids.len()];
        for (&seq, members) in &by_length {
            anyhow::ensure!(seq > 0, "a text tokenised to no tokens (the tokenizer adds no special token)");
            for chunk in members.chunks((TOKENS_PER_PASS / seq).max(1)) {
                let flat: Vec<u32> = chunk.iter().flat_map(|&i| ids[i].iter().copied()).collect();
                let pooled = self.pool(backend, &flat, chunk.len(), seq)?;
                for (row, &i) in backend.download(&pooled)?.chunks_exact(self.dim()).zip(chunk) {
                    out[i] = row.to_vec();
                }
            }
        }
        Ok(out)
    }

    /// The (normalised, where the model says so) sentence embeddings `[batch, dim]` of `batch` sentences of `seq`
    /// tokens.
    fn pool(&self, backend: &B, ids: &[u32], batch: usize, seq: usize) -> Result<B::Tensor> {
        let hidden = self.encoder.forward(backend, ids, batch, seq)?;
        let pooled = match self.pooling {
            Pooling::Mean => {
                let segments: Vec<(usize, usize)> = (0..batch).map(|b| (b * seq, seq)).collect();
                backend.mean_rows(&hidden, &segments)?
            }
            Pooling::Cls => backend.gather_rows(&hidden, &(0..batch).map(|b| b * seq).collect::<Vec<_>>())?,
            Pooling::Max => {
                let d = self.dim();
                let values = backend.download(&hidden)?;
                let mut max = vec![f32::NEG_INFINITY; batch * d];
                for (t, row) in values.chunks_exact(d).enumerate() {
                    let b = t / seq;
                    max[b * d..(b + 1) * d].iter_mut().zip(row).for_each(|(m, &v)| *m = m.max(v));
                }
                backend.upload(&max, batch, d)?
            }
        };
        if self.normalize { backend.l2_normalize(&pooled) } else { Ok(pooled) }
    }
}
