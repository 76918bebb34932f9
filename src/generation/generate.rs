//! Batched generation with a shared-prefix KV cache. Requests are prompt groups: the `n` sequences of a request
//! share its prompt, whose keys and values (all but the last token) are computed once and read in place by all of
//! them. The last prompt token is each sequence's first step, so that a per-sequence offset can reach the position
//! that samples the first token. More generally ([`SharedPrefix`]) the sequences of a group share a prefix and each
//! continues it with its own tokens (different questions about one image): the prefix is prefilled once, each
//! continuation (all but its last token) into the sequence's own part of the cache. Groups never pad against each other, so a sequence's output does not depend on
//! the batch it sits in; with sampling seeded per (seed, sequence index), neither does its randomness. (On the
//! CUDA backend a linear layer over at most 64 rows splits its sum along K, one over more rows does not: there a
//! row's bf16 rounding, and so rarely a token, can differ between a decode batch of up to 64 sequences and a
//! larger one, and a group's prefix between a batch whose prefixes total up to 64 tokens and a larger one.)

use super::sampling::{SamplingParams, SequenceRng};
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

/// A prompt group whose sequences share `prefix` and each continue it with their own tokens (at least one each): one
/// sequence per continuation. A [`Request`] is the case where every continuation is the prompt's last token.
#[derive(Clone, Debug)]
pub struct SharedPrefix {
    pub prefix: Vec<u32>,
    pub continuations: Vec<Vec<u32>>,
    /// The steering offset of this group's sequences (already scaled by alpha), or none.
    pub steer: Option<Vec<f32>>,
}

impl From<&Request> for SharedPrefix {
    fn from(r: &Request) -> Self {
        let (last, prefix) = r.prompt.split_last().map_or((None, &[][..]), |(l, p)| (Some(*l), p));
        Self { prefix: prefix.to_vec(), continuations: vec![last.into_iter().collect(); r.n], steer: r.steer.clone() }
    }
}

/// Embeddings that stand in for some of a prompt's token embeddings (an image's features at its image tokens):
/// prompt positions, and their `[positions, hidden]` values.
#[derive(Clone, Debug, Default)]
pub struct PromptEmbeddings<'a> {
    pub positions: Vec<usize>,
    pub values: &'a [f32],
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

impl GenerateOptions {
    /// Greedy decoding of up to `max_new_tokens`, ending at `stop_tokens`, unsteered.
    pub fn greedy(max_new_tokens: usize, stop_tokens: Vec<u32>) -> Self {
        Self {
            max_new_tokens,
            sampling: SamplingParams { temperature: 0.0, top_k: 0, top_p: 1.0, greedy: true },
            seed: 0,
            stop_tokens,
            steer: None,
            streams: Streams::Batch,
        }
    }
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

impl std::fmt::Display for FinishReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FinishReason::Stop => "ended by a stop token",
            FinishReason::Length => "stopped at --max-new-tokens",
        })
    }
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
    /// How the decode steps ran.
    pub decoding: Decoding,
}

/// How a generation's decode steps ran: recorded once and replayed, or step by step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoding {
    /// The step was recorded once and replayed at each of `replays` steps.
    Recorded { replays: usize },
    /// Step by step, as asked: the backend does not record, recording is turned off, or there was nothing to
    /// decode.
    Eager,
    /// Step by step because recording the step failed; `reason` is the error (also logged as a warning).
    FellBack { reason: String },
}

/// The cache layout of a batch: each group's prefix, and each sequence's continuation and new tokens.
fn kv_layout<B: Backend>(llm: &Llm<B>, groups: &[SharedPrefix], max_new_tokens: usize) -> KvLayout {
    llm.kv_layout(
        groups.iter().map(|g| g.prefix.len()).collect(),
        groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.continuations.iter().map(move |c| (i, c.len() + max_new_tokens)))
            .collect(),
    )
}

fn validate<B: Backend>(llm: &Llm<B>, groups: &[SharedPrefix], options: &GenerateOptions) -> Result<()> {
    options.sampling.validate()?;
    let c = &llm.config;
    for (i, g) in groups.iter().enumerate() {
        ensure!(g.continuations.iter().all(|c| !c.is_empty()), "prompt {i} is empty");
        let longest = g.continuations.iter().map(Vec::len).max().unwrap_or(0);
        let prompt = g.prefix.len() + longest;
        let needed = prompt + options.max_new_tokens;
        ensure!(
            needed <= c.max_positions,
            "prompt {i} has {prompt} tokens; with --max-new-tokens {} that is {needed}, past the model's context of {} \
             tokens",
            options.max_new_tokens,
            c.max_positions
        );
        if let Some(v) = &g.steer {
            let Some(steer) = options.steer else {
                bail!("prompt {i} has a steering vector but no steering layer was given")
            };
            c.check_steering(v.len(), steer.layer).with_context(|| format!("prompt {i}"))?;
        }
    }
    Ok(())
}

