//! The decoder LLMs end to end, written against the backend trait so that it runs on any backend: a random-weight
//! Llama 3 model (1B widths, or a quarter of them with `quick`; llama3 rope scaling, grouped-query attention, 2
//! layers) and a random Gemma 3 model (270M widths, 2 layers: one sliding-window, one global): last-position logits
//! and their top-1, greedy decoding of 16 tokens with a shared prefix, and steering in both modes and both cache
//! modes, each against the CPU reference; and generation with the decode step recorded and replayed against eager
//! decoding.

use super::measure::{Measure, same_length, worst_row_error};
use super::{CaseResult, Cases, Inputs, Selection};
use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, CachedRow, Stream};
use crate::checkpoint::DType;
use crate::generation::generate::{Decoding, GenerateOptions, Generation, Request, Streams, generate};
use crate::models::llm::{BlockOffset, Llm, LlmConfig, random_weights, shape_config};
use crate::sampling::{SamplingParams, argmax};
use anyhow::Result;

/// Relative error allowed for the model's outputs.
const MODEL_TOLERANCE: f64 = 2e-2;
/// A top-1 disagreement counts only where the reference's best logit leads the subject's pick by more than this
/// share of the logits' standard deviation (below it, bf16 rounding may decide).
const NEAR_TIE: f32 = 0.05;

/// The models of the end-to-end cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Llama,
    Gemma3,
}

impl Family {
    /// Names of the model cases: logits, top-1, greedy, and the three steering modes.
    fn case_names(self) -> [&'static str; 6] {
        match self {
            Family::Llama => {
                ["llm_logits", "llm_top1", "llm_greedy_16", "llm_steer_all", "llm_steer_last", "llm_steer_last_clean"]
            }
            Family::Gemma3 => [
                "gemma_logits",
                "gemma_top1",
                "gemma_greedy_16",
                "gemma_steer_all",
                "gemma_steer_last",
                "gemma_steer_last_clean",
            ],
        }
    }
}

/// Gemma 3 270M widths (640 wide, 4 heads of 256, 1 key/value head, a feed-forward of 2,048, 1,024 with `quick`),
/// 2 layers: a sliding-window one (32 keys, so that every prompt of the cases crosses it) and a global one, a
/// 4,096-token vocabulary.
fn gemma3_config(quick: bool) -> Result<LlmConfig> {
    let mut config = shape_config("gemma3-270m")?;
    config.num_layers = 2;
    config.vocab_size = 4096;
    if quick {
        config.intermediate_size = 1024;
    }
    let gemma = config.gemma3.as_mut().expect("a Gemma 3 shape");
    gemma.sliding_layers = vec![true, false];
    gemma.sliding_window = 32;
    Ok(config)
}

/// The model of the LLM cases: Llama 3.2 1B widths (32 heads of 64, 8 key/value heads, llama3 rope scaling), 2
/// layers, a 4,096-token vocabulary. `quick` keeps a quarter of the widths (8 heads of 64, 2 key/value heads, a
/// feed-forward of 1,536): the same kernels, head size and grouping of query heads, at a sixteenth of the work
/// (for compute-sanitizer and the emulator).
fn model_config(quick: bool) -> Result<LlmConfig> {
    let mut config = shape_config("llama3-1b")?;
    config.num_layers = 2;
    config.vocab_size = 4096;
    if quick {
        config.num_heads /= 4;
        config.num_kv_heads /= 4;
        config.hidden_size = config.num_heads * config.head_dim;
        config.intermediate_size = 1536;
    }
    Ok(config)
}

/// How the model cases describe their model.
fn model_shape(family: Family, quick: bool) -> &'static str {
    match (family, quick) {
        (Family::Llama, true) => "llama3-1b widths / 4, 2 layers, vocab 4096",
        (Family::Llama, false) => "llama3-1b widths, 2 layers, vocab 4096",
        (Family::Gemma3, true) => "gemma3-270m widths, ff 1024, window 32, 2 layers, vocab 4096",
        (Family::Gemma3, false) => "gemma3-270m widths, window 32, 2 layers, vocab 4096",
    }
}

