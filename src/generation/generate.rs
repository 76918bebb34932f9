//! Batched generation with a shared-prefix KV cache. Requests are prompt groups: the `n` sequences of a request
//! share its prompt, whose keys and values (all but the last token) are computed once and read in place by all of
//! them. The last prompt token is each sequence's first step, so that a per-sequence offset can reach the position
//! that samples the first token. Groups never pad against each other, so a sequence's output does not depend on
//! the batch it sits in; with sampling seeded per (seed, sequence index), neither does its randomness.

use super::sampling::{SamplingParams, SequenceRng, sample_batch};
use super::steering::{SteerCache, SteerConfig, SteerMode};
use crate::backend::{Backend, CachedRow, KvLayout, Stream};
use crate::models::llm::{BlockOffset, Llm};
use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;

/// One prompt group.
#[derive(Clone, Debug)]
pub struct Request {
    pub prompt: Vec<u32>,
    /// Sequences sampled from this prompt.
    pub n: usize,
    /// The steering offset of this group's sequences (already scaled by alpha), or none.
    pub steer: Option<Vec<f32>>,
}

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    pub seed: u64,
    /// Generation of a sequence ends after it produces one of these.
    pub stop_tokens: Vec<u32>,
    /// Required when any request carries an offset.
    pub steer: Option<SteerConfig>,
    pub streams: Streams,
}

/// How sequences are assigned random streams (each stream is keyed by the seed and its number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streams {
    /// Streams are numbered across the batch in request order: every sequence has its own.
    Batch,
    /// Sequence `j` of every request draws from stream `j`: requests that differ only in their offset see the same
    /// randomness (common random numbers), so their outputs differ only through the offset.
    PerRequest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// A stop token was produced (it is the last of `tokens`).
    Stop,
    /// `max_new_tokens` were produced.
    Length,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    pub request: usize,
    /// The sequence's index in the whole batch (request order), which keys its random stream.
    pub index: usize,
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
}

pub struct Generation {
    pub sequences: Vec<Sequence>,
    /// Bytes of the KV cache allocated for the batch.
    pub kv_cache_bytes: usize,
}

/// The cache layout of a batch: each group's prefix is its prompt less the last token; each sequence holds the
/// last prompt token and its new tokens.
pub fn kv_layout<B: Backend>(llm: &Llm<B>, requests: &[Request], max_new_tokens: usize) -> KvLayout {
    llm.kv_layout(
        requests.iter().map(|r| r.prompt.len().saturating_sub(1)).collect(),
        requests.iter().enumerate().flat_map(|(g, r)| std::iter::repeat_n((g, 1 + max_new_tokens), r.n)).collect(),
    )
}

fn validate<B: Backend>(llm: &Llm<B>, requests: &[Request], options: &GenerateOptions) -> Result<()> {
    options.sampling.validate()?;
    let c = &llm.config;
    for (i, r) in requests.iter().enumerate() {
        ensure!(!r.prompt.is_empty(), "prompt {i} is empty");
        let needed = r.prompt.len() + options.max_new_tokens;
        ensure!(
            needed <= c.max_positions,
            "prompt {i} has {} tokens; with --max-new-tokens {} that is {needed}, past the model's context of {} tokens",
            r.prompt.len(),
            options.max_new_tokens,
            c.max_positions
        );
        if let Some(v) = &r.steer {
            let Some(steer) = options.steer else {
                bail!("prompt {i} has a steering vector but no steering layer was given")
            };
            c.check_steering(v.len(), steer.layer).with_context(|| format!("prompt {i}"))?;
        }
    }
    Ok(())
}

/// Offsets for the rows of one call whose requests carry a vector: `(rows, values)`.
fn offsets_for(rows_request: &[usize], requests: &[Request]) -> (Vec<usize>, Vec<f32>) {
    let mut rows = Vec::new();
    let mut values = Vec::new();
    for (row, &r) in rows_request.iter().enumerate() {
        if let Some(v) = &requests[r].steer {
            rows.push(row);
            values.extend_from_slice(v);
        }
    }
    (rows, values)
}