/// Offsets for the rows of one call whose groups carry a vector: `(rows, values)`.
fn offsets_for(rows_group: &[usize], groups: &[SharedPrefix]) -> (Vec<usize>, Vec<f32>) {
    let mut rows = Vec::new();
    let mut values = Vec::new();
    for (row, &g) in rows_group.iter().enumerate() {
        if let Some(v) = &groups[g].steer {
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
    generate_replacing(backend, llm, requests, &[], options)
}

/// [`generate`] with some prompt positions' embeddings replaced: `replaced` is empty, or one entry per request.
/// A replaced position must be in the prefill, so not a prompt's last.
pub fn generate_replacing<B: Backend>(
    backend: &B,
    llm: &Llm<B>,
    requests: &[Request],
    replaced: &[PromptEmbeddings<'_>],
    options: &GenerateOptions,
) -> Result<Generation> {
    let groups: Vec<SharedPrefix> = requests.iter().map(SharedPrefix::from).collect();
    generate_shared(backend, llm, &groups, replaced, options)
}

/// Generation for groups of sequences that share a prefix and continue it each their own way; `replaced` is empty,
/// or one entry per group, whose positions lie in the group's prefix. A sequence's output is what [`generate`] gives
/// for the prompt prefix + continuation alone.
pub fn generate_shared<B: Backend>(
    backend: &B,
    llm: &Llm<B>,
    groups: &[SharedPrefix],
    replaced: &[PromptEmbeddings<'_>],
    options: &GenerateOptions,
) -> Result<Generation> {
    validate(llm, groups, options)?;
    ensure!(
        replaced.is_empty() || replaced.len() == groups.len(),
        "replaced embeddings for {} of {} prompts",
        replaced.len(),
        groups.len()
    );
    for (i, (g, e)) in groups.iter().zip(replaced).enumerate() {
        if let Some(&bad) = e.positions.iter().find(|&&p| p >= g.prefix.len()) {
            bail!(
                "prompt {i}: embedding {bad} replaced, but only positions before the last ({}) are prefilled",
                g.prefix.len()
            );
        }
    }
    let _span =
        tracing::info_span!("generate", requests = groups.len(), max_new_tokens = options.max_new_tokens).entered();
    let layout = kv_layout(llm, groups, options.max_new_tokens);
    let kv_cache_bytes = layout.bytes(backend.kv_element_bytes());
    let mut cache = backend.kv_cache(&layout)?;
    tracing::debug!(bytes = kv_cache_bytes, "KV cache allocated");
    let steer_all = options.steer.filter(|s| s.mode == SteerMode::All);

    // Every group's shared prefix in one call; then every sequence's continuation but its last token, into its own
    // part of the cache, in another (after the prefixes it reads are complete).
    let mut prefixes = Prefill::default();
    for (g, group) in groups.iter().enumerate() {
        if let Some(e) = replaced.get(g) {
            prefixes.replaced_rows.extend(e.positions.iter().map(|p| prefixes.ids.len() + p));
            prefixes.replaced_values.extend_from_slice(e.values);
        }
        for (p, &id) in group.prefix.iter().enumerate() {
            prefixes.push(id, CachedRow { stream: Stream::Prefix(g), position: p }, g);
        }
    }
    prefixes.run(backend, llm, &mut cache, groups, steer_all, "prefill")?;
    let continuations: Vec<(usize, &[u32])> =
        groups.iter().enumerate().flat_map(|(g, group)| group.continuations.iter().map(move |c| (g, &c[..]))).collect();
    let mut own = Prefill::default();
    for (s, &(g, continuation)) in continuations.iter().enumerate() {
        for (j, &id) in continuation[..continuation.len() - 1].iter().enumerate() {
            own.push(id, CachedRow { stream: Stream::Sequence(s), position: groups[g].prefix.len() + j }, g);
        }
    }
    own.run(backend, llm, &mut cache, groups, steer_all, "prefill_continuations")?;

    let sequences = continuations.len();
    let rngs: Vec<SequenceRng> = match options.streams {
        Streams::Batch => (0..sequences).map(|s| SequenceRng::new(options.seed, s as u64)).collect(),
        Streams::PerRequest => groups
            .iter()
            .flat_map(|g| (0..g.continuations.len()).map(|j| SequenceRng::new(options.seed, j as u64)))
            .collect(),
    };
    let mut decoder = Decoder {
        groups,
        continuations,
        options,
        rngs,
        tokens: vec![Vec::new(); sequences],
        finish: vec![None; sequences],
    };
    let _span = tracing::info_span!("decode", sequences).entered();
    let decoding = decoder.recorded(backend, llm, &mut cache)?;
    if !matches!(decoding, Decoding::Recorded { .. }) {
        decoder.eager(backend, llm, &mut cache)?;
    }
    let Decoder { tokens, finish, continuations, .. } = decoder;
    let sequences = tokens
        .into_iter()
        .zip(finish)
        .enumerate()
        .map(|(index, (tokens, finish))| Sequence {
            request: continuations[index].0,
            index,
            tokens,
            finish: finish.unwrap_or(FinishReason::Length),
        })
        .collect();
    Ok(Generation { sequences, kv_cache_bytes, decoding })
}

/// The rows of one prefill call: their tokens, cache rows and groups, and the rows whose embeddings are replaced.
#[derive(Default)]
struct Prefill {
    ids: Vec<u32>,
    rows: Vec<CachedRow>,
    owners: Vec<usize>,
    replaced_rows: Vec<usize>,
    replaced_values: Vec<f32>,
}

impl Prefill {
    fn push(&mut self, id: u32, row: CachedRow, group: usize) {
        self.ids.push(id);
        self.rows.push(row);
        self.owners.push(group);
    }

    /// The rows through every block into the cache, each steered by its group's offset where every position is.
    fn run<B: Backend>(
        &self,
        backend: &B,
        llm: &Llm<B>,
        cache: &mut B::KvCache,
        groups: &[SharedPrefix],
        steer_all: Option<SteerConfig>,
        what: &'static str,
    ) -> Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let _span = tracing::info_span!("prefill", what, tokens = self.ids.len()).entered();
        let (steered_rows, values) = match steer_all {
            Some(_) => offsets_for(&self.owners, groups),
            None => (Vec::new(), Vec::new()),
        };
        let offsets = backend.upload(&values, steered_rows.len(), llm.config.hidden_size)?;
        let offset = steer_all.map(|s| BlockOffset {
            layer: s.layer,
            rows: &steered_rows,
            offsets: &offsets,
            clean_cache: false,
        });
        llm.forward_hidden_replacing(
            backend,
            cache,
            &self.ids,
            &self.rows,
            llm.config.num_layers,
            offset.as_ref(),
            &self.replaced_rows,
            &self.replaced_values,
        )
        .map(drop)
    }
}

/// The decode loop's state: every sequence's tokens so far and why it finished.
struct Decoder<'a> {
    groups: &'a [SharedPrefix],
    /// Per sequence: its group and its continuation of the group's prefix.
    continuations: Vec<(usize, &'a [u32])>,
    options: &'a GenerateOptions,
    rngs: Vec<SequenceRng>,
    tokens: Vec<Vec<u32>>,
    finish: Vec<Option<FinishReason>>,
}

impl Decoder<'_> {
    /// The token that sequence `s` feeds at its next step.
    fn next_input(&self, s: usize) -> u32 {
        let continuation = self.continuations[s].1;
        *self.tokens[s].last().unwrap_or_else(|| continuation.last().expect("continuations are not empty"))
    }

    fn row(&self, s: usize, step: usize) -> CachedRow {
        let (g, continuation) = self.continuations[s];
        CachedRow { stream: Stream::Sequence(s), position: self.groups[g].prefix.len() + continuation.len() - 1 + step }
    }

    /// The offset rows and values for the sequences `batch` (positions in the call), from their requests' vectors.
    fn offsets(&self, batch: &[usize]) -> (Vec<usize>, Vec<f32>) {
        let owners: Vec<usize> = batch.iter().map(|&s| self.continuations[s].0).collect();
        offsets_for(&owners, self.groups)
    }

    fn block_offset<'t, B: Backend>(&self, rows: &'t [usize], offsets: &'t B::Tensor) -> Option<BlockOffset<'t, B>> {
        self.options.steer.map(|s| BlockOffset {
            layer: s.layer,
            rows,
            offsets,
            clean_cache: s.mode == SteerMode::Last && s.cache == SteerCache::Clean,
        })
    }

    /// Takes one step's tokens for the sequences `batch` (those of sequences already finished are dropped).
    fn accept(&mut self, batch: &[usize], next: &[u32]) {
        for (&s, &token) in batch.iter().zip(next) {
            if self.finish[s].is_some() {
                continue;
            }
            self.tokens[s].push(token);
            if self.options.stop_tokens.contains(&token) {
                self.finish[s] = Some(FinishReason::Stop);
            } else if self.tokens[s].len() == self.options.max_new_tokens {
                self.finish[s] = Some(FinishReason::Length);
            }
        }
    }

    fn sample<B: Backend>(
        &self,
        backend: &B,
        llm: &Llm<B>,
        hidden: &B::Tensor,
        batch: &[usize],
        step: usize,
    ) -> Result<Vec<u32>> {
        let all_rows: Vec<usize> = (0..batch.len()).collect();
        let logits = llm.logits(backend, hidden, &all_rows)?;
        let rngs: Vec<SequenceRng> = batch.iter().map(|&s| self.rngs[s]).collect();
        backend.sample(&logits, &self.options.sampling, &rngs, &vec![step as u64; batch.len()])
    }

    /// Every live sequence advances one token per step; finished ones leave the batch.
    fn eager<B: Backend>(&mut self, backend: &B, llm: &Llm<B>, cache: &mut B::KvCache) -> Result<()> {
        let (hidden, layers) = (llm.config.hidden_size, llm.config.num_layers);
        for step in 0..self.options.max_new_tokens {
            let live: Vec<usize> = (0..self.continuations.len()).filter(|&s| self.finish[s].is_none()).collect();
            if live.is_empty() {
                break;
            }
            let ids: Vec<u32> = live.iter().map(|&s| self.next_input(s)).collect();
            let rows: Vec<CachedRow> = live.iter().map(|&s| self.row(s, step)).collect();
            let (steered_rows, values) = self.offsets(&live);
            let offsets = backend.upload(&values, steered_rows.len(), hidden)?;
            let offset = self.block_offset::<B>(&steered_rows, &offsets);
            let out = llm.forward_hidden(backend, cache, &ids, &rows, layers, offset.as_ref())?;
            let next = self.sample(backend, llm, &out, &live, step)?;
            self.accept(&live, &next);
        }
        Ok(())
    }

    /// The decode step recorded once (embeddings to final hidden states, steering included) and replayed at every
    /// step, where the backend records (CUDA graphs); [`Decoding::Eager`] where it does not and
    /// [`Decoding::FellBack`] where recording failed, with nothing done in either case. The batch keeps
    /// every sequence until the last one finishes, so its shape, and with it the recording, never changes; tokens
    /// a finished sequence goes on producing are dropped. Each row's result does not depend on the others, so the
    /// tokens are those of the eager loop (up to the CUDA rounding note at the top of this file, when the batch
    /// shrinks from more than 64 sequences to 64 or fewer).
    fn recorded<B: Backend>(&mut self, backend: &B, llm: &Llm<B>, cache: &mut B::KvCache) -> Result<Decoding> {
        if self.options.max_new_tokens == 0 || self.continuations.is_empty() {
            return Ok(Decoding::Eager);
        }
        let (hidden, layers) = (llm.config.hidden_size, llm.config.num_layers);
        let batch: Vec<usize> = (0..self.continuations.len()).collect();
        // Offsets for every row (zeros where a request has none), so that the steering add needs no row list.
        let (steered_rows, values) = self.offsets(&batch);
        let any_offset = !steered_rows.is_empty();
        let mut full = vec![0.0f32; if any_offset { batch.len() * hidden } else { 0 }];
        for (j, &row) in steered_rows.iter().enumerate() {
            full[row * hidden..(row + 1) * hidden].copy_from_slice(&values[j * hidden..(j + 1) * hidden]);
        }
        let offset_rows: Vec<usize> = if any_offset { batch.clone() } else { Vec::new() };
        let offsets = backend.upload(&full, offset_rows.len(), hidden)?;
        let offset = self.block_offset::<B>(&offset_rows, &offsets);

        let rows_at = |me: &Self, step: usize| -> Vec<CachedRow> { batch.iter().map(|&s| me.row(s, step)).collect() };
        let mut rows = backend.cache_rows(cache, &rows_at(self, 0))?;
        let ids: Vec<u32> = batch.iter().map(|&s| self.next_input(s)).collect();
        let mut input = llm.embed(backend, &ids)?;
        let (step_work, output) =
            match backend.record(|| llm.forward_embedded(backend, cache, &input, &rows, layers, offset.as_ref())) {
                Ok(Some(recorded)) => recorded,
                Ok(None) => return Ok(Decoding::Eager),
                // Nothing has run yet: the eager loop can still do the work.
                Err(e) => {
                    tracing::warn!("{e:#}; decoding step by step instead");
                    return Ok(Decoding::FellBack { reason: format!("{e:#}") });
                }
            };
        tracing::debug!(sequences = batch.len(), "decode step recorded for replay");
        let mut replays = 0;
        for step in 0..self.options.max_new_tokens {
            if step > 0 {
                backend.update_rows(cache, &mut rows, &rows_at(self, step))?;
                let ids: Vec<u32> = batch.iter().map(|&s| self.next_input(s)).collect();
                backend.overwrite(&mut input, &llm.embed(backend, &ids)?)?;
            }
            backend.replay(&step_work)?;
            replays += 1;
            let next = self.sample(backend, llm, &output, &batch, step)?;
            self.accept(&batch, &next);
            if self.finish.iter().all(Option::is_some) {
                break;
            }
        }
        Ok(Decoding::Recorded { replays })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::generation::steering::SteerMode;
    use crate::models::llm::shape_config;

    fn greedy(steer: Option<SteerConfig>) -> GenerateOptions {
        GenerateOptions { seed: 3, steer, ..GenerateOptions::greedy(5, Vec::new()) }
    }

    /// Sequences that share a prefix and continue it their own ways make what each whole prompt makes alone,
    /// steered or not.
    #[test]
    fn a_shared_prefix_with_continuations_answers_as_each_prompt_alone() {
        let mut config = shape_config("small-100m").unwrap();
        (config.num_layers, config.vocab_size) = (2, 256);
        let backend = CpuBackend::new();
        let llm = Llm::random(&backend, config, 11).unwrap();
        let prefix: Vec<u32> = (0..9).map(|i| (i * 37 % 256) as u32).collect();
        let continuations = vec![vec![5, 6, 7], vec![200], vec![9, 9, 9, 9, 1]];
        let offset: Vec<f32> = (0..768).map(|i| ((i % 7) as f32 - 3.0) * 0.3).collect();
        let mut outputs = Vec::new();
        for steer in [None, Some(SteerMode::Last), Some(SteerMode::All)] {
            let config = steer.map(|mode| SteerConfig { layer: 0, mode, cache: SteerCache::Steered });
            let options = greedy(config);
            let vector = steer.map(|_| offset.clone());
            let group =
                SharedPrefix { prefix: prefix.clone(), continuations: continuations.clone(), steer: vector.clone() };
            let shared = generate_shared(&backend, &llm, &[group], &[], &options).unwrap();
            for (c, continuation) in continuations.iter().enumerate() {
                let prompt = [prefix.clone(), continuation.clone()].concat();
                let alone = Request { prompt, n: 1, steer: vector.clone() };
                let want = generate(&backend, &llm, &[alone], &options).unwrap();
                assert_eq!(shared.sequences[c].tokens, want.sequences[0].tokens, "{steer:?}, continuation {c}");
                assert_eq!(shared.sequences[c].request, 0);
            }
            outputs.push(shared.sequences.iter().map(|s| s.tokens.clone()).collect::<Vec<_>>());
        }
        // The offset changes what is made, and steering every position differs from steering the last.
        assert!(outputs[0] != outputs[1] && outputs[1] != outputs[2], "{outputs:?}");
    }

    #[test]
    fn a_replaced_embedding_must_lie_in_the_prefix() {
        let mut config = shape_config("small-100m").unwrap();
        (config.num_layers, config.vocab_size) = (1, 64);
        let backend = CpuBackend::new();
        let llm = Llm::random(&backend, config, 2).unwrap();
        let group = SharedPrefix { prefix: vec![1, 2], continuations: vec![vec![3, 4]], steer: None };
        let values = vec![0.0; 768];
        let replaced = PromptEmbeddings { positions: vec![2], values: &values };
        let Err(err) = generate_shared(&backend, &llm, &[group], &[replaced], &greedy(None)) else {
            panic!("a replaced position past the prefix was taken")
        };
        let err = err.to_string();
        assert!(err.contains("embedding 2 replaced"), "{err}");
    }
}
