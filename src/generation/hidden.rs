//! Hidden states for guidance: the mean over a text's real tokens of the output of block L, for a batch of texts
//! (each in its own cache stream, so no padding enters the mean).

use crate::backend::{Backend, CachedRow, Stream};
use crate::models::llm::Llm;
use anyhow::{Result, ensure};

/// `[texts, hidden]` means of block `layer`'s output over each text's tokens.
pub fn block_output_means<B: Backend>(backend: &B, llm: &Llm<B>, texts: &[Vec<u32>], layer: usize) -> Result<Vec<f32>> {
    let c = &llm.config;
    c.check_block(layer)?;
    let _span = tracing::info_span!("hidden_means", texts = texts.len(), layer).entered();
    let mut ids = Vec::new();
    let mut rows = Vec::new();
    let mut segments = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        ensure!(!text.is_empty(), "text {i} has no tokens");
        ensure!(
            text.len() <= c.max_positions,
            "text {i} has {} tokens, past the model's context of {}",
            text.len(),
            c.max_positions
        );
        segments.push((ids.len(), text.len()));
        ids.extend_from_slice(text);
        rows.extend((0..text.len()).map(|p| CachedRow { stream: Stream::Prefix(i), position: p }));
    }
    let mut cache = backend.kv_cache(&llm.kv_layout(texts.iter().map(Vec::len).collect(), Vec::new()))?;
    let hidden = llm.forward_hidden(backend, &mut cache, &ids, &rows, layer + 1, None)?;
    backend.download(&backend.mean_rows(&hidden, &segments)?)
}
