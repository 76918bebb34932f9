//! The decoder LLM's operations, written against the backend trait so that they run on any backend (the CUDA one
//! on a GPU; the CPU one in the tests, where every error must be zero): RMS norm with and without the residual add
//! (with plain gains and Gemma's `1 + weight`), per-head RMS norm, the SiLU and tanh-GELU gates, the steering add,
//! mean pooling, embedding (plain and scaled), rope and cached attention (prefill and decode over shared prefixes,
//! full and in sliding windows), and sampling, each on random inputs against the CPU reference.

use super::measure::{Measure, same_length, worst_row_error};
use super::{CaseResult, Cases, Inputs, Selection};
use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, CachedRow, Gate, HeadShape, KvLayout, Scoring, Stream};
use crate::checkpoint::StoredTensor;
use crate::sampling::{SamplingParams, SequenceRng};
use anyhow::Result;

/// Relative error allowed for single bf16 operations.
const OP_TOLERANCE: f64 = 1e-2;

fn weight<B: Backend>(b: &B, values: &[f32], shape: &[usize]) -> Result<B::Weight> {
    b.load_weight(&[&StoredTensor::from_f32("selftest weight", shape, values)])
}

/// `(rms_norm(x), add_rms_norm(x, delta).1, add_rms_norm(x, delta).0)`, the gains offset by `gain_offset`.
fn norms<B: Backend>(
    b: &B,
    x: &[f32],
    delta: &[f32],
    gain: &[f32],
    gain_offset: f32,
    rows: usize,
) -> Result<[Vec<f32>; 3]> {
    let cols = gain.len();
    let (x, delta, gain) = (b.upload(x, rows, cols)?, b.upload(delta, rows, cols)?, weight(b, gain, &[cols])?);
    let plain = b.rms_norm(&x, &gain, gain_offset, 1e-5)?;
    let (sum, normed) = b.add_rms_norm(&x, &delta, &gain, gain_offset, 1e-5)?;
    Ok([b.download(&plain)?, b.download(&normed)?, b.download(&sum)?])
}

/// Gemma's per-head RMS norm of packed QKV rows (gains offset by 1).
fn head_norms<B: Backend>(b: &B, qkv: &[f32], heads: HeadShape, q_gain: &[f32], k_gain: &[f32]) -> Result<Vec<f32>> {
    let d = heads.head_dim;
    let qkv = b.upload(qkv, qkv.len() / heads.qkv_width(), heads.qkv_width())?;
    let (q_gain, k_gain) = (weight(b, q_gain, &[d])?, weight(b, k_gain, &[d])?);
    b.download(&b.head_rms_norm(&qkv, heads, &q_gain, &k_gain, 1.0, 1e-6)?)
}

/// Row-wise ops: the SiLU and tanh-GELU gates, the steering add and mean pooling.
fn row_ops<B: Backend>(b: &B, x: &[f32], rows: usize, cols: usize, offsets: &[f32]) -> Result<[Vec<f32>; 4]> {
    let t = b.upload(x, rows, cols)?;
    let gated = b.silu_mul(&t)?;
    let gelu_gated = b.gelu_tanh_mul(&t)?;
    let steered_rows: Vec<usize> = (0..rows).filter(|r| r % 2 == 1).collect();
    let offsets = b.upload(&offsets[..steered_rows.len() * cols], steered_rows.len(), cols)?;
    let steered = b.add_rows(&t, &steered_rows, &offsets)?;
    let pooled = b.mean_rows(&t, &[(0, rows), (1, 1), (rows / 2, rows - rows / 2)])?;
    Ok([b.download(&gated)?, b.download(&gelu_gated)?, b.download(&steered)?, b.download(&pooled)?])
}

fn embedded<B: Backend>(b: &B, table: &[f32], rows: usize, ids: &[u32], scale: f32) -> Result<Vec<f32>> {
    let table = weight(b, table, &[rows, table.len() / rows])?;
    b.download(&b.embed(ids, &table, scale)?)
}