/// The share of rows whose argmax differs between `got` and `want` where the reference's choice is not a near tie
/// (see [`NEAR_TIE`]).
fn top1_disagreement(got: &[f32], want: &[f32], vocab: usize) -> Measure {
    same_length("logits", got.len(), want.len())?;
    let rows = want.len() / vocab;
    let bad = (0..rows)
        .filter(|&r| {
            let (g, w) = (&got[r * vocab..(r + 1) * vocab], &want[r * vocab..(r + 1) * vocab]);
            let (pick, best) = (argmax(g) as usize, argmax(w) as usize);
            let mean = w.iter().sum::<f32>() / vocab as f32;
            let std = (w.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / vocab as f32).sqrt();
            pick != best && w[best] - w[pick] > NEAR_TIE * std
        })
        .count();
    Ok(bad as f64 / rows.max(1) as f64)
}

/// Logits whose argmax is `token` (to ask [`top1_disagreement`] about one choice).
fn picked_logits(like: &[f32], token: u32) -> Vec<f32> {
    let mut out = vec![0.0; like.len()];
    out[token as usize] = 1.0;
    out
}

/// Logits of the last `tail` positions of one prefill of `ids`.
fn prefill_logits<B: Backend>(b: &B, llm: &Llm<B>, ids: &[u32], tail: usize) -> Result<Vec<f32>> {
    let mut cache = b.kv_cache(&llm.kv_layout(vec![ids.len()], Vec::new()))?;
    let rows: Vec<CachedRow> = (0..ids.len()).map(|p| CachedRow { stream: Stream::Prefix(0), position: p }).collect();
    let hidden = llm.forward_hidden(b, &mut cache, ids, &rows, llm.config.num_layers, None)?;
    let last: Vec<usize> = (ids.len() - tail..ids.len()).collect();
    b.download(&llm.logits(b, &hidden, &last)?)
}

/// A steered decode: the prompt less its last token is a shared prefix (steered at every position in `all` mode);
/// one sequence then takes the last prompt token and two more fixed tokens, each with the offset, the cache keeping
/// the steered or the clean keys and values. Returns the three steps' logits.
fn steered_logits<B: Backend>(
    b: &B,
    llm: &Llm<B>,
    ids: &[u32],
    vector: &[f32],
    all: bool,
    clean_cache: bool,
) -> Result<Vec<f32>> {
    let (layers, hidden, layer) = (llm.config.num_layers, llm.config.hidden_size, 0);
    let prefix = ids.len() - 1;
    let mut cache = b.kv_cache(&llm.kv_layout(vec![prefix], vec![(0, 3)]))?;
    let rows: Vec<CachedRow> = (0..prefix).map(|p| CachedRow { stream: Stream::Prefix(0), position: p }).collect();
    let steered: Vec<usize> = if all { (0..prefix).collect() } else { Vec::new() };
    let values: Vec<f32> = steered.iter().flat_map(|_| vector.iter().copied()).collect();
    let offsets = b.upload(&values, steered.len(), hidden)?;
    let offset = BlockOffset { layer, rows: &steered, offsets: &offsets, clean_cache: false };
    llm.forward_hidden(b, &mut cache, &ids[..prefix], &rows, layers, Some(&offset))?;
    let one = b.upload(vector, 1, hidden)?;
    let mut out = Vec::new();
    for (step, &id) in [ids[prefix], 7, 11].iter().enumerate() {
        let row = [CachedRow { stream: Stream::Sequence(0), position: prefix + step }];
        let offset = BlockOffset { layer, rows: &[0], offsets: &one, clean_cache };
        let h = llm.forward_hidden(b, &mut cache, &[id], &row, layers, Some(&offset))?;
        out.extend(b.download(&llm.logits(b, &h, &[0])?)?);
    }
    Ok(out)
}

/// Tokens of the greedy cases.
const GREEDY_TOKENS: usize = 16;