pub fn generate<B: Backend>(
    backend: &B,
    llm: &Llm<B>,
    requests: &[Request],
    options: &GenerateOptions,
) -> Result<Generation> {
    validate(llm, requests, options)?;
    let _span =
        tracing::info_span!("generate", requests = requests.len(), max_new_tokens = options.max_new_tokens).entered();
    let layout = kv_layout(llm, requests, options.max_new_tokens);
    let kv_cache_bytes = layout.bytes(4);
    let mut cache = backend.kv_cache(&layout)?;
    tracing::debug!(bytes = kv_cache_bytes, "KV cache allocated");
    let hidden = llm.config.hidden_size;
    let layers = llm.config.num_layers;
    let steer_all = options.steer.filter(|s| s.mode == SteerMode::All);

    // Prefill every group's shared prefix in one call.
    {
        let _span = tracing::info_span!("prefill").entered();
        let mut ids = Vec::new();
        let mut rows = Vec::new();
        let mut owners = Vec::new();
        for (g, r) in requests.iter().enumerate() {
            for (p, &id) in r.prompt[..r.prompt.len() - 1].iter().enumerate() {
                ids.push(id);
                rows.push(CachedRow { stream: Stream::Prefix(g), position: p });
                owners.push(g);
            }
        }
        if !ids.is_empty() {
            let (steered_rows, values) = match steer_all {
                Some(_) => offsets_for(&owners, requests),
                None => (Vec::new(), Vec::new()),
            };
            let offsets = backend.upload(&values, steered_rows.len(), hidden)?;
            let offset = steer_all.map(|s| BlockOffset {
                layer: s.layer,
                rows: &steered_rows,
                offsets: &offsets,
                clean_cache: false,
            });
            llm.forward_hidden(backend, &mut cache, &ids, &rows, layers, offset.as_ref())?;
        }
    }

    // Decode: every live sequence advances one token per step.
    let owners: Vec<usize> = requests.iter().enumerate().flat_map(|(g, r)| std::iter::repeat_n(g, r.n)).collect();
    let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); owners.len()];
    let mut finish: Vec<Option<FinishReason>> = vec![None; owners.len()];
    let rngs: Vec<SequenceRng> = match options.streams {
        Streams::Batch => (0..owners.len()).map(|s| SequenceRng::new(options.seed, s as u64)).collect(),
        Streams::PerRequest => {
            requests.iter().flat_map(|r| (0..r.n).map(|j| SequenceRng::new(options.seed, j as u64))).collect()
        }
    };
    let _span = tracing::info_span!("decode", sequences = owners.len()).entered();
    for step in 0..options.max_new_tokens {
        let live: Vec<usize> = (0..owners.len()).filter(|&s| finish[s].is_none()).collect();
        if live.is_empty() {
            break;
        }
        let ids: Vec<u32> = live
            .iter()
            .map(|&s| {
                *tokens[s].last().unwrap_or_else(|| requests[owners[s]].prompt.last().expect("prompts are not empty"))
            })
            .collect();
        let rows: Vec<CachedRow> = live
            .iter()
            .map(|&s| CachedRow { stream: Stream::Sequence(s), position: requests[owners[s]].prompt.len() - 1 + step })
            .collect();
        let live_owners: Vec<usize> = live.iter().map(|&s| owners[s]).collect();
        let (steered_rows, values) = offsets_for(&live_owners, requests);
        let offsets = backend.upload(&values, steered_rows.len(), hidden)?;
        let offset = options.steer.map(|s| BlockOffset {
            layer: s.layer,
            rows: &steered_rows,
            offsets: &offsets,
            clean_cache: s.mode == SteerMode::Last && s.cache == SteerCache::Clean,
        });
        let out = llm.forward_hidden(backend, &mut cache, &ids, &rows, layers, offset.as_ref())?;
        let all_rows: Vec<usize> = (0..live.len()).collect();
        let logits = backend.download(&llm.logits(backend, &out, &all_rows)?)?;
        let live_rngs: Vec<SequenceRng> = live.iter().map(|&s| rngs[s]).collect();
        let steps = vec![step as u64; live.len()];
        let next = sample_batch(&logits, llm.config.vocab_size, &options.sampling, &live_rngs, &steps);
        for (&s, token) in live.iter().zip(next) {
            tokens[s].push(token);
            if options.stop_tokens.contains(&token) {
                finish[s] = Some(FinishReason::Stop);
            } else if tokens[s].len() == options.max_new_tokens {
                finish[s] = Some(FinishReason::Length);
            }
        }
    }
    let sequences = tokens
        .into_iter()
        .zip(finish)
        .enumerate()
        .map(|(index, (tokens, finish))| Sequence {
            request: owners[index],
            index,
            tokens,
            finish: finish.unwrap_or(FinishReason::Length),
        })
        .collect();
    Ok(Generation { sequences, kv_cache_bytes })
}