/// `linear_add_rms_norm(x, W, residual)`: `[sum, normed]`.
fn product_norm<B: Backend>(b: &B, (m, k, n): (usize, usize, usize), inputs: &[Vec<f32>; 4]) -> Result<[Vec<f32>; 2]> {
    let [x, w, residual, gain] = inputs;
    let (x, w, residual) = (b.upload(x, m, k)?, weight(b, w, &[n, k])?, b.upload(residual, m, n)?);
    let gain = weight(b, gain, &[n])?;
    let (sum, normed) = b.linear_add_rms_norm(&x, &w, &residual, &gain, 0.0, 1e-5)?;
    Ok([b.download(&sum)?, b.download(&normed)?])
}

/// `linear_gated(x, W)` with each gate.
fn product_gates<B: Backend>(b: &B, (m, k, f): (usize, usize, usize), x: &[f32], w: &[f32]) -> Result<[Vec<f32>; 2]> {
    let (x, w) = (b.upload(x, m, k)?, weight(b, w, &[2 * f, k])?);
    Ok([b.download(&b.linear_gated(&x, &w, Gate::Silu)?)?, b.download(&b.linear_gated(&x, &w, Gate::GeluTanh)?)?])
}

/// Decode steps of the cached-attention script.
const DECODE_STEPS: usize = 4;

/// The cached-attention script: two prompt groups (prefixes of 300 and 17 tokens, prefilled in one call), four
/// sequences (two on each prefix, so that a sequence reading its sibling's part would show), four decode steps;
/// rope applied first, as the model does. Returns the rotated prefill rows, the prefill's attention, and the
/// decode steps' attention (all steps, row after row).
/// The prompt groups of a cached-attention case: each prefix's length and how many sequences continue it, and the
/// tokens of each sequence's continuation, prefilled in one call after the prefixes (0: none).
struct Groups {
    prefixes: &'static [usize],
    sequences: &'static [usize],
    continuation: usize,
}

/// Two groups of two sequences, one prefix longer than a split of the fast kernel.
const TWO_GROUPS: Groups = Groups { prefixes: &[300, 17], sequences: &[2, 2], continuation: 0 };

impl Groups {
    /// The rows of each call: the prefixes, the continuations, then one per sequence and decode step.
    fn calls(&self) -> Vec<Vec<CachedRow>> {
        let owners: Vec<usize> = (0..self.prefixes.len()).flat_map(|g| vec![g; self.sequences[g]]).collect();
        let prefill = (0..self.prefixes.len())
            .flat_map(|g| (0..self.prefixes[g]).map(move |p| CachedRow { stream: Stream::Prefix(g), position: p }))
            .collect();
        let continuation = owners
            .iter()
            .enumerate()
            .flat_map(|(s, &g)| {
                (0..self.continuation)
                    .map(move |i| CachedRow { stream: Stream::Sequence(s), position: self.prefixes[g] + i })
            })
            .collect::<Vec<_>>();
        let decode = |step: usize| -> Vec<CachedRow> {
            let position = |g: usize| self.prefixes[g] + self.continuation + step;
            owners
                .iter()
                .enumerate()
                .map(|(s, &g)| CachedRow { stream: Stream::Sequence(s), position: position(g) })
                .collect()
        };
        std::iter::once(prefill)
            .chain(Some(continuation).filter(|c| !c.is_empty()))
            .chain((0..DECODE_STEPS).map(decode))
            .collect()
    }

    fn layout(&self, heads: HeadShape) -> KvLayout {
        let own = self.continuation + DECODE_STEPS;
        KvLayout {
            layers: 2,
            kv_heads: heads.kv_heads,
            head_dim: heads.head_dim,
            prefixes: self.prefixes.to_vec(),
            sequences: (0..self.prefixes.len()).flat_map(|g| vec![(g, own); self.sequences[g]]).collect(),
        }
    }
}