/// Greedy decoding of [`GREEDY_TOKENS`] tokens: prompt A with two sequences (sharing its prefix) and prompt B with
/// one.
fn greedy_tokens<B: Backend>(b: &B, llm: &Llm<B>, a: &[u32], c: &[u32]) -> Result<Vec<Vec<u32>>> {
    let requests =
        [Request { prompt: a.to_vec(), n: 2, steer: None }, Request { prompt: c.to_vec(), n: 1, steer: None }];
    let options = GenerateOptions {
        max_new_tokens: GREEDY_TOKENS,
        sampling: SamplingParams::greedy(),
        seed: 0,
        stop_tokens: Vec::new(),
        steer: None,
        streams: Streams::Batch,
    };
    Ok(generate(b, llm, &requests, &options)?.sequences.into_iter().map(|s| s.tokens).collect())
}

/// Fails, naming both lengths, where `got` holds another number of sequences than `want`, or a sequence another
/// number of tokens.
fn same_lengths(got: &[Vec<u32>], want: &[Vec<u32>]) -> Result<(), String> {
    same_length("sequences", got.len(), want.len())?;
    for (s, (g, w)) in got.iter().zip(want).enumerate() {
        same_length(&format!("tokens in sequence {s}"), g.len(), w.len())?;
    }
    Ok(())
}

/// Greedy sequences against the reference's (`prompts`: each sequence's prompt): the number of departures that no
/// near tie explains, and for how many tokens every sequence matches. Where a sequence departs, the reference's logits
/// at that point tell whether bf16 rounding could have decided it (a near tie, see [`top1_disagreement`]) or the
/// subject is wrong.
fn greedy_departures(
    llm: &Llm<CpuBackend>,
    prompts: [&[u32]; 3],
    got: &[Vec<u32>],
    want: &[Vec<u32>],
) -> Result<(Measure, usize)> {
    if let Err(mismatch) = same_lengths(got, want) {
        return Ok((Err(mismatch), 0));
    }
    let cpu = CpuBackend::new();
    let (mut departures, mut matched) = (0, GREEDY_TOKENS);
    for ((w, g), prompt) in want.iter().zip(got).zip(prompts) {
        let Some(k) = w.iter().zip(g).position(|(x, y)| x != y) else { continue };
        matched = matched.min(k);
        let context: Vec<u32> = prompt.iter().chain(&w[..k]).copied().collect();
        let logits = prefill_logits(&cpu, llm, &context, 1)?;
        if top1_disagreement(&picked_logits(&logits, g[k]), &logits, llm.config.vocab_size) != Ok(0.0) {
            departures += 1;
        }
    }
    Ok((Ok(departures as f64), matched))
}

/// The model cases of both models: `subject` and the reference load the same random bf16 weights.
/// `quick` prefills 120 prompt tokens instead of 300 (so one attention split instead of two) into the quick model.
/// A model is built only when `only` chooses one of its cases.
pub fn model_cases<B: Backend>(
    subject: &B,
    label: &str,
    quick: bool,
    seed: u64,
    only: &Selection,
) -> Result<Vec<CaseResult>> {
    let mut results = Vec::new();
    for family in [Family::Llama, Family::Gemma3] {
        if only.wants(&family.case_names()) {
            results.extend(family_cases(subject, label, family, quick, seed, only)?);
        }
    }
    Ok(results)
}

