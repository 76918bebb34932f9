//! The decoder-LLM half of the parity harness, written against the backend trait so that it runs on any backend
//! (the CUDA one on a GPU; the CPU one in the tests, where every error must be zero): each LLM operation on random
//! inputs, then a random-weight Llama 3 model (1B widths, llama3 rope scaling, grouped-query attention, 2 layers):
//! last-position logits and their top-1, greedy decoding of 16 tokens with a shared prefix, and steering in both
//! modes and both cache modes, each against the CPU reference.

use super::selftest::{CaseResult, Inputs, relative_error};
use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, CachedRow, HeadShape, KvLayout, Stream};
use crate::checkpoint::{DType, StoredTensor};
use crate::generation::generate::{GenerateOptions, Request, Streams, generate};
use crate::models::llm::{BlockOffset, Llm, LlmConfig, random_weights, shape_config};
use crate::sampling::{SamplingParams, SequenceRng, argmax};
use anyhow::Result;

/// Relative error allowed for single bf16 operations, and for the model's outputs.
const OP_TOLERANCE: f64 = 1e-2;
const MODEL_TOLERANCE: f64 = 2e-2;
/// A top-1 disagreement counts only where the reference's best logit leads the subject's pick by more than this
/// share of the logits' standard deviation (below it, bf16 rounding may decide).
const NEAR_TIE: f32 = 0.05;

struct Cases<'a> {
    label: &'a str,
    results: Vec<CaseResult>,
}

impl Cases<'_> {
    fn push(&mut self, kernel: &'static str, shape: String, error: f64, tolerance: f64) {
        let passed = error <= tolerance;
        self.results.push(CaseResult { kernel, subject: self.label.to_string(), shape, error, tolerance, passed });
    }
}

fn weight<B: Backend>(b: &B, values: &[f32], shape: &[usize]) -> Result<B::Weight> {
    b.load_weight(&[&StoredTensor::from_f32("selftest weight", shape, values)])
}

/// `(rms_norm(x), add_rms_norm(x, delta).1, add_rms_norm(x, delta).0)`.
fn norms<B: Backend>(b: &B, x: &[f32], delta: &[f32], gain: &[f32], rows: usize) -> Result<[Vec<f32>; 3]> {
    let cols = gain.len();
    let (x, delta, gain) = (b.upload(x, rows, cols)?, b.upload(delta, rows, cols)?, weight(b, gain, &[cols])?);
    let plain = b.rms_norm(&x, &gain, 1e-5)?;
    let (sum, normed) = b.add_rms_norm(&x, &delta, &gain, 1e-5)?;
    Ok([b.download(&plain)?, b.download(&normed)?, b.download(&sum)?])
}

/// Row-wise ops: the SiLU gate, the steering add and mean pooling.
fn row_ops<B: Backend>(b: &B, x: &[f32], rows: usize, cols: usize, offsets: &[f32]) -> Result<[Vec<f32>; 3]> {
    let t = b.upload(x, rows, cols)?;
    let gated = b.silu_mul(&t)?;
    let steered_rows: Vec<usize> = (0..rows).filter(|r| r % 2 == 1).collect();
    let offsets = b.upload(&offsets[..steered_rows.len() * cols], steered_rows.len(), cols)?;
    let steered = b.add_rows(&t, &steered_rows, &offsets)?;
    let pooled = b.mean_rows(&t, &[(0, rows), (1, 1), (rows / 2, rows - rows / 2)])?;
    Ok([b.download(&gated)?, b.download(&steered)?, b.download(&pooled)?])
}

fn embedded<B: Backend>(b: &B, table: &[f32], rows: usize, ids: &[u32]) -> Result<Vec<f32>> {
    let table = weight(b, table, &[rows, table.len() / rows])?;
    b.download(&b.embed(ids, &table)?)
}

/// Decode steps of the cached-attention script.
const DECODE_STEPS: usize = 4;