/// The rotated prefix rows, their attention, and the attention of every later row, through a cache of `groups`.
fn cached_attention<B: Backend>(
    b: &B,
    heads: HeadShape,
    scoring: Scoring,
    (groups, qkv_rows): (&Groups, &[Vec<f32>]),
    inv_freq: &[f32],
) -> Result<[Vec<f32>; 3]> {
    let mut cache = b.kv_cache(&groups.layout(heads))?;
    let inv_freq = b.upload(inv_freq, 1, inv_freq.len())?;
    let calls = groups.calls();
    let mut parts = [Vec::new(), Vec::new(), Vec::new()];
    for (call, rows) in calls.iter().enumerate() {
        let prepared = b.cache_rows(&cache, rows)?;
        let qkv = b.upload(&qkv_rows[call], rows.len(), heads.qkv_width())?;
        let rotated = b.rope(&qkv, &prepared, heads, &inv_freq)?;
        // Layer 1 of the cache, so that the layer offset is exercised.
        let attended = b.download(&b.attention_cached(&rotated, &mut cache, 1, &prepared, heads, scoring)?)?;
        if call == 0 {
            parts[0] = b.download(&rotated)?;
            parts[1] = attended;
        } else {
            parts[2].extend(attended);
        }
    }
    Ok(parts)
}

/// The cached-attention script with the QKV product, rope and the cache store in one call
/// (`linear_rope_store`, then `attend_cached`): the rotated QKV rows of every call, and their attention.
fn rope_store_attention<B: Backend>(
    b: &B,
    heads: HeadShape,
    (x_rows, hidden): (&[Vec<f32>], usize),
    (w, bias): (&[f32], Option<&[f32]>),
    inv_freq: &[f32],
) -> Result<[Vec<f32>; 2]> {
    let mut cache = b.kv_cache(&TWO_GROUPS.layout(heads))?;
    let inv_freq = b.upload(inv_freq, 1, inv_freq.len())?;
    let w = weight(b, w, &[heads.qkv_width(), hidden])?;
    let bias = bias.map(|v| weight(b, v, &[heads.qkv_width()])).transpose()?;
    let mut parts = [Vec::new(), Vec::new()];
    for (call, rows) in TWO_GROUPS.calls().iter().enumerate() {
        let prepared = b.cache_rows(&cache, rows)?;
        let x = b.upload(&x_rows[call], rows.len(), hidden)?;
        let qkv = b.linear_rope_store(&x, &w, bias.as_ref(), &mut cache, 1, &prepared, heads, &inv_freq)?;
        let attended = b.attend_cached(&qkv, &mut cache, 1, &prepared, heads, Scoring::full(heads.head_dim))?;
        parts[0].extend(b.download(&qkv)?);
        parts[1].extend(b.download(&attended)?);
    }
    Ok(parts)
}

/// The share of rows whose sampled token differs from the reference's.
fn token_disagreement(got: &[u32], want: &[u32]) -> Measure {
    same_length("tokens", got.len(), want.len())?;
    let differ = got.iter().zip(want).filter(|(g, w)| g != w).count();
    Ok(differ as f64 / want.len().max(1) as f64)
}

/// The sampling cases and their parameters.
fn sampling_cases(vocab: usize) -> [(&'static str, SamplingParams); 6] {
    [
        ("sample_greedy", SamplingParams::greedy()),
        ("sample_top_k", SamplingParams { temperature: 0.7, top_k: 50, top_p: 1.0, greedy: false }),
        ("sample_top_k_top_p", SamplingParams { temperature: 1.3, top_k: 200, top_p: 0.9, greedy: false }),
        ("sample_full", SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, greedy: false }),
        ("sample_top_p", SamplingParams { temperature: 1.0, top_k: 0, top_p: 0.8, greedy: false }),
        ("sample_top_k_past_vocab", SamplingParams { temperature: 0.9, top_k: 2 * vocab, top_p: 1.0, greedy: false }),
    ]
}