fn family_cases<B: Backend>(
    subject: &B,
    label: &str,
    family: Family,
    quick: bool,
    seed: u64,
    only: &Selection,
) -> Result<Vec<CaseResult>> {
    let cpu = CpuBackend::new();
    let mut cases = Cases { label, results: Vec::new() };
    let config = match family {
        Family::Llama => model_config(quick)?,
        Family::Gemma3 => gemma3_config(quick)?,
    };
    let [logits_case, top1_case, greedy_case, steer_cases @ ..] = family.case_names();
    let store = random_weights(&config, DType::BF16, seed);
    let (want_llm, got_llm) =
        (Llm::from_store(&cpu, &store, config.clone())?, Llm::from_store(subject, &store, config.clone())?);
    let vocab = config.vocab_size;
    let prompt = if quick { 120 } else { 300 };
    let ids: Vec<u32> = (0..prompt).map(|i| (crate::sampling::mix64(seed ^ i) % vocab as u64) as u32).collect();
    let shape = model_shape(family, quick).to_string();

    let tail = 8;
    if only.wants(&[logits_case, top1_case]) {
        let (want, got) =
            (prefill_logits(&cpu, &want_llm, &ids, tail)?, prefill_logits(subject, &got_llm, &ids, tail)?);
        let described = format!("{shape}; last {tail} of {prompt} prompt positions");
        cases.push(logits_case, described.clone(), worst_row_error(&got, &want, vocab), MODEL_TOLERANCE);
        cases.push(top1_case, described, top1_disagreement(&got, &want, vocab), 0.0);
    }

    if only.wants(&[greedy_case]) {
        let (a, c) = (&ids[..40], &ids[100..117]);
        let (want, got) = (greedy_tokens(&cpu, &want_llm, a, c)?, greedy_tokens(subject, &got_llm, a, c)?);
        let (departures, matched) = greedy_departures(&want_llm, [a, a, c], &got, &want)?;
        cases.push(
            greedy_case,
            format!(
                "{shape}; 2 prompts, 3 sequences; all equal for {matched} of {GREEDY_TOKENS} tokens, departures at \
                 near ties only"
            ),
            departures,
            0.0,
        );
    }

    let vector = Inputs::for_case(seed, "steer").values(config.hidden_size, 1.0);
    let steer_modes = steer_cases.into_iter().zip([(true, false), (false, false), (false, true)]);
    for (kernel, (all, clean)) in steer_modes.filter(|(kernel, _)| only.wants(&[kernel])) {
        let want = steered_logits(&cpu, &want_llm, &ids[..50], &vector, all, clean)?;
        let got = steered_logits(subject, &got_llm, &ids[..50], &vector, all, clean)?;
        let described = format!("{shape}; 49-token prefix, 3 steered steps at block 0");
        cases.push(kernel, described, worst_row_error(&got, &want, vocab), MODEL_TOLERANCE);
    }
    Ok(cases.results)
}

/// Generation with the decode step recorded and replayed (`recorded`, CUDA graphs) against the same backend
/// running it eagerly: the tokens must be identical, since every row's result is independent of the others.
/// Greedy, sampled, and steered in `last` mode with the clean cache, over two prompt groups; `quick` on the quick
/// model.
pub fn recording_cases<B: Backend>(
    recorded: &B,
    eager: &B,
    label: &str,
    quick: bool,
    seed: u64,
    only: &Selection,
) -> Result<Vec<CaseResult>> {
    let mut cases = Cases { label, results: Vec::new() };
    let kinds = [
        ("decode_recorded_greedy", SamplingParams::greedy(), false),
        ("decode_recorded_sampled", SamplingParams::default(), false),
        ("decode_recorded_steered", SamplingParams::default(), true),
    ];
    let kinds: Vec<_> = kinds.into_iter().filter(|(kernel, ..)| only.wants(&[kernel])).collect();
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let config = model_config(quick)?;
    let store = random_weights(&config, DType::BF16, seed);
    let (with, without) =
        (Llm::from_store(recorded, &store, config.clone())?, Llm::from_store(eager, &store, config.clone())?);
    let vocab = config.vocab_size as u64;
    // The first prompt is longer than one attention split (256 keys), so the recorded step holds the split and
    // combine kernels.
    let ids: Vec<u32> = (0..320u64).map(|i| (crate::sampling::mix64(seed ^ (i + 1000)) % vocab) as u32).collect();
    let vector = Inputs::for_case(seed, "decode_recorded").values(config.hidden_size, 1.0);
    let steer = crate::generation::steering::SteerConfig {
        layer: 0,
        mode: crate::generation::steering::SteerMode::Last,
        cache: crate::generation::steering::SteerCache::Clean,
    };
    for (kernel, sampling, steered) in kinds {
        let requests = [
            Request { prompt: ids[..300].to_vec(), n: 3, steer: steered.then(|| vector.clone()) },
            Request { prompt: ids[300..].to_vec(), n: 2, steer: None },
        ];
        let mut options = GenerateOptions {
            max_new_tokens: 12,
            sampling,
            seed,
            stop_tokens: Vec::new(),
            steer: steered.then_some(steer),
            streams: Streams::Batch,
        };
        // Stop tokens taken from an eager run (the 4th token of the first sequence, the 7th of the last), so that
        // sequences finish at different steps while the recorded batch keeps them.
        let free = tokens(generate(eager, &without, &requests, &options)?);
        options.stop_tokens = vec![free[0][3], free[4][6]];
        let want = generate(eager, &without, &requests, &options)?;
        let got = generate(recorded, &with, &requests, &options)?;
        let lengths: Vec<usize> = want.sequences.iter().map(|s| s.tokens.len()).collect();
        let described =
            format!("prompts of 300 and 20 tokens, 5 sequences of up to 12 tokens (eager lengths {lengths:?})");
        cases.push(kernel, described, recorded_against_eager(got, want), 0.0);
    }
    Ok(cases.results)
}

