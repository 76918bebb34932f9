//! Next-token sampling for batched generation.
//!
//! The filtering follows the warpers that transformers' `generate()` applies when `do_sample=True`, in the same
//! order: `TemperatureLogitsWarper`, then `TopKLogitsWarper`, then `TopPLogitsWarper`, then a softmax. The draw
//! itself is an inverse-CDF lookup driven by [`SequenceRng`], a counter-based generator keyed by
//! `(seed, sequence index)`: the uniform used at step `t` of a sequence depends only on `(seed, sequence, t)`, so a
//! sequence produces the same tokens whatever batch it is decoded in, at whatever position, next to whatever other
//! sequences.
//!
//! Everything here is defined precisely enough for a GPU kernel to reproduce it: see [`SequenceRng`] for the exact
//! bit-level random stream, [`filtered_probabilities`] for the filtering and [`sample_from_probabilities`] for the
//! draw.

use anyhow::{Result, bail};
use rayon::prelude::*;

/// How the next token is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// Logits are divided by this before filtering; 0 means greedy (as in vLLM and llama.cpp), and a negative one
    /// is an error unless `greedy`.
    pub temperature: f32,
    /// Keep only the `top_k` highest logits (and everything tied with the `top_k`-th); 0 turns the filter off.
    pub top_k: usize,
    /// Nucleus filtering: keep the smallest set of most likely tokens whose probability reaches `top_p`; in (0, 1],
    /// and 1.0 turns the filter off.
    pub top_p: f32,
    /// Take the highest logit (the first one on ties) and ignore the other fields.
    pub greedy: bool,
}

impl Default for SamplingParams {
    /// transformers' `generate()` defaults with `do_sample=True`: temperature 1.0, top-k 50, top-p 1.0.
    fn default() -> Self {
        SamplingParams { temperature: 1.0, top_k: 50, top_p: 1.0, greedy: false }
    }
}

impl SamplingParams {
    /// Greedy decoding (argmax); the other fields keep their defaults and are not used.
    pub fn greedy() -> Self {
        SamplingParams { greedy: true, ..SamplingParams::default() }
    }

    /// Checks the values a command line may have supplied. `top_k` has no invalid value (0 means "off").
    pub fn validate(&self) -> Result<()> {
        let temperature_ok = self.temperature.is_finite() && self.temperature >= 0.0;
        if !(self.greedy || temperature_ok) {
            bail!("--temperature must be 0 (greedy decoding) or a positive number (got {})", self.temperature);
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            bail!("--top-p must be in (0, 1] (got {}); 1 disables nucleus filtering", self.top_p);
        }
        Ok(())
    }

    /// Whether the most likely token is taken: `greedy`, or a temperature of 0.
    pub fn is_greedy(&self) -> bool {
        self.greedy || self.temperature == 0.0
    }

    /// Whether the top-k filter does anything on a vocabulary of `vocab` entries.
    fn top_k_active(&self, vocab: usize) -> bool {
        self.top_k != 0 && self.top_k < vocab
    }

    /// Whether the top-p filter runs (transformers only adds `TopPLogitsWarper` for `top_p < 1`).
    fn top_p_active(&self) -> bool {
        self.top_p < 1.0
    }
}

/// SplitMix64's increment, 2^64 / golden ratio.
pub const SPLITMIX_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (Stafford's "Mix13"), a bijection on 64-bit words; all arithmetic wraps mod 2^64:
///
/// ```text
/// z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
/// z = (z ^ (z >> 27)) * 0x94D049BB133111EB
/// z =  z ^ (z >> 31)
/// ```
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random stream of one sequence: a counter-based generator keyed by (seed, sequence index), so the draw at
/// step t depends only on (seed, sequence, t) — never on the batch size, the sequence's position in the batch, or
/// other sequences.
///
/// Exact definition (all arithmetic on `u64`, wrapping mod 2^64; `G` = [`SPLITMIX_GAMMA`], `mix` = [`mix64`]):
///
/// ```text
/// key           = mix( mix(seed + G) ^ mix(sequence + 2*G) )
/// bits(step)    = mix( key + (step + 1) * G )
/// uniform(step) = (bits(step) >> 11) * 2^-53          // as f64, in [0, 1)
/// ```
///
/// `bits(0), bits(1), …` is exactly the output of a SplitMix64 generator whose state starts at `key`, so each
/// sequence sees a well-mixed stream, and any step can be computed directly without walking the ones before it.
/// The top 53 bits become the mantissa of the uniform, so every value is a multiple of 2^-53 and 1.0 never occurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SequenceRng {
    key: u64,
}