/// The LLM operations `only` chooses against the reference; `quick` keeps the small shapes only.
pub fn cases<B: Backend>(
    subject: &B,
    label: &str,
    quick: bool,
    seed: u64,
    only: &Selection,
) -> Result<Vec<CaseResult>> {
    let mut cases = Cases { label, results: Vec::new() };
    if only.wants(&["rms_norm", "add_rms_norm", "add_rms_norm_sum"]) {
        norm_cases(subject, &mut cases, quick, seed)?;
    }
    if only.wants(&["rms_norm_offset", "add_rms_norm_offset"]) {
        offset_norm_cases(subject, &mut cases, seed)?;
    }
    if only.wants(&["head_rms_norm"]) {
        head_norm_cases(subject, &mut cases, seed)?;
    }
    if only.wants(&["silu_mul", "gelu_tanh_mul", "add_rows", "mean_rows"]) {
        row_cases(subject, &mut cases, seed)?;
    }
    if only.wants(&["embed", "embed_scaled"]) {
        embed_cases(subject, &mut cases, seed)?;
    }
    if only.wants(&["rope", "attention_cached_prefill", "attention_cached_decode"]) {
        cached_attention_cases(subject, &mut cases, quick, seed)?;
    }
    if only.wants(&["attention_window_prefill", "attention_window_decode"]) {
        window_attention_cases(subject, &mut cases, seed)?;
    }
    if only.wants(&["attention_shared_prefix", "attention_shared_prefix_direct"]) {
        shared_prefix_attention_cases(subject, &mut cases, quick, seed)?;
    }
    product_cases(subject, &mut cases, quick, seed, only)?;
    let names = sampling_cases(0).map(|(name, _)| name);
    if only.wants(&names) {
        sample_cases(subject, &mut cases, quick, seed, only)?;
    }
    Ok(cases.results)
}

fn norm_cases<B: Backend>(subject: &B, cases: &mut Cases, quick: bool, seed: u64) -> Result<()> {
    let cpu = CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "rms_norm");
    let norm_shapes: &[(usize, usize)] = if quick { &[(3, 100), (4, 4096)] } else { &[(3, 100), (9, 4096), (2, 9000)] };
    for &(rows, cols) in norm_shapes {
        let (x, delta, gain) =
            (inputs.values(rows * cols, 2.0), inputs.values(rows * cols, 1.0), inputs.values(cols, 1.0));
        let want = norms(&cpu, &x, &delta, &gain, 0.0, rows)?;
        let got = norms(subject, &x, &delta, &gain, 0.0, rows)?;
        for (i, kernel) in ["rms_norm", "add_rms_norm", "add_rms_norm_sum"].into_iter().enumerate() {
            cases.push(kernel, format!("[{rows}, {cols}]"), worst_row_error(&got[i], &want[i], cols), OP_TOLERANCE);
        }
    }
    Ok(())
}

fn offset_norm_cases<B: Backend>(subject: &B, cases: &mut Cases, seed: u64) -> Result<()> {
    let cpu = CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "rms_norm_offset");
    // Gemma's gains `1 + weight`, with weights around 0 as its checkpoints store them.
    let (rows, cols) = (5, 640);
    let (x, delta, gain) = (inputs.values(rows * cols, 2.0), inputs.values(rows * cols, 1.0), inputs.values(cols, 0.5));
    let (want, got) = (norms(&cpu, &x, &delta, &gain, 1.0, rows)?, norms(subject, &x, &delta, &gain, 1.0, rows)?);
    for (i, kernel) in ["rms_norm_offset", "add_rms_norm_offset"].into_iter().enumerate() {
        let error = worst_row_error(&got[i], &want[i], cols);
        cases.push(kernel, format!("[{rows}, {cols}], gains 1 + w"), error, OP_TOLERANCE);
    }
    Ok(())
}

fn head_norm_cases<B: Backend>(subject: &B, cases: &mut Cases, seed: u64) -> Result<()> {
    let cpu = CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "head_rms_norm");
    for (heads, kv_heads, head_dim) in [(4, 1, 256), (8, 2, 64), (3, 1, 80)] {
        let shape = HeadShape { heads, kv_heads, head_dim };
        let rows = 9;
        let qkv = inputs.values(rows * shape.qkv_width(), 3.0);
        let (q_gain, k_gain) = (inputs.values(head_dim, 0.5), inputs.values(head_dim, 0.5));
        let want = head_norms(&cpu, &qkv, shape, &q_gain, &k_gain)?;
        let got = head_norms(subject, &qkv, shape, &q_gain, &k_gain)?;
        let described = format!("{rows} rows, {heads} heads, {kv_heads} kv, d {head_dim}");
        cases.push("head_rms_norm", described, worst_row_error(&got, &want, shape.qkv_width()), OP_TOLERANCE);
    }
    Ok(())
}