fn tokens(generation: Generation) -> Vec<Vec<u32>> {
    generation.sequences.into_iter().map(|s| s.tokens).collect()
}

/// The number of sequences whose tokens differ between a recorded generation and an eager one; a failure where
/// the recorded one was not recorded and replayed, or the eager one was not eager (the case would compare a run
/// with itself).
fn recorded_against_eager(recorded: Generation, eager: Generation) -> Measure {
    replayed(&recorded.decoding)?;
    if eager.decoding != Decoding::Eager {
        return Err(format!("the eager run did not decode step by step: {:?}", eager.decoding));
    }
    let (got, want) = (tokens(recorded), tokens(eager));
    same_length("sequences", got.len(), want.len())?;
    Ok(got.iter().zip(&want).filter(|(g, w)| g != w).count() as f64)
}

/// Why a recorded run that decoded eagerly without a recording error failed.
const NOT_RECORDED: &str = "recording fell back to eager decoding: the backend did not record the decode step (it \
                            does not record, or recording is turned off)";

/// Fails, saying why, unless the decode step was recorded and then replayed.
fn replayed(decoding: &Decoding) -> Result<(), String> {
    match decoding {
        Decoding::Recorded { replays } if *replays > 0 => Ok(()),
        Decoding::Recorded { .. } => Err("the decode step was recorded but never replayed".into()),
        Decoding::Eager => Err(NOT_RECORDED.into()),
        Decoding::FellBack { reason } => Err(format!("recording fell back to eager decoding: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::generate::{FinishReason, Sequence};

    #[test]
    fn the_reference_against_itself_is_exact() {
        let results = model_cases(&CpuBackend::new(), "cpu", true, 3, &Selection::all()).unwrap();
        assert_eq!(results.len(), 12);
        for r in &results {
            assert!(r.passed && r.error == 0.0, "{r:?}");
        }
    }

    /// The CPU backend does not record, so its "recorded" run decodes eagerly: identical tokens, yet every recorded
    /// case fails, saying that recording fell back to eager decoding.
    #[test]
    fn recorded_cases_fail_where_nothing_was_recorded() {
        let cpu = CpuBackend::new();
        let results = recording_cases(&cpu, &cpu, "cpu", true, 3, &Selection::all()).unwrap();
        assert_eq!(results.len(), 3);
        for r in &results {
            let failure = r.failure.as_deref().unwrap_or_default();
            assert!(!r.passed && failure.contains("recording fell back to eager decoding"), "{r:?}");
        }
    }

    fn generation(tokens: &[&[u32]], decoding: Decoding) -> Generation {
        let sequences = tokens
            .iter()
            .enumerate()
            .map(|(index, t)| Sequence { request: 0, index, tokens: t.to_vec(), finish: FinishReason::Length })
            .collect();
        Generation { sequences, kv_cache_bytes: 0, decoding }
    }

    #[test]
    fn a_recording_that_failed_fails_the_case_with_its_reason() {
        let tokens: &[&[u32]] = &[&[1, 2, 3], &[4, 5]];
        let eager = || generation(tokens, Decoding::Eager);
        let fell_back = Decoding::FellBack { reason: "instantiating the recorded CUDA graph: out of memory".into() };
        let failure = recorded_against_eager(generation(tokens, fell_back), eager()).unwrap_err();
        assert_eq!(
            failure,
            "recording fell back to eager decoding: instantiating the recorded CUDA graph: out of memory"
        );
        let never_replayed = generation(tokens, Decoding::Recorded { replays: 0 });
        assert!(recorded_against_eager(never_replayed, eager()).is_err());
        let both_recorded = generation(tokens, Decoding::Recorded { replays: 3 });
        let error = recorded_against_eager(generation(tokens, Decoding::Recorded { replays: 3 }), both_recorded);
        assert!(error.unwrap_err().starts_with("the eager run did not decode step by step"));
        assert_eq!(recorded_against_eager(generation(tokens, Decoding::Recorded { replays: 3 }), eager()), Ok(0.0));
    }

    #[test]
    fn recorded_tokens_are_compared_sequence_by_sequence() {
        let recorded = |tokens: &[&[u32]]| generation(tokens, Decoding::Recorded { replays: 3 });
        let eager = || generation(&[&[1, 2, 3], &[4, 5]], Decoding::Eager);
        assert_eq!(recorded_against_eager(recorded(&[&[1, 2, 3], &[4, 6]]), eager()), Ok(1.0));
        assert_eq!(recorded_against_eager(recorded(&[&[1, 2], &[4, 5]]), eager()), Ok(1.0));
        let failure = recorded_against_eager(recorded(&[&[1, 2, 3]]), eager()).unwrap_err();
        assert_eq!(failure, "the output has 1 sequences, the reference 2");
    }

    #[test]
    fn greedy_sequences_of_other_lengths_fail_naming_both() {
        assert_eq!(same_lengths(&[vec![1, 2]], &[vec![1, 2]]), Ok(()));
        let failure = same_lengths(&[vec![1, 2], vec![3]], &[vec![1, 2], vec![3, 4]]).unwrap_err();
        assert_eq!(failure, "the output has 1 tokens in sequence 1, the reference 2");
        assert_eq!(same_lengths(&[], &[vec![1]]).unwrap_err(), "the output has 0 sequences, the reference 1");
    }

    #[test]
    fn the_steering_cases_tell_the_modes_apart() {
        let cpu = CpuBackend::new();
        let mut config = model_config(true).unwrap();
        config.num_layers = 2;
        let llm = Llm::from_store(&cpu, &random_weights(&config, DType::BF16, 5), config.clone()).unwrap();
        let ids: Vec<u32> = (0..20).map(|i| i * 37 % 4096).collect();
        let vector = Inputs { state: 9 }.values(config.hidden_size, 1.0);
        let zero = vec![0.0; config.hidden_size];
        let plain = steered_logits(&cpu, &llm, &ids, &zero, false, false).unwrap();
        let outputs: Vec<Vec<f32>> = [(true, false), (false, false), (false, true)]
            .iter()
            .map(|&(all, clean)| steered_logits(&cpu, &llm, &ids, &vector, all, clean).unwrap())
            .collect();
        let vocab = config.vocab_size;
        for (i, a) in outputs.iter().enumerate() {
            assert!(worst_row_error(a, &plain, vocab).unwrap() > 1e-2, "mode {i} changes nothing");
            for b in &outputs[i + 1..] {
                assert!(worst_row_error(a, b, vocab).unwrap() > 1e-3, "two modes give the same logits");
            }
        }
        // The first step sees the same cache in both `last` modes; the later steps differ.
        assert_eq!(outputs[1][..vocab], outputs[2][..vocab]);
    }

    #[test]
    fn top1_disagreement_ignores_near_ties_only() {
        let want = vec![0.0, 1.0, 0.999, -1.0, 0.0, 1.0, 0.5, -1.0];
        assert_eq!(top1_disagreement(&picked_logits(&want[..4], 2), &want[..4], 4), Ok(0.0));
        assert_eq!(top1_disagreement(&picked_logits(&want[4..], 2), &want[4..], 4), Ok(1.0));
        let mut got = picked_logits(&want[..4], 1);
        got.extend(picked_logits(&want[4..], 2));
        assert_eq!(top1_disagreement(&got, &want, 4), Ok(0.5));
        assert_eq!(top1_disagreement(&got[..4], &want, 4).unwrap_err(), "the output has 4 logits, the reference 8");
    }
}