impl SequenceRng {
    pub fn new(seed: u64, sequence: u64) -> Self {
        let seed_part = mix64(seed.wrapping_add(SPLITMIX_GAMMA));
        let sequence_part = mix64(sequence.wrapping_add(SPLITMIX_GAMMA.wrapping_mul(2)));
        SequenceRng { key: mix64(seed_part ^ sequence_part) }
    }

    /// The 64-bit key derived from (seed, sequence), for handing to a kernel.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// The raw 64 random bits of `step`.
    #[inline]
    pub fn bits(&self, step: u64) -> u64 {
        mix64(self.key.wrapping_add(step.wrapping_add(1).wrapping_mul(SPLITMIX_GAMMA)))
    }

    /// The uniform in [0, 1) used at `step`.
    #[inline]
    pub fn uniform(&self, step: u64) -> f64 {
        const TWO_POW_MINUS_53: f64 = 1.0 / (1u64 << 53) as f64;
        (self.bits(step) >> 11) as f64 * TWO_POW_MINUS_53
    }
}

/// The threshold that `TopPLogitsWarper` compares cumulative probabilities against: `1 - top_p`, computed in f64
/// and rounded to f32 (PyTorch compares a float32 tensor with a Python float in float32).
///
/// `top_p` is widened through its shortest decimal form, so `--top-p 0.9` gives the f64 0.9 that Python would hold,
/// not the f32 0.89999998; f32(1 - 0.9) = 0.1 whereas f32(1 - 0.89999998) = 0.10000002, and the two can keep
/// different token sets.
pub fn top_p_threshold(top_p: f32) -> f32 {
    let wide: f64 = top_p.to_string().parse().unwrap_or(top_p as f64);
    (1.0 - wide) as f32
}

/// Index of the largest logit, the first one on ties (as `torch.argmax`); NaN counts as -inf, and a row without any
/// number above -inf (or an empty row) gives 0.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best as u32
}

/// Softmax over `scores` (no NaN), rounded to f32. The shift by the maximum and the division are done per token; the
/// exponentials and their sum in f64, summed in index order.
///
/// Degenerate rows: if the maximum is +inf, the +inf entries share the mass equally (the limit of a softmax); if
/// every entry is -inf, the result is a one-hot at index 0, the token [`argmax`] picks for such a row.
fn softmax(scores: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; scores.len()];
    if scores.is_empty() {
        return out;
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        out[0] = 1.0;
        return out;
    }
    if max == f32::INFINITY {
        let count = scores.iter().filter(|&&v| v == f32::INFINITY).count();
        let share = (1.0 / count as f64) as f32;
        for (o, &v) in out.iter_mut().zip(scores) {
            if v == f32::INFINITY {
                *o = share;
            }
        }
        return out;
    }
    // exp(-inf) = 0, so filtered tokens get exactly 0.
    let exps: Vec<f64> = scores.iter().map(|&v| ((v - max) as f64).exp()).collect();
    let sum: f64 = exps.iter().sum();
    for (o, e) in out.iter_mut().zip(exps) {
        *o = (e / sum) as f32;
    }
    out
}

/// `TopKLogitsWarper`: with `k = min(top_k, vocab)` and `kth` the k-th largest score, every score `< kth` becomes
/// -inf. Everything tied with the k-th value survives, so more than k tokens may remain.
fn apply_top_k(scores: &mut [f32], top_k: usize) {
    let k = top_k.min(scores.len());
    if k == 0 || k == scores.len() {
        return;
    }
    let mut sorted = scores.to_vec();
    let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let kth = *kth;
    for v in scores.iter_mut() {
        if *v < kth {
            *v = f32::NEG_INFINITY;
        }
    }
}