/// The cached-attention script: two prompt groups (prefixes of 300 and 17 tokens, prefilled in one call), four
/// sequences (two on each prefix, so that a sequence reading its sibling's part would show), four decode steps;
/// rope applied first, as the model does. Returns the rotated prefill rows, the prefill's attention, and the
/// decode steps' attention (all steps, row after row).
fn cached_attention<B: Backend>(
    b: &B,
    heads: HeadShape,
    qkv_rows: &[Vec<f32>],
    inv_freq: &[f32],
) -> Result<[Vec<f32>; 3]> {
    let prefixes = vec![300, 17];
    let sequences = [(0, 0), (1, 0), (2, 1), (3, 1)];
    let layout = KvLayout {
        layers: 2,
        kv_heads: heads.kv_heads,
        head_dim: heads.head_dim,
        prefixes: prefixes.clone(),
        sequences: sequences.iter().map(|&(_, g)| (g, DECODE_STEPS)).collect(),
    };
    let mut cache = b.kv_cache(&layout)?;
    let inv_freq = b.upload(inv_freq, 1, inv_freq.len())?;
    let prefill: Vec<CachedRow> = prefixes
        .iter()
        .enumerate()
        .flat_map(|(g, &n)| (0..n).map(move |p| CachedRow { stream: Stream::Prefix(g), position: p }))
        .collect();
    let decode = |step: usize| -> Vec<CachedRow> {
        sequences
            .iter()
            .map(|&(s, g)| CachedRow { stream: Stream::Sequence(s), position: prefixes[g] + step })
            .collect()
    };
    let calls: Vec<Vec<CachedRow>> = std::iter::once(prefill).chain((0..DECODE_STEPS).map(decode)).collect();
    let mut parts = [Vec::new(), Vec::new(), Vec::new()];
    for (call, rows) in calls.iter().enumerate() {
        let prepared = b.cache_rows(&cache, rows)?;
        let qkv = b.upload(&qkv_rows[call], rows.len(), heads.qkv_width())?;
        let rotated = b.rope(&qkv, &prepared, heads, &inv_freq)?;
        // Layer 1 of the cache, so that the layer offset is exercised.
        let attended = b.download(&b.attention_cached(&rotated, &mut cache, 1, &prepared, heads)?)?;
        if call == 0 {
            parts[0] = b.download(&rotated)?;
            parts[1] = attended;
        } else {
            parts[2].extend(attended);
        }
    }
    Ok(parts)
}

/// The largest relative error of any one row of `width` values: a wrong row among many right ones shows in full.
fn worst_row_error(out: &[f32], reference: &[f32], width: usize) -> f64 {
    if out.len() != reference.len() {
        return f64::INFINITY;
    }
    out.chunks(width).zip(reference.chunks(width)).map(|(o, r)| relative_error(o, r)).fold(0.0, f64::max)
}

