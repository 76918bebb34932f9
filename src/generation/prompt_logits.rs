//! Logits of a prompt's last position in one prefill, optionally steered: what `probe llm` prints and what the
//! golden tests compare with HF.

use super::generate::PromptEmbeddings;
use super::steering::SteerMode;
use crate::backend::{Backend, CachedRow, Stream};
use crate::models::llm::{BlockOffset, Llm};
use anyhow::{Result, ensure};

/// A steering vector (already scaled) added after block `layer`.
pub struct Steer<'a> {
    pub vector: &'a [f32],
    pub layer: usize,
    pub mode: SteerMode,
}

/// `[vocab]` logits of the last position of `ids`, with the vector added to block `layer`'s output at the last
/// position (`last`) or at every position (`all`).
pub fn last_logits<B: Backend>(backend: &B, llm: &Llm<B>, ids: &[u32], steer: Option<Steer>) -> Result<Vec<f32>> {
    last_logits_replacing(backend, llm, ids, steer, &PromptEmbeddings::default())
}

/// [`last_logits`] with some positions' embeddings replaced (an image's features).
pub fn last_logits_replacing<B: Backend>(
    backend: &B,
    llm: &Llm<B>,
    ids: &[u32],
    steer: Option<Steer>,
    replaced: &PromptEmbeddings<'_>,
) -> Result<Vec<f32>> {
    let c = &llm.config;
    ensure!(!ids.is_empty(), "the prompt has no tokens");
    ensure!(
        ids.len() <= c.max_positions,
        "the prompt has {} tokens, past the model's context of {}",
        ids.len(),
        c.max_positions
    );
    let mut cache = backend.kv_cache(&llm.kv_layout(vec![ids.len()], Vec::new()))?;
    let rows: Vec<CachedRow> = (0..ids.len()).map(|p| CachedRow { stream: Stream::Prefix(0), position: p }).collect();
    let (steered_rows, offsets, layer) = match &steer {
        Some(s) => {
            c.check_steering(s.vector.len(), s.layer)?;
            let rows: Vec<usize> = match s.mode {
                SteerMode::Last => vec![ids.len() - 1],
                SteerMode::All => (0..ids.len()).collect(),
            };
            let values: Vec<f32> = rows.iter().flat_map(|_| s.vector.iter().copied()).collect();
            let offsets = backend.upload(&values, rows.len(), c.hidden_size)?;
            (rows, Some(offsets), s.layer)
        }
        None => (Vec::new(), None, 0),
    };
    let offset = offsets.as_ref().map(|t| BlockOffset { layer, rows: &steered_rows, offsets: t, clean_cache: false });
    let hidden = llm.forward_hidden_replacing(
        backend,
        &mut cache,
        ids,
        &rows,
        c.num_layers,
        offset.as_ref(),
        &replaced.positions,
        replaced.values,
    )?;
    backend.download(&llm.logits(backend, &hidden, &[ids.len() - 1])?)
}