/// `TopPLogitsWarper` with `min_tokens_to_keep = 1`.
///
/// The scores are sorted ascending, their softmax accumulated from the smallest up, and every token whose cumulative
/// probability is `<= 1 - top_p` (see [`top_p_threshold`]) becomes -inf, except the last (largest) one, which is
/// always kept. As in PyTorch on the CPU, the probabilities are float32 and the running sum is kept in f64 and
/// rounded to float32 at each position before the comparison.
///
/// Tokens that are already -inf sort first with probability 0 and stay removed; they are skipped here. Ties are
/// ordered by index (lower index first, so the lower-index members of a tied group are the first to go when the cut
/// falls inside it). That is the order `torch.sort` produces on the CPU for rows of up to 16 entries; for longer
/// rows its unstable sort orders ties arbitrarily. The number of tied tokens kept is the same either way, only which
/// of the equal-valued tokens survive can differ.
fn apply_top_p(scores: &mut [f32], top_p: f32) {
    let threshold = top_p_threshold(top_p);
    let mut order: Vec<u32> = (0..scores.len() as u32).filter(|&i| scores[i as usize] != f32::NEG_INFINITY).collect();
    if order.len() <= 1 {
        return;
    }
    order.sort_unstable_by(|&a, &b| scores[a as usize].total_cmp(&scores[b as usize]).then(a.cmp(&b)));
    let sorted: Vec<f32> = order.iter().map(|&i| scores[i as usize]).collect();
    let probs = softmax(&sorted);
    let mut cumulative = 0.0f64;
    let mut removed = 0usize;
    // The last token is always kept, so at most len - 1 are removed.
    for &p in &probs[..probs.len() - 1] {
        cumulative += p as f64;
        if cumulative as f32 > threshold {
            break;
        }
        removed += 1;
    }
    for &i in &order[..removed] {
        scores[i as usize] = f32::NEG_INFINITY;
    }
}

/// The probabilities after temperature, top-k and top-p, as HF's LogitsProcessors apply them in generate()
/// (temperature first, then top-k, then top-p); tokens filtered out get probability 0. Exposed for tests and for the
/// CUDA kernels to be compared against.
///
/// Steps, on a copy of the row:
/// 1. NaN becomes -inf.
/// 2. Temperature (when it is not 1): each logit is divided by `temperature` in f32, as `scores / temperature` does
///    in PyTorch.
/// 3. Top-k (when `0 < top_k < vocab`): see `TopKLogitsWarper`; ties with the k-th value are all kept.
/// 4. Top-p (when `top_p < 1`): see `TopPLogitsWarper`; at least one token is kept.
/// 5. Softmax, rounded to f32.
///
/// With `greedy`, the result is a one-hot at [`argmax`]. A row without any logit above -inf gives a one-hot at
/// index 0 (transformers would produce NaN there); a +inf logit takes all the mass (shared among the +inf entries).
pub fn filtered_probabilities(logits: &[f32], params: &SamplingParams) -> Vec<f32> {
    if params.is_greedy() {
        let mut out = vec![0.0f32; logits.len()];
        if !out.is_empty() {
            out[argmax(logits) as usize] = 1.0;
        }
        return out;
    }
    let temperature = params.temperature;
    let mut scores: Vec<f32> = logits
        .iter()
        .map(|&v| {
            let v = if v.is_nan() { f32::NEG_INFINITY } else { v };
            if temperature != 1.0 { v / temperature } else { v }
        })
        .collect();
    if params.top_k_active(scores.len()) {
        apply_top_k(&mut scores, params.top_k);
    }
    if params.top_p_active() {
        apply_top_p(&mut scores, params.top_p);
    }
    softmax(&scores)
}

/// The multinomial draw: inverse CDF over `probs` in index order. With `total` the f64 sum of all entries and
/// `target = u * total`, the token is the first index whose running f64 sum exceeds `target`; zero-probability tokens
/// are never chosen. If rounding leaves no such index, the last token with a positive probability is taken; a row
/// without any gives 0.
pub fn sample_from_probabilities(probs: &[f32], u: f64) -> u32 {
    let total: f64 = probs.iter().map(|&p| p as f64).sum();
    let target = u * total;
    let mut cumulative = 0.0f64;
    for (i, &p) in probs.iter().enumerate() {
        cumulative += p as f64;
        if cumulative > target {
            return i as u32;
        }
    }
    probs.iter().rposition(|&p| p > 0.0).unwrap_or(0) as u32
}

/// Picks the next token from one row of logits (f32, vocab-sized).
///
/// Greedy: [`argmax`]. Otherwise [`sample_from_probabilities`] over [`filtered_probabilities`] with
/// `rng.uniform(step)`. NaN logits count as -inf; a row with nothing above -inf gives 0.
pub fn sample(logits: &[f32], params: &SamplingParams, rng: &SequenceRng, step: u64) -> u32 {
    if params.is_greedy() || logits.is_empty() {
        return argmax(logits);
    }
    let probs = filtered_probabilities(logits, params);
    sample_from_probabilities(&probs, rng.uniform(step))
}