fn row_cases<B: Backend>(subject: &B, cases: &mut Cases, seed: u64) -> Result<()> {
    let cpu = CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "silu_mul");
    let (rows, cols) = (7, 2 * 300);
    let (x, offsets) = (inputs.values(rows * cols, 3.0), inputs.values(rows * cols, 1.0));
    let (want, got) = (row_ops(&cpu, &x, rows, cols, &offsets)?, row_ops(subject, &x, rows, cols, &offsets)?);
    // The gates' outputs are half as wide as their inputs.
    let widths = [cols / 2, cols / 2, cols, cols];
    for (i, kernel) in ["silu_mul", "gelu_tanh_mul", "add_rows", "mean_rows"].into_iter().enumerate() {
        cases.push(kernel, format!("[{rows}, {cols}]"), worst_row_error(&got[i], &want[i], widths[i]), OP_TOLERANCE);
    }
    Ok(())
}

fn embed_cases<B: Backend>(subject: &B, cases: &mut Cases, seed: u64) -> Result<()> {
    let cpu = CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "embed");
    let (vocab, dim) = (1000, 96);
    let table = inputs.values(vocab * dim, 1.0);
    let ids: Vec<u32> = (0..37u32).map(|i| (i * 271 + 13) % vocab as u32).collect();
    let (want, got) = (embedded(&cpu, &table, vocab, &ids, 1.0)?, embedded(subject, &table, vocab, &ids, 1.0)?);
    cases.push("embed", format!("{} ids of [{vocab}, {dim}]", ids.len()), worst_row_error(&got, &want, dim), 0.0);
    // Gemma's scale sqrt(640), which a bf16 backend rounds to bf16 as HF does for bf16 weights.
    let scale = 640f32.sqrt();
    let (want, got) = (embedded(&cpu, &table, vocab, &ids, scale)?, embedded(subject, &table, vocab, &ids, scale)?);
    let described = format!("{} ids of [{vocab}, {dim}], scale sqrt(640)", ids.len());
    cases.push("embed_scaled", described, worst_row_error(&got, &want, dim), OP_TOLERANCE);
    Ok(())
}

fn cached_attention_cases<B: Backend>(subject: &B, cases: &mut Cases, quick: bool, seed: u64) -> Result<()> {
    let cpu = CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "attention_cached");
    let head_shapes: &[(usize, usize, usize)] = if quick {
        &[(8, 2, 64), (4, 1, 128)]
    } else {
        &[(8, 2, 64), (4, 4, 128), (14, 2, 64), (4, 1, 256), (2, 1, 80)]
    };
    for &(heads, kv_heads, head_dim) in head_shapes {
        let shape = HeadShape { heads, kv_heads, head_dim };
        let qkv: Vec<Vec<f32>> =
            TWO_GROUPS.calls().iter().map(|rows| inputs.values(rows.len() * shape.qkv_width(), 2.0)).collect();
        let inv_freq: Vec<f32> = (0..head_dim / 2).map(|i| 500000f32.powf(-2.0 * i as f32 / head_dim as f32)).collect();
        let scoring = Scoring::full(head_dim);
        let want = cached_attention(&cpu, shape, scoring, (&TWO_GROUPS, &qkv), &inv_freq)?;
        let got = cached_attention(subject, shape, scoring, (&TWO_GROUPS, &qkv), &inv_freq)?;
        let described = format!("{heads} heads, {kv_heads} kv, d {head_dim}");
        let width = heads * head_dim;
        let rope_error = worst_row_error(&got[0], &want[0], shape.qkv_width());
        cases.push("rope", format!("{described}; 317 rows"), rope_error, OP_TOLERANCE);
        cases.push(
            "attention_cached_prefill",
            format!("{described}; prefixes of 300 and 17 tokens in one call"),
            worst_row_error(&got[1], &want[1], width),
            OP_TOLERANCE,
        );
        cases.push(
            "attention_cached_decode",
            format!("{described}; 4 sequences, 2 per prefix, {DECODE_STEPS} steps"),
            worst_row_error(&got[2], &want[2], width),
            OP_TOLERANCE,
        );
    }
    Ok(())
}