/// Every LLM operation against the reference; `quick` keeps the small shapes only.
pub fn op_cases<B: Backend>(subject: &B, label: &str, quick: bool, seed: u64) -> Result<Vec<CaseResult>> {
    let cpu = CpuBackend::new();
    let mut cases = Cases { label, results: Vec::new() };
    let mut inputs = Inputs { state: seed ^ 0x11A7 };

    let norm_shapes: &[(usize, usize)] = if quick { &[(3, 100), (4, 4096)] } else { &[(3, 100), (9, 4096), (2, 9000)] };
    for &(rows, cols) in norm_shapes {
        let (x, delta, gain) =
            (inputs.values(rows * cols, 2.0), inputs.values(rows * cols, 1.0), inputs.values(cols, 1.0));
        let want = norms(&cpu, &x, &delta, &gain, rows)?;
        let got = norms(subject, &x, &delta, &gain, rows)?;
        for (i, kernel) in ["rms_norm", "add_rms_norm", "add_rms_norm_sum"].into_iter().enumerate() {
            cases.push(kernel, format!("[{rows}, {cols}]"), relative_error(&got[i], &want[i]), OP_TOLERANCE);
        }
    }

    let (rows, cols) = (7, 2 * 300);
    let (x, offsets) = (inputs.values(rows * cols, 3.0), inputs.values(rows * cols, 1.0));
    let (want, got) = (row_ops(&cpu, &x, rows, cols, &offsets)?, row_ops(subject, &x, rows, cols, &offsets)?);
    for (i, kernel) in ["silu_mul", "add_rows", "mean_rows"].into_iter().enumerate() {
        cases.push(kernel, format!("[{rows}, {cols}]"), relative_error(&got[i], &want[i]), OP_TOLERANCE);
    }

    let (vocab, dim) = (1000, 96);
    let table = inputs.values(vocab * dim, 1.0);
    let ids: Vec<u32> = (0..37u32).map(|i| (i * 271 + 13) % vocab as u32).collect();
    let (want, got) = (embedded(&cpu, &table, vocab, &ids)?, embedded(subject, &table, vocab, &ids)?);
    cases.push("embed", format!("{} ids of [{vocab}, {dim}]", ids.len()), relative_error(&got, &want), 0.0);

    let head_shapes: &[(usize, usize, usize)] = if quick {
        &[(8, 2, 64), (4, 1, 128)]
    } else {
        &[(8, 2, 64), (4, 4, 128), (14, 2, 64), (4, 1, 256), (2, 1, 80)]
    };
    for &(heads, kv_heads, head_dim) in head_shapes {
        let shape = HeadShape { heads, kv_heads, head_dim };
        let calls = std::iter::once(317).chain(std::iter::repeat_n(4, DECODE_STEPS));
        let qkv: Vec<Vec<f32>> = calls.map(|n| inputs.values(n * shape.qkv_width(), 2.0)).collect();
        let inv_freq: Vec<f32> = (0..head_dim / 2).map(|i| 500000f32.powf(-2.0 * i as f32 / head_dim as f32)).collect();
        let want = cached_attention(&cpu, shape, &qkv, &inv_freq)?;
        let got = cached_attention(subject, shape, &qkv, &inv_freq)?;
        let described = format!("{heads} heads, {kv_heads} kv, d {head_dim}");
        let width = heads * head_dim;
        let rope_error = worst_row_error(&got[0], &want[0], shape.qkv_width());
        cases.push("rope", format!("{described}; 317 rows, worst row"), rope_error, OP_TOLERANCE);
        cases.push(
            "attention_cached_prefill",
            format!("{described}; prefixes of 300 and 17 tokens in one call, worst row"),
            worst_row_error(&got[1], &want[1], width),
            OP_TOLERANCE,
        );
        cases.push(
            "attention_cached_decode",
            format!("{described}; 4 sequences, 2 per prefix, {DECODE_STEPS} steps, worst row"),
            worst_row_error(&got[2], &want[2], width),
            OP_TOLERANCE,
        );
    }

    let vocab = if quick { 5000 } else { 128_256 };
    let rows = 12;
    let logits = inputs.values(rows * vocab, 8.0);
    let rngs: Vec<SequenceRng> = (0..rows as u64).map(|s| SequenceRng::new(seed, s)).collect();
    let steps: Vec<u64> = (0..rows as u64).map(|s| s * 3).collect();
    for (name, params) in [
        ("sample_greedy", SamplingParams::greedy()),
        ("sample_top_k", SamplingParams { temperature: 0.7, top_k: 50, top_p: 1.0, greedy: false }),
        ("sample_top_k_top_p", SamplingParams { temperature: 1.3, top_k: 200, top_p: 0.9, greedy: false }),
        ("sample_full", SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, greedy: false }),
        ("sample_top_p", SamplingParams { temperature: 1.0, top_k: 0, top_p: 0.8, greedy: false }),
    ] {
        let want = cpu.sample(&cpu.upload(&logits, rows, vocab)?, &params, &rngs, &steps)?;
        let got = subject.sample(&subject.upload(&logits, rows, vocab)?, &params, &rngs, &steps)?;
        let differ = want.iter().zip(&got).filter(|(a, b)| a != b).count();
        cases.push(name, format!("{rows} rows of {vocab}"), differ as f64 / rows as f64, 0.0);
    }
    Ok(cases.results)
}

/// The model of the LLM cases: Llama 3.2 1B widths (32 heads of 64, 8 key/value heads, llama3 rope scaling), 2
/// layers, a 4,096-token vocabulary.
fn model_config() -> Result<LlmConfig> {
    let mut config = shape_config("llama3-1b")?;
    config.num_layers = 2;
    config.vocab_size = 4096;
    Ok(config)
}