/// Samples a whole batch: logits [batch, vocab] row-major, each row with its own rng and step; uses rayon over rows.
///
/// `batch` is `rngs.len()`; panics if `steps` has a different length or `logits` is not `batch * vocab` long.
pub fn sample_batch(
    logits: &[f32],
    vocab: usize,
    params: &SamplingParams,
    rngs: &[SequenceRng],
    steps: &[u64],
) -> Vec<u32> {
    let batch = rngs.len();
    assert_eq!(steps.len(), batch, "sample_batch: {} steps for {batch} sequences", steps.len());
    assert_eq!(
        logits.len(),
        batch * vocab,
        "sample_batch: {} logits do not form {batch} rows of {vocab}",
        logits.len()
    );
    if vocab == 0 {
        return vec![0; batch];
    }
    logits
        .par_chunks(vocab)
        .zip(rngs.par_iter())
        .zip(steps.par_iter())
        .map(|((row, rng), &step)| sample(row, params, rng, step))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG_INF: f32 = f32::NEG_INFINITY;

    fn params(temperature: f32, top_k: usize, top_p: f32) -> SamplingParams {
        SamplingParams { temperature, top_k, top_p, greedy: false }
    }

    /// Case name, logits, temperature, top_k, top_p, expected probabilities.
    type WarperCase = (&'static str, &'static [f32], f32, usize, f32, &'static [f32]);

    /// Produced by transformers 5.24.0 (torch 2.15.0, CPU): `TemperatureLogitsWarper` (when temperature != 1),
    /// `TopKLogitsWarper` (when top_k != 0), `TopPLogitsWarper` (when top_p < 1), applied in that order to a
    /// float32 row, then `softmax`, the way `generate()` chains them with `do_sample=True`.
    #[rustfmt::skip]
    const HF_WARPER_CASES: &[WarperCase] = &[
        // Ties with the 3rd value (2.0) are all kept: 5 survivors for top_k = 3.
        ("topk_ties_at_kth", &[1.0, 3.0, 2.0, 3.0, 2.0, 0.5, 2.0, -1.0], 1.0, 3, 1.0,
            &[0.0, 0.32220247, 0.11853167, 0.32220247, 0.11853167, 0.0, 0.11853167, 0.0]),
        // The cut falls inside a group of equal logits: only part of the group is removed, lower indices first.
        ("topp_cut_inside_ties", &[1.0, 1.0, 1.0, 1.0, 1.0], 1.0, 0, 0.5,
            &[0.0, 0.0, 0.33333334, 0.33333334, 0.33333334]),
        ("topp_cut_inside_ties_mixed", &[2.0, 1.0, 0.0, 1.0, 1.0, 1.0, -0.5], 1.0, 0, 0.6,
            &[0.5761169, 0.0, 0.0, 0.0, 0.21194157, 0.21194157, 0.0]),
        ("topp_one_is_plain_softmax", &[0.3, -1.2, 2.5, 0.0, 1.1, -3.0], 1.0, 0, 1.0,
            &[0.0754638, 0.01683825, 0.68106186, 0.055904962, 0.1679478, 0.0027833441]),
        ("topk_larger_than_vocab", &[0.3, -1.2, 2.5, 0.0, 1.1, -3.0], 1.0, 100, 0.8,
            &[0.0, 0.0, 0.8021839, 0.0, 0.19781613, 0.0]),
        ("temperature_half", &[0.3, -1.2, 2.5, 0.0, 1.1, -3.0, 0.7, 1.9], 0.5, 5, 0.9,
            &[0.0, 0.0, 0.7685248, 0.0, 0.0, 0.0, 0.0, 0.23147522]),
        ("temperature_two", &[0.3, -1.2, 2.5, 0.0, 1.1, -3.0, 0.7, 1.9], 2.0, 6, 0.75,
            &[0.0, 0.0, 0.37821865, 0.0, 0.18781783, 0.0, 0.15377223, 0.28019127]),
        // top_k = 5 with only 4 finite logits: the 5th value is -inf and nothing is removed by top-k.
        ("neg_inf_entries", &[NEG_INF, 1.0, NEG_INF, 0.5, 2.0, NEG_INF, 0.0], 1.0, 5, 0.95,
            &[0.0, 0.2130973, 0.0, 0.12925005, 0.5792585, 0.0, 0.078394115]),
        ("temperature_0_7_topp_0_9", &[1.5, 0.2, -0.7, 2.2, 2.2, 0.9, -1.4, 0.05, 1.75, -0.3, 0.6, 2.0], 0.7, 0, 0.9,
            &[0.09677821, 0.0, 0.0, 0.2630705, 0.2630705, 0.041070044, 0.0, 0.0, 0.1383193, 0.0, 0.0, 0.19769149]),
        // Cumulative 0.25 is exactly 1 - top_p: `<=` removes it.
        ("topp_cumulative_equal_to_threshold", &[0.0, 0.0, 0.0, 0.0], 1.0, 0, 0.75,
            &[0.0, 0.33333334, 0.33333334, 0.33333334]),
        // The cumulative probability at index 0 is 0.100000009, one f32 step above f32(1 - 0.9) = 0.1 but below
        // 1 - 0.9f32 = 0.10000002: it is kept only with the threshold Python computes.
        ("topp_threshold_rounded_like_python", &[-2.1972263, 0.0, -15.400223], 1.0, 0, 0.9,
            &[0.099999845, 0.90000015, 0.0]),
        ("tiny_topp_keeps_one", &[0.1, 0.4, 0.2, 0.3], 1.0, 0, 0.01, &[0.0, 1.0, 0.0, 0.0]),
    ];

    #[test]
    fn filtered_probabilities_match_transformers_warpers() {
        for &(name, logits, temperature, top_k, top_p, expected) in HF_WARPER_CASES {
            let got = filtered_probabilities(logits, &params(temperature, top_k, top_p));
            assert_eq!(got.len(), expected.len(), "{name}");
            for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
                // The set of surviving tokens must match exactly; the values to float32 rounding.
                assert_eq!(g == 0.0, e == 0.0, "{name}: token {i} kept/removed differs ({g} vs {e})");
                assert!((g - e).abs() <= 2e-7, "{name}: token {i}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn top_p_threshold_uses_the_decimal_value() {
        assert_eq!(top_p_threshold(0.9), (1.0f64 - 0.9) as f32);
        assert_eq!(top_p_threshold(0.9), 0.1f32);
        assert_ne!(top_p_threshold(0.9), 1.0 - 0.9f32);
        assert_eq!(top_p_threshold(0.5), 0.5);
        assert_eq!(top_p_threshold(1.0), 0.0);
    }

    #[test]
    fn defaults_match_generate() {
        let d = SamplingParams::default();
        assert_eq!(d, SamplingParams { temperature: 1.0, top_k: 50, top_p: 1.0, greedy: false });
        d.validate().unwrap();
        SamplingParams::greedy().validate().unwrap();
    }

    #[test]
    fn greedy_picks_the_first_maximum() {
        let greedy = SamplingParams::greedy();
        let rng = SequenceRng::new(1, 2);
        let logits = [0.5, 3.0, -1.0, 3.0, 2.0];
        for step in 0..20 {
            assert_eq!(sample(&logits, &greedy, &rng, step), 1);
        }
        assert_eq!(argmax(&[-2.0, -1.0, -1.0]), 1);
        assert_eq!(filtered_probabilities(&logits, &greedy), vec![0.0, 1.0, 0.0, 0.0, 0.0]);
        // Greedy ignores temperature, even an invalid one.
        let cold = SamplingParams { temperature: 0.0, ..greedy };
        cold.validate().unwrap();
        assert_eq!(sample(&logits, &cold, &rng, 0), 1);
        // A temperature of 0 is greedy decoding, as in vLLM and llama.cpp.
        let zero = SamplingParams { temperature: 0.0, ..SamplingParams::default() };
        zero.validate().unwrap();
        for step in 0..20 {
            assert_eq!(sample(&logits, &zero, &rng, step), 1);
        }
        assert_eq!(filtered_probabilities(&logits, &zero), vec![0.0, 1.0, 0.0, 0.0, 0.0]);
        let batch = sample_batch(&[1.0, 2.0, 2.0, 7.0, 7.0, 0.0], 3, &greedy, &[rng, rng], &[0, 0]);
        assert_eq!(batch, vec![1, 0]);
    }

    #[test]
    fn nan_counts_as_negative_infinity() {
        let nan = f32::NAN;
        assert_eq!(argmax(&[nan, 1.0, nan, 1.0]), 1);
        assert_eq!(argmax(&[nan, -5.0]), 1);
        assert_eq!(argmax(&[nan, nan]), 0);
        assert_eq!(argmax(&[NEG_INF, NEG_INF, NEG_INF]), 0);
        assert_eq!(argmax(&[]), 0);

        let logits = [nan, 0.0, nan, -1.0];
        let probs = filtered_probabilities(&logits, &params(1.0, 0, 1.0));
        assert_eq!(probs[0], 0.0);
        assert_eq!(probs[2], 0.0);
        assert!((probs[1] + probs[3] - 1.0).abs() < 1e-6);
        let rng = SequenceRng::new(3, 0);
        for p in [params(1.0, 0, 1.0), params(0.7, 2, 0.9), SamplingParams::default()] {
            for step in 0..500 {
                let t = sample(&logits, &p, &rng, step);
                assert!(t == 1 || t == 3, "sampled NaN token {t}");
            }
        }
    }

    #[test]
    fn rows_without_finite_logits_do_not_panic() {
        let rng = SequenceRng::new(9, 9);
        for row in [vec![NEG_INF; 5], vec![f32::NAN; 5], vec![f32::NAN, NEG_INF, f32::NAN]] {
            for p in [SamplingParams::default(), params(0.3, 1, 0.5), params(2.0, 0, 1.0), SamplingParams::greedy()] {
                assert_eq!(sample(&row, &p, &rng, 4), 0);
                let probs = filtered_probabilities(&row, &p);
                assert_eq!(probs[0], 1.0);
                assert!(probs[1..].iter().all(|&q| q == 0.0));
            }
        }
        assert_eq!(sample(&[], &SamplingParams::default(), &rng, 0), 0);
        assert_eq!(sample_batch(&[], 0, &SamplingParams::default(), &[rng, rng], &[0, 1]), vec![0, 0]);
        // +inf takes all the mass.
        let probs = filtered_probabilities(&[1.0, f32::INFINITY, 0.0, f32::INFINITY], &params(1.0, 0, 0.9));
        assert_eq!(probs, vec![0.0, 0.5, 0.0, 0.5]);
        // A tiny temperature overflows finite logits to +inf; still a valid distribution.
        let probs = filtered_probabilities(&[1.0, 3.0, 3.0e38, 2.0], &params(1e-30, 0, 1.0));
        assert_eq!(probs, vec![0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn validate_names_the_flag() {
        params(0.0, 50, 1.0).validate().unwrap();
        for temperature in [-1.0, f32::NAN, f32::INFINITY] {
            let err = params(temperature, 50, 1.0).validate().unwrap_err().to_string();
            assert!(err.contains("--temperature"), "{err}");
        }
        for top_p in [0.0, -0.1, 1.01, f32::NAN] {
            let err = params(1.0, 50, top_p).validate().unwrap_err().to_string();
            assert!(err.contains("--top-p"), "{err}");
            let err = SamplingParams { top_p, ..SamplingParams::greedy() }.validate().unwrap_err().to_string();
            assert!(err.contains("--top-p"), "{err}");
        }
        for top_k in [0, 1, 50, usize::MAX] {
            params(0.5, top_k, 1.0).validate().unwrap();
        }
        params(1e-3, 0, 1e-6).validate().unwrap();
    }

    /// Values from an independent implementation of the documented definition (Python integers, masked to 64 bits).
    #[test]
    fn rng_matches_its_definition() {
        // mix64 is SplitMix64's output function: the first output of SplitMix64 seeded with 0.
        assert_eq!(mix64(SPLITMIX_GAMMA), 0xe220_a839_7b1d_cdaf);
        type Pinned = (u64, u64, u64, [(u64, u64, f64); 4]);
        const MAX: u64 = u64::MAX;
        #[rustfmt::skip]
        let pinned: [Pinned; 3] = [
            (0, 0, 0x7fc37233dfca105f, [
                (0, 0xd2ce134acb3773b6, 0.8234569604494177),
                (1, 0x5f1b779181118480, 0.3715128641352461),
                (1000, 0xbb16a6ac7c6248a3, 0.7308143778904049),
                (MAX, 0xa66cbce53ded532e, 0.6500967082665075),
            ]),
            (42, 7, 0xeabc0dd7500cfff0, [
                (0, 0x77881c33b2452c59, 0.4669206262790523),
                (1, 0xd0ff23070d1b3410, 0.8163930790152392),
                (1000, 0x99b0b355364c090b, 0.6003524859464023),
                (MAX, 0x0d1703ab78032f3d, 0.05113242088556247),
            ]),
            (MAX, 123456789, 0x425110037275d245, [
                (0, 0xc784d2ec7ae4e031, 0.7793704821914562),
                (1, 0x9c0bc19df9f220b8, 0.6095543871578646),
                (1000, 0xc58a3c0888fdbf71, 0.7716405411565493),
                (MAX, 0x86b43d21c3202ac9, 0.5261877257754582),
            ]),
        ];
        for (seed, sequence, key, draws) in pinned {
            let rng = SequenceRng::new(seed, sequence);
            assert_eq!(rng.key(), key, "key of ({seed}, {sequence})");
            for (step, bits, uniform) in draws {
                assert_eq!(rng.bits(step), bits, "bits of ({seed}, {sequence}, {step})");
                assert_eq!(rng.uniform(step), uniform, "uniform of ({seed}, {sequence}, {step})");
            }
        }
    }

    #[test]
    fn uniforms_are_in_range_and_streams_differ() {
        let a = SequenceRng::new(5, 0);
        let b = SequenceRng::new(5, 1);
        let c = SequenceRng::new(6, 0);
        let n = 100_000u64;
        let mut sum = 0.0;
        for step in 0..n {
            let u = a.uniform(step);
            assert!((0.0..1.0).contains(&u));
            sum += u;
        }
        // Mean of n uniforms: standard deviation sqrt(1/12/n) ~ 0.0009.
        assert!((sum / n as f64 - 0.5).abs() < 0.005, "mean {}", sum / n as f64);
        let sa: Vec<u64> = (0..64).map(|s| a.bits(s)).collect();
        let sb: Vec<u64> = (0..64).map(|s| b.bits(s)).collect();
        let sc: Vec<u64> = (0..64).map(|s| c.bits(s)).collect();
        assert!(sa.iter().zip(&sb).all(|(x, y)| x != y));
        assert!(sa.iter().zip(&sc).all(|(x, y)| x != y));
        // Not a shifted copy of each other either.
        assert!(!sb.windows(8).any(|w| sa.windows(8).any(|v| v == w)));
        // Keys of many (seed, sequence) pairs are distinct.
        let mut keys: Vec<u64> =
            (0..64).flat_map(|seed| (0..256).map(move |seq| SequenceRng::new(seed, seq).key())).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 64 * 256);
        // Calling uniform does not advance anything: the draw is a function of the step.
        assert_eq!(a.uniform(17), a.uniform(17));
    }

    /// A deterministic, fairly flat row of logits for (sequence, step), so the sampled tokens are sensitive to the
    /// uniform drawn.
    fn synthetic_logits(sequence: u64, step: u64, vocab: usize) -> Vec<f32> {
        (0..vocab as u64)
            .map(|t| {
                let h = mix64(sequence.wrapping_mul(0x1000_0000_01b3) ^ step.wrapping_mul(0x9e37) ^ (t << 40));
                (h >> 40) as f32 / (1u64 << 24) as f32 * 3.0
            })
            .collect()
    }

    /// Decodes `steps` tokens for every sequence in `order` as one batch (row i holds sequence order[i]) and returns
    /// the tokens per sequence.
    fn decode(seed: u64, order: &[u64], steps: u64, vocab: usize, p: &SamplingParams) -> Vec<(u64, Vec<u32>)> {
        let rngs: Vec<SequenceRng> = order.iter().map(|&s| SequenceRng::new(seed, s)).collect();
        let mut tokens: Vec<(u64, Vec<u32>)> = order.iter().map(|&s| (s, Vec::new())).collect();
        for step in 0..steps {
            let logits: Vec<f32> = order.iter().flat_map(|&s| synthetic_logits(s, step, vocab)).collect();
            let steps_now = vec![step; order.len()];
            let out = sample_batch(&logits, vocab, p, &rngs, &steps_now);
            for (t, &tok) in tokens.iter_mut().zip(&out) {
                t.1.push(tok);
            }
        }
        tokens.sort_by_key(|t| t.0);
        tokens
    }

    #[test]
    fn tokens_do_not_depend_on_the_batch() {
        let seed = 1234;
        let vocab = 300;
        let steps = 24;
        for p in [params(1.0, 0, 1.0), SamplingParams::default(), params(0.8, 0, 0.95)] {
            // Each of the 37 sequences alone.
            let alone: Vec<(u64, Vec<u32>)> = (0..37).flat_map(|s| decode(seed, &[s], steps, vocab, &p)).collect();
            // All 37 together, reversed; a batch of 10 scattered sequences; the same 10 in another order.
            let all_reversed: Vec<u64> = (0..37).rev().collect();
            let together = decode(seed, &all_reversed, steps, vocab, &p);
            assert_eq!(together, alone);
            let ten: Vec<u64> = vec![30, 3, 17, 0, 36, 8, 21, 12, 5, 29];
            let mut ten_shuffled = ten.clone();
            ten_shuffled.rotate_left(4);
            ten_shuffled.swap(0, 9);
            let a = decode(seed, &ten, steps, vocab, &p);
            let b = decode(seed, &ten_shuffled, steps, vocab, &p);
            assert_eq!(a, b);
            for (s, toks) in &a {
                assert_eq!(toks, &alone[*s as usize].1, "sequence {s}");
            }
            // Rows are per-sequence streams, not one shared stream: two sequences with identical logits diverge.
            let same_rows = vec![SequenceRng::new(seed, 0), SequenceRng::new(seed, 1)];
            let row = synthetic_logits(99, 0, vocab);
            let both: Vec<f32> = row.iter().chain(&row).copied().collect();
            let mut differ = 0;
            for step in 0..steps {
                let out = sample_batch(&both, vocab, &p, &same_rows, &[step, step]);
                differ += (out[0] != out[1]) as u32;
            }
            assert!(differ > steps as u32 / 2, "sequences 0 and 1 agree on {} of {steps} steps", steps as u32 - differ);
        }
        // A different seed changes the tokens.
        let p = params(1.0, 0, 1.0);
        assert_ne!(decode(seed, &[4], steps, vocab, &p), decode(seed + 1, &[4], steps, vocab, &p));
    }

    #[test]
    fn empirical_frequencies_match_the_probabilities() {
        let target = [0.05f64, 0.1, 0.15, 0.3, 0.4];
        let logits: Vec<f32> = target.iter().map(|p| p.ln() as f32).collect();
        let p = params(1.0, 0, 1.0);
        let n = 20_000u64;
        // One sequence over many steps, and many sequences at one step.
        let rng = SequenceRng::new(2024, 3);
        let over_steps: Vec<u32> = (0..n).map(|step| sample(&logits, &p, &rng, step)).collect();
        let rngs: Vec<SequenceRng> = (0..n).map(|s| SequenceRng::new(2024, s)).collect();
        let batch_logits: Vec<f32> = (0..n).flat_map(|_| logits.iter().copied()).collect();
        let over_sequences = sample_batch(&batch_logits, logits.len(), &p, &rngs, &vec![7; n as usize]);
        for draws in [over_steps, over_sequences] {
            let mut counts = [0u64; 5];
            for &t in &draws {
                counts[t as usize] += 1;
            }
            for (i, (&c, &q)) in counts.iter().zip(&target).enumerate() {
                let expected = n as f64 * q;
                let sd = (n as f64 * q * (1.0 - q)).sqrt();
                assert!(
                    (c as f64 - expected).abs() < 4.5 * sd,
                    "token {i}: {c} draws, expected {expected:.0} ± {sd:.0}"
                );
            }
        }
    }

    #[test]
    fn filtered_tokens_are_never_sampled() {
        let vocab = 64;
        let rng = SequenceRng::new(77, 0);
        for (k, top_p) in [(1usize, 1.0f32), (5, 1.0), (0, 0.5), (10, 0.8)] {
            let p = params(0.9, k, top_p);
            for step in 0..2000 {
                let logits = synthetic_logits(5, step, vocab);
                let probs = filtered_probabilities(&logits, &p);
                let t = sample(&logits, &p, &rng, step) as usize;
                assert!(probs[t] > 0.0, "step {step}: token {t} was filtered out");
                if k == 1 {
                    assert_eq!(t, argmax(&logits) as usize);
                }
            }
        }
    }

    #[test]
    fn inverse_cdf_edges() {
        let probs = [0.0, 0.0, 0.25, 0.0, 0.75, 0.0];
        assert_eq!(sample_from_probabilities(&probs, 0.0), 2);
        assert_eq!(sample_from_probabilities(&probs, 0.2499), 2);
        assert_eq!(sample_from_probabilities(&probs, 0.25), 4);
        assert_eq!(sample_from_probabilities(&probs, 1.0 - 2f64.powi(-53)), 4);
        assert_eq!(sample_from_probabilities(&probs, 1.0), 4);
        assert_eq!(sample_from_probabilities(&[0.0, 0.0], 0.5), 0);
    }
}