fn window_attention_cases<B: Backend>(subject: &B, cases: &mut Cases, seed: u64) -> Result<()> {
    let cpu = CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "attention_window");
    // Sliding windows (Gemma 3): 40 keys at head size 256, so that a row past 296 leaves its first split of 256 keys
    // empty, and 5 keys, fewer than a sequence's prefix, so that decoding rows see only the prefix's tail; with a
    // query scale other than head_dim^-0.5.
    for (heads, kv_heads, head_dim, window) in [(4, 1, 256, 40), (8, 2, 64, 5)] {
        let shape = HeadShape { heads, kv_heads, head_dim };
        let qkv: Vec<Vec<f32>> =
            TWO_GROUPS.calls().iter().map(|rows| inputs.values(rows.len() * shape.qkv_width(), 2.0)).collect();
        let inv_freq: Vec<f32> = (0..head_dim / 2).map(|i| 10000f32.powf(-2.0 * i as f32 / head_dim as f32)).collect();
        let scoring = Scoring { scale: 0.3 / (head_dim as f32).sqrt(), window: Some(window) };
        let want = cached_attention(&cpu, shape, scoring, (&TWO_GROUPS, &qkv), &inv_freq)?;
        let got = cached_attention(subject, shape, scoring, (&TWO_GROUPS, &qkv), &inv_freq)?;
        let described = format!("{heads} heads, {kv_heads} kv, d {head_dim}, window {window}");
        let width = heads * head_dim;
        cases.push(
            "attention_window_prefill",
            format!("{described}; prefixes of 300 and 17 tokens in one call"),
            worst_row_error(&got[1], &want[1], width),
            OP_TOLERANCE,
        );
        cases.push(
            "attention_window_decode",
            format!("{described}; 4 sequences, 2 per prefix, {DECODE_STEPS} steps"),
            worst_row_error(&got[2], &want[2], width),
            OP_TOLERANCE,
        );
    }
    Ok(())
}

/// Many sequences over a few prefixes, as a GLOV step has them: the fast path's shared-prefix ("cascade") attention
/// reads a group's prefix once per tile of up to 32 of its rows (and pass of the vectors a block holds). Groups of 11
/// (the continuation's 33 rows: two tiles; two passes at 14 heads over 2), 3 and 2 sequences over prefixes of
/// 300, 100 and 64 keys (tiles of 2, 1 and 1 splits in one call), a group of 3 over 17 keys and (but in a quick run)
/// a lone sequence over 520 (both outside the cascade); each sequence prefills a continuation of 3 tokens, then
/// decodes. Windows of 200 and 40 keys cut into the longer prefixes.
fn shared_prefix_attention_cases<B: Backend>(subject: &B, cases: &mut Cases, quick: bool, seed: u64) -> Result<()> {
    const FULL: Groups = Groups { prefixes: &[300, 100, 17, 520, 64], sequences: &[11, 3, 3, 1, 2], continuation: 3 };
    const QUICK: Groups = Groups { prefixes: &[300, 100, 17, 64], sequences: &[11, 3, 3, 2], continuation: 3 };
    // Every group's sequences beside their siblings over a prefix the cascade takes: each later call is covered by
    // tiles, and the fast path's attention is attention_prefix_* alone (its direct mode).
    const ALL_SHARED: Groups = Groups { prefixes: &[300, 100, 64], sequences: &[11, 3, 2], continuation: 3 };
    let groups = if quick { &QUICK } else { &FULL };
    let cpu = CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "attention_shared_prefix");
    let shapes: &[(usize, usize, usize, Option<usize>)] = if quick {
        &[(14, 2, 64, Some(200))]
    } else {
        &[(14, 2, 64, Some(200)), (8, 2, 128, None), (4, 1, 256, Some(40))]
    };
    let runs = shapes.iter().map(|&shape| ("attention_shared_prefix", groups, shape));
    let direct_shapes: &[(usize, usize, usize, Option<usize>)] =
        if quick { &[(8, 2, 128, Some(120))] } else { &[(8, 2, 128, Some(120)), (14, 2, 64, None), (4, 1, 256, None)] };
    let direct = direct_shapes.iter().map(|&shape| ("attention_shared_prefix_direct", &ALL_SHARED, shape));
    for (case, groups, (heads, kv_heads, head_dim, window)) in runs.chain(direct) {
        let shape = HeadShape { heads, kv_heads, head_dim };
        let qkv: Vec<Vec<f32>> =
            groups.calls().iter().map(|rows| inputs.values(rows.len() * shape.qkv_width(), 2.0)).collect();
        let inv_freq: Vec<f32> = (0..head_dim / 2).map(|i| 10000f32.powf(-2.0 * i as f32 / head_dim as f32)).collect();
        let scoring = Scoring { window, ..Scoring::full(head_dim) };
        let want = cached_attention(&cpu, shape, scoring, (groups, &qkv), &inv_freq)?;
        let got = cached_attention(subject, shape, scoring, (groups, &qkv), &inv_freq)?;
        let window = window.map_or(String::new(), |w| format!(", window {w}"));
        cases.push(
            case,
            format!(
                "{heads} heads, {kv_heads} kv, d {head_dim}{window}; {} sequences over {} prefixes, 3 + {DECODE_STEPS} \
                 tokens",
                groups.sequences.iter().sum::<usize>(),
                groups.prefixes.len()
            ),
            worst_row_error(&got[2], &want[2], heads * head_dim),
            OP_TOLERANCE,
        );
    }
    Ok(())
}