/// The share of rows whose argmax differs between `got` and `want` where the reference's choice is not a near tie
/// (see [`NEAR_TIE`]).
fn top1_disagreement(got: &[f32], want: &[f32], vocab: usize) -> f64 {
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
    bad as f64 / rows.max(1) as f64
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

/// Greedy decoding of 16 tokens: prompt A with two sequences (sharing its prefix) and prompt B with one.
fn greedy_tokens<B: Backend>(b: &B, llm: &Llm<B>, a: &[u32], c: &[u32]) -> Result<Vec<Vec<u32>>> {
    let requests =
        [Request { prompt: a.to_vec(), n: 2, steer: None }, Request { prompt: c.to_vec(), n: 1, steer: None }];
    let options = GenerateOptions {
        max_new_tokens: 16,
        sampling: SamplingParams::greedy(),
        seed: 0,
        stop_tokens: Vec::new(),
        steer: None,
        streams: Streams::Batch,
    };
    Ok(generate(b, llm, &requests, &options)?.sequences.into_iter().map(|s| s.tokens).collect())
}

/// The model cases: `subject` and the reference load the same random bf16 weights.
/// `quick` prefills 120 prompt tokens instead of 300 (so one attention split instead of two).
pub fn model_cases<B: Backend>(subject: &B, label: &str, quick: bool, seed: u64) -> Result<Vec<CaseResult>> {
    let cpu = CpuBackend::new();
    let mut cases = Cases { label, results: Vec::new() };
    let config = model_config()?;
    let store = random_weights(&config, DType::BF16, seed);
    let (want_llm, got_llm) =
        (Llm::from_store(&cpu, &store, config.clone())?, Llm::from_store(subject, &store, config.clone())?);
    let vocab = config.vocab_size as u32;
    let prompt = if quick { 120 } else { 300 };
    let ids: Vec<u32> = (0..prompt).map(|i| (crate::sampling::mix64(seed ^ i) % vocab as u64) as u32).collect();
    let shape = "llama3-1b widths, 2 layers, vocab 4096".to_string();

    let tail = 8;
    let (want, got) = (prefill_logits(&cpu, &want_llm, &ids, tail)?, prefill_logits(subject, &got_llm, &ids, tail)?);
    let described = format!("{shape}; last {tail} of {prompt} prompt positions");
    cases.push("llm_logits", described.clone(), relative_error(&got, &want), MODEL_TOLERANCE);
    cases.push("llm_top1", described, top1_disagreement(&got, &want, config.vocab_size), 0.0);

    let (a, c) = (&ids[..40], &ids[100..117]);
    let (want, got) = (greedy_tokens(&cpu, &want_llm, a, c)?, greedy_tokens(subject, &got_llm, a, c)?);
    // Where a sequence departs from the reference, the reference's logits at that point tell whether bf16
    // rounding could have decided it (a near tie) or the subject is wrong.
    let mut matched = 16;
    // A missing sequence or token is a departure no tie explains.
    let mut real_departures = want.len().abs_diff(got.len());
    for ((w, g), prompt) in want.iter().zip(&got).zip([a, a, c]) {
        if w.len() != g.len() {
            real_departures += 1;
        }
        let Some(k) = w.iter().zip(g).position(|(x, y)| x != y) else { continue };
        matched = matched.min(k);
        let context: Vec<u32> = prompt.iter().chain(&w[..k]).copied().collect();
        let logits = prefill_logits(&cpu, &want_llm, &context, 1)?;
        if top1_disagreement(&picked_logits(&logits, g[k]), &logits, config.vocab_size) > 0.0 {
            real_departures += 1;
        }
    }
    cases.push(
        "llm_greedy_16",
        format!("{shape}; 2 prompts, 3 sequences; all equal for {matched} of 16 tokens, departures at near ties only"),
        real_departures as f64,
        0.0,
    );

    let mut inputs = Inputs { state: seed ^ 0x57EE };
    let vector = inputs.values(config.hidden_size, 1.0);
    for (kernel, all, clean) in
        [("llm_steer_all", true, false), ("llm_steer_last", false, false), ("llm_steer_last_clean", false, true)]
    {
        let want = steered_logits(&cpu, &want_llm, &ids[..50], &vector, all, clean)?;
        let got = steered_logits(subject, &got_llm, &ids[..50], &vector, all, clean)?;
        let described = format!("{shape}; 49-token prefix, 3 steered steps at block 0");
        cases.push(kernel, described, relative_error(&got, &want), MODEL_TOLERANCE);
    }
    Ok(cases.results)
}

/// Generation with the decode step recorded and replayed (`recorded`, CUDA graphs) against the same backend
/// running it eagerly: the tokens must be identical, since every row's result is independent of the others.
/// Greedy, sampled, and steered in `last` mode with the clean cache, over two prompt groups.
pub fn recording_cases<B: Backend>(recorded: &B, eager: &B, label: &str, seed: u64) -> Result<Vec<CaseResult>> {
    let mut cases = Cases { label, results: Vec::new() };
    let config = model_config()?;
    let store = random_weights(&config, DType::BF16, seed);
    let (with, without) =
        (Llm::from_store(recorded, &store, config.clone())?, Llm::from_store(eager, &store, config.clone())?);
    let vocab = config.vocab_size as u64;
    // The first prompt is longer than one attention split (256 keys), so the recorded step holds the split and
    // combine kernels.
    let ids: Vec<u32> = (0..320u64).map(|i| (crate::sampling::mix64(seed ^ (i + 1000)) % vocab) as u32).collect();
    let vector = Inputs { state: seed ^ 0x6A4F }.values(config.hidden_size, 1.0);
    let steer = crate::generation::steering::SteerConfig {
        layer: 0,
        mode: crate::generation::steering::SteerMode::Last,
        cache: crate::generation::steering::SteerCache::Clean,
    };
    for (kernel, sampling, steered) in [
        ("decode_recorded_greedy", SamplingParams::greedy(), false),
        ("decode_recorded_sampled", SamplingParams::default(), false),
        ("decode_recorded_steered", SamplingParams::default(), true),
    ] {
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
        let run = |b: &B, llm: &Llm<B>, options: &GenerateOptions| -> Result<Vec<Vec<u32>>> {
            Ok(generate(b, llm, &requests, options)?.sequences.into_iter().map(|s| s.tokens).collect())
        };
        // Stop tokens taken from an eager run (the 4th token of the first sequence, the 7th of the last), so that
        // sequences finish at different steps while the recorded batch keeps them.
        let free = run(eager, &without, &options)?;
        options.stop_tokens = vec![free[0][3], free[4][6]];
        let (want, got) = (run(eager, &without, &options)?, run(recorded, &with, &options)?);
        let differ = want.iter().zip(&got).filter(|(a, b)| a != b).count() + want.len().abs_diff(got.len());
        let lengths: Vec<usize> = want.iter().map(Vec::len).collect();
        let described =
            format!("prompts of 300 and 20 tokens, 5 sequences of up to 12 tokens (eager lengths {lengths:?})");
        cases.push(kernel, described, differ as f64, 0.0);
    }
    Ok(cases.results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_against_itself_is_exact() {
        let cpu = CpuBackend::new();
        let mut results = op_cases(&cpu, "cpu", true, 3).unwrap();
        results.extend(model_cases(&cpu, "cpu", true, 3).unwrap());
        results.extend(recording_cases(&cpu, &cpu, "cpu", 3).unwrap());
        assert!(results.len() >= 20);
        for r in &results {
            assert!(r.passed && r.error == 0.0, "{r:?}");
        }
    }

    #[test]
    fn the_steering_cases_tell_the_modes_apart() {
        let cpu = CpuBackend::new();
        let mut config = model_config().unwrap();
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
        for (i, a) in outputs.iter().enumerate() {
            assert!(relative_error(a, &plain) > 1e-2, "mode {i} changes nothing");
            for b in &outputs[i + 1..] {
                assert!(relative_error(a, b) > 1e-3, "two modes give the same logits");
            }
        }
        // The first step sees the same cache in both `last` modes; the later steps differ.
        let vocab = config.vocab_size;
        assert_eq!(outputs[1][..vocab], outputs[2][..vocab]);
    }

    #[test]
    fn top1_disagreement_ignores_near_ties_only() {
        let want = vec![0.0, 1.0, 0.999, -1.0, 0.0, 1.0, 0.5, -1.0];
        assert_eq!(top1_disagreement(&picked_logits(&want[..4], 2), &want[..4], 4), 0.0);
        assert_eq!(top1_disagreement(&picked_logits(&want[4..], 2), &want[4..], 4), 1.0);
        let mut got = picked_logits(&want[..4], 1);
        got.extend(picked_logits(&want[4..], 2));
        assert_eq!(top1_disagreement(&got, &want, 4), 0.5);
    }
}