/// The products whose epilogue does a block's next step: the residual add and RMS norm, and the MLP's gates. A
/// decode-sized product (split K, K not a multiple of 8, N off the tile grid) and a prefill-sized one (two row
/// tiles, each finished by its own last column tile).
fn fused_product_cases<B: Backend>(subject: &B, cases: &mut Cases, seed: u64) -> Result<()> {
    let cpu = CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "linear_fused");
    for (m, k, n) in [(5, 1100, 200), (70, 256, 130)] {
        let scale = 1.0 / (k as f32).sqrt();
        let values =
            [inputs.values(m * k, 1.0), inputs.values(n * k, scale), inputs.values(m * n, 1.0), inputs.values(n, 1.0)];
        let want = product_norm(&cpu, (m, k, n), &values)?;
        let got = product_norm(subject, (m, k, n), &values)?;
        let described = format!("[{m}, {k}] x [{n}, {k}]^T");
        cases.push("linear_add_rms_norm_sum", described.clone(), worst_row_error(&got[0], &want[0], n), OP_TOLERANCE);
        cases.push("linear_add_rms_norm", described, worst_row_error(&got[1], &want[1], n), OP_TOLERANCE);
        let (x, w) = (inputs.values(m * k, 1.0), inputs.values(2 * n * k, scale));
        let (want, got) = (product_gates(&cpu, (m, k, n), &x, &w)?, product_gates(subject, (m, k, n), &x, &w)?);
        let described = format!("[{m}, {k}] x [2 x {n}, {k}]^T");
        cases.push("linear_silu", described.clone(), worst_row_error(&got[0], &want[0], n), OP_TOLERANCE);
        cases.push("linear_gelu_tanh", described, worst_row_error(&got[1], &want[1], n), OP_TOLERANCE);
    }
    Ok(())
}

/// The fused products again, on a backend whose products are forced into their 128 x 128 tiles (which the cases'
/// shapes are too small to take by shape).
pub fn large_tile_cases<B: Backend>(
    subject: &B,
    label: &str,
    quick: bool,
    seed: u64,
    only: &Selection,
) -> Result<Vec<CaseResult>> {
    let mut cases = Cases { label, results: Vec::new() };
    product_cases(subject, &mut cases, quick, seed, only)?;
    Ok(cases.results)
}

/// The fused products `only` chooses.
fn product_cases<B: Backend>(subject: &B, cases: &mut Cases, quick: bool, seed: u64, only: &Selection) -> Result<()> {
    if only.wants(&["linear_add_rms_norm", "linear_add_rms_norm_sum", "linear_silu", "linear_gelu_tanh"]) {
        fused_product_cases(subject, cases, seed)?;
    }
    if only.wants(&["linear_rope_store", "linear_rope_store_attention"]) {
        rope_store_cases(subject, cases, quick, seed)?;
    }
    Ok(())
}

/// The QKV product with rope and the cache store in its epilogue, through the cached-attention script (prefill of
/// 317 rows, then 4 decode steps of 4 rows: split K), with and without a bias (Qwen2's). A tile's halves hold part
/// of a head's rotary pairs or several heads' (64 x 256 tiles in decoding take 128 pairs: two heads of 128, four
/// of 64); 5 + 2 heads of 64 are 224 pairs, which end inside a tile of every shape but the 64 x 64 one; 3 + 6 heads
/// of 96 (48 pairs each, 432 in all) straddle the tiles of every shape and end inside the last one.
fn rope_store_cases<B: Backend>(subject: &B, cases: &mut Cases, quick: bool, seed: u64) -> Result<()> {
    let cpu = CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "linear_rope_store");
    // (heads, kv heads, head size, bias)
    let head_shapes: &[(usize, usize, usize, bool)] = if quick {
        &[(5, 1, 64, true), (4, 1, 128, false), (3, 3, 96, true)]
    } else {
        &[(5, 1, 64, true), (4, 1, 128, false), (3, 3, 96, true), (8, 2, 64, true), (4, 4, 256, false)]
    };
    let hidden = 1040;
    for &(heads, kv_heads, head_dim, with_bias) in head_shapes {
        let shape = HeadShape { heads, kv_heads, head_dim };
        let x: Vec<Vec<f32>> = TWO_GROUPS.calls().iter().map(|rows| inputs.values(rows.len() * hidden, 1.0)).collect();
        let w = inputs.values(shape.qkv_width() * hidden, 2.0 / (hidden as f32).sqrt());
        let bias = with_bias.then(|| inputs.values(shape.qkv_width(), 0.5));
        let inv_freq: Vec<f32> = (0..head_dim / 2).map(|i| 10000f32.powf(-2.0 * i as f32 / head_dim as f32)).collect();
        let weights = (w.as_slice(), bias.as_deref());
        let want = rope_store_attention(&cpu, shape, (&x, hidden), weights, &inv_freq)?;
        let got = rope_store_attention(subject, shape, (&x, hidden), weights, &inv_freq)?;
        let described =
            format!("{heads} heads, {kv_heads} kv, d {head_dim}{}", if bias.is_some() { ", bias" } else { "" });
        let qkv_error = worst_row_error(&got[0], &want[0], shape.qkv_width());
        cases.push("linear_rope_store", format!("{described}; 317 rows, then 4 x 4"), qkv_error, OP_TOLERANCE);
        let attention_error = worst_row_error(&got[1], &want[1], heads * head_dim);
        cases.push("linear_rope_store_attention", described, attention_error, OP_TOLERANCE);
    }
    Ok(())
}

fn sample_cases<B: Backend>(subject: &B, cases: &mut Cases, quick: bool, seed: u64, only: &Selection) -> Result<()> {
    let cpu = CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "sample");
    // Llama 3's vocabulary and Gemma 3's (a power of two).
    let vocabs: &[usize] = if quick { &[5000] } else { &[128_256, 262_144] };
    for &vocab in vocabs {
        let rows = 12;
        let logits = inputs.values(rows * vocab, 8.0);
        let rngs: Vec<SequenceRng> = (0..rows as u64).map(|s| SequenceRng::new(seed, s)).collect();
        let steps: Vec<u64> = (0..rows as u64).map(|s| s * 3).collect();
        for (name, params) in sampling_cases(vocab).into_iter().filter(|(name, _)| only.wants(&[name])) {
            let want = cpu.sample(&cpu.upload(&logits, rows, vocab)?, &params, &rngs, &steps)?;
            let got = subject.sample(&subject.upload(&logits, rows, vocab)?, &params, &rngs, &steps)?;
            cases.push(name, format!("{rows} rows of {vocab}"), token_disagreement(&got, &want), 0.0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_against_itself_is_exact() {
        let results = cases(&CpuBackend::new(), "cpu", true, 3, &Selection::all()).unwrap();
        assert!(results.len() >= 20);
        for r in &results {
            assert!(r.passed && r.error == 0.0, "{r:?}");
        }
    }

    #[test]
    fn token_disagreement_is_a_share_and_fails_on_other_lengths() {
        assert_eq!(token_disagreement(&[1, 2, 3, 4], &[1, 2, 0, 4]), Ok(0.25));
        assert_eq!(token_disagreement(&[1, 2], &[1, 2, 3]).unwrap_err(), "the output has 2 tokens, the reference 3");
    }
}
