//! Next-token sampling on the device (`kernels/sampling.cu`): one token per row of logits `[rows, vocab]`, drawn as
//! [`crate::sampling::sample_batch`] draws it on the host; only the tokens (a `u32` per row) come back.
//!
//! Two kernels, one block per row:
//! - `sample_plain` follows `src/sampling.rs` step by step on a copy of each row in global scratch, every
//!   order-dependent sum in the host's order: the reference on the device.
//! - `sample` (fast) works in passes over the row: radix select for top-k, the top-p candidates sorted in shared
//!   memory, block-wide softmax and a tiled inverse-CDF scan. Greedy, top-k and the top-p cut are exact; the final
//!   softmax's normaliser, the total and the running sum are added in block order rather than index order, so a
//!   token may differ from the host's where `u * total` lies within float rounding of a CDF boundary.
//!
//! The fast kernel holds at most [`CANDIDATE_CAPACITY`] top-p candidates. When top-p is on and more could survive
//! top-k (top-k off or above the capacity), the whole batch runs `sample_plain`; when ties with the k-th value push
//! a row over the capacity, the kernel marks the row and it is sampled again with `sample_plain`. Both are logged
//! at debug level.

use super::device_arena::DeviceBlock;
use super::ops::{DTensor, DType, Variant, arg};
use super::runtime::Gpu;
use crate::sampling::{SamplingParams, SequenceRng, top_p_threshold};
use anyhow::{Result, bail, ensure};
use std::ffi::c_void;

/// Threads of `sample`'s block (`SAMPLE_THREADS` in sampling.cu; the kernel depends on it).
const FAST_THREADS: u32 = 512;
/// Threads of `sample_plain`'s block (`PLAIN_THREADS`).
const PLAIN_THREADS: u32 = 256;
/// Top-p candidates `sample` sorts in shared memory (`CANDIDATES`).
pub const CANDIDATE_CAPACITY: usize = 4096;
/// `sample`'s answer for a row whose top-p candidates do not fit (`OVERFLOW_TOKEN`).
const OVERFLOW_TOKEN: u32 = 0xFFFF_FFFE;
/// Global scratch of one `sample_plain` launch; larger batches run in chunks of rows.
const PLAIN_SCRATCH_BYTES: usize = 256 << 20;
/// Token indices and the plain kernel's sort length must stay within `i32`.
const MAX_VOCAB: usize = 1 << 30;

/// The next token of each row of `logits` (`[rows, vocab]`, bf16 or f32), row `i` drawn with `rngs[i]` at
/// `steps[i]`, as [`crate::sampling::sample`] defines it. `variant` picks the kernel: `Plain` is the reference,
/// `Fast` the one for decoding (see the module documentation for when it falls back to `Plain`).
pub fn sample(
    gpu: &Gpu,
    logits: &DTensor,
    params: &SamplingParams,
    rngs: &[SequenceRng],
    steps: &[u64],
    variant: Variant,
) -> Result<Vec<u32>> {
    params.validate()?;
    let (rows, vocab) = (logits.rows, logits.cols);
    ensure!(
        matches!(logits.dtype, DType::Bf16 | DType::F32),
        "sample: logits must be bf16 or f32, not {:?}",
        logits.dtype
    );
    ensure!(rngs.len() == rows, "sample: {} random streams for {rows} rows of logits", rngs.len());
    ensure!(steps.len() == rows, "sample: {} steps for {rows} rows of logits", steps.len());
    ensure!(vocab <= MAX_VOCAB, "sample: a vocabulary of {vocab} entries is more than the kernels take ({MAX_VOCAB})");
    ensure!(rows <= i32::MAX as usize, "sample: {rows} rows are more than one launch takes");
    ensure!(
        logits.block.bytes >= rows * vocab * logits.dtype.size(),
        "sample: the logits' block of {} bytes is smaller than [{rows}, {vocab}]",
        logits.block.bytes
    );
    if rows == 0 {
        return Ok(Vec::new());
    }
    if vocab == 0 {
        return Ok(vec![0; rows]);
    }
    let config = Config::new(params, logits.dtype, vocab);
    // The kernels' per-row inputs, in one upload: the rngs' keys, then the steps.
    let state: Vec<u64> = rngs.iter().map(SequenceRng::key).chain(steps.iter().copied()).collect();
    let state_block = gpu.arena().alloc(state.len() * 8, "sampling keys and steps")?;
    gpu.upload(&state_block, &state)?;
    let rows_in = RowsIn {
        logits: logits.block.ptr,
        keys: state_block.ptr,
        steps: state_block.ptr + 8 * rows as u64,
        rows,
        vocab,
        element: logits.dtype.size(),
    };
    let out = gpu.arena().alloc(rows * 4, "sampled tokens")?;
    // A row a kernel failed to write then reads as out of the vocabulary, and `check_tokens` says so.
    gpu.fill_u32(&out, u32::MAX, rows)?;
    let mut tokens = vec![0u32; rows];

    let plain_only = variant == Variant::Plain || config.candidates_may_overflow(params, vocab);
    if plain_only {
        if variant == Variant::Fast {
            tracing::debug!(
                top_k = params.top_k,
                top_p = params.top_p,
                vocab,
                "sampling: top-p over more than {CANDIDATE_CAPACITY} candidates does not fit the fast kernel's \
                 shared memory; every row runs sample_plain"
            );
        }
        run_plain(gpu, &config, &rows_in, &out)?;
        gpu.download(&out, &mut tokens)?;
        check_tokens(&tokens, vocab, "sample_plain")?;
        return Ok(tokens);
    }

    run_fast(gpu, &config, &rows_in, &out)?;
    gpu.download(&out, &mut tokens)?;
    let overflowed: Vec<usize> = (0..rows).filter(|&i| tokens[i] == OVERFLOW_TOKEN).collect();
    if !overflowed.is_empty() {
        tracing::debug!(
            rows = overflowed.len(),
            top_k = params.top_k,
            "sampling: ties with the k-th value left more than {CANDIDATE_CAPACITY} top-p candidates in some rows; \
             they are sampled again with sample_plain"
        );
        let again = gpu.arena().alloc(rows * 4, "sampled tokens (plain)")?;
        gpu.fill_u32(&again, u32::MAX, rows)?;
        run_plain(gpu, &config, &rows_in, &again)?;
        let mut plain = vec![0u32; rows];
        gpu.download(&again, &mut plain)?;
        for &i in &overflowed {
            tokens[i] = plain[i];
        }
    }
    check_tokens(&tokens, vocab, "sample")?;
    Ok(tokens)
}

/// The scalar parameters both kernels take, in their order after `logits`.
struct Config {
    is_bf16: i32,
    vocab: i32,
    apply_temperature: i32,
    temperature: f32,
    /// `top_k` as asked (0: off); the kernels keep every token when it is at least `vocab`.
    top_k: i32,
    top_p_on: i32,
    threshold: f32,
    greedy: i32,
}

impl Config {
    fn new(params: &SamplingParams, dtype: DType, vocab: usize) -> Self {
        let top_p_on = params.top_p < 1.0;
        Config {
            is_bf16: (dtype == DType::Bf16) as i32,
            vocab: vocab as i32,
            apply_temperature: (params.temperature != 1.0) as i32,
            temperature: params.temperature,
            top_k: params.top_k.min(i32::MAX as usize) as i32,
            top_p_on: top_p_on as i32,
            threshold: if top_p_on { top_p_threshold(params.top_p) } else { 0.0 },
            greedy: params.is_greedy() as i32,
        }
    }

    /// Whether top-p may see more candidates than `sample` holds: every token above -inf survives top-k when it is
    /// off, and at least `top_k` do when it is on.
    fn candidates_may_overflow(&self, params: &SamplingParams, vocab: usize) -> bool {
        let most = if self.top_k > 0 { params.top_k.min(vocab) } else { vocab };
        self.greedy == 0 && self.top_p_on != 0 && most > CANDIDATE_CAPACITY
    }
}

/// Device addresses of the per-row inputs.
struct RowsIn {
    logits: u64,
    keys: u64,
    steps: u64,
    rows: usize,
    vocab: usize,
    /// Bytes per logit.
    element: usize,
}

/// The parameters both kernels begin with: the rows' logits, keys and steps (device addresses) and the settings.
fn row_args(logits: &u64, keys: &u64, steps: &u64, c: &Config) -> Vec<*mut c_void> {
    vec![
        arg(logits),
        arg(&c.is_bf16),
        arg(&c.vocab),
        arg(keys),
        arg(steps),
        arg(&c.apply_temperature),
        arg(&c.temperature),
        arg(&c.top_k),
        arg(&c.top_p_on),
        arg(&c.threshold),
        arg(&c.greedy),
    ]
}

fn run_fast(gpu: &Gpu, c: &Config, rows: &RowsIn, out: &DeviceBlock) -> Result<()> {
    let mut args = row_args(&rows.logits, &rows.keys, &rows.steps, c);
    args.push(arg(&out.ptr));
    // SAFETY: the arguments match `sample`'s parameters; the logits hold rows x vocab values (checked), keys and
    // steps one u64 per row, the output one u32 per row.
    unsafe { gpu.launch("sample", (rows.rows as u32, 1, 1), (FAST_THREADS, 1, 1), 0, &mut args) }
}

/// `sample_plain` over all rows, in chunks whose scratch (scores f32, work f64 and, with top-p, the sort buffer of a
/// power of two >= vocab u64) stays within [`PLAIN_SCRATCH_BYTES`].
fn run_plain(gpu: &Gpu, c: &Config, rows: &RowsIn, out: &DeviceBlock) -> Result<()> {
    let vocab = rows.vocab;
    let order_len = if c.top_p_on != 0 { vocab.next_power_of_two() } else { 0 };
    let per_row = if c.greedy != 0 { 0 } else { vocab * 4 + vocab * 8 + order_len * 8 };
    let chunk = PLAIN_SCRATCH_BYTES.checked_div(per_row).map_or(rows.rows, |c| c.clamp(1, rows.rows));
    let scratch = |elements: usize, bytes_each: usize, what: &str| -> Result<Option<DeviceBlock>> {
        if per_row == 0 || elements == 0 {
            Ok(None)
        } else {
            gpu.arena().alloc(chunk * elements * bytes_each, what).map(Some)
        }
    };
    let scores = scratch(vocab, 4, "sampling scratch (scores)")?;
    let work = scratch(vocab, 8, "sampling scratch (probabilities)")?;
    let order = scratch(order_len, 8, "sampling scratch (top-p order)")?;
    let address = |b: &Option<DeviceBlock>| b.as_ref().map_or(0u64, |b| b.ptr);
    let (scores_ptr, work_ptr, order_ptr) = (address(&scores), address(&work), address(&order));
    let order_len_i = order_len as i32;
    for start in (0..rows.rows).step_by(chunk) {
        let count = chunk.min(rows.rows - start);
        let logits = rows.logits + (start * vocab * rows.element) as u64;
        let (keys, steps) = (rows.keys + 8 * start as u64, rows.steps + 8 * start as u64);
        let out_ptr = out.ptr + 4 * start as u64;
        let mut args = row_args(&logits, &keys, &steps, c);
        args.extend([arg(&scores_ptr), arg(&order_ptr), arg(&order_len_i), arg(&work_ptr), arg(&out_ptr)]);
        // SAFETY: the arguments match `sample_plain`'s parameters; the chunk's rows lie inside the logits, keys,
        // steps and output; the scratch holds `chunk` rows of vocab f32, vocab f64 and order_len u64 (greedy reads
        // none of it).
        unsafe { gpu.launch("sample_plain", (count as u32, 1, 1), (PLAIN_THREADS, 1, 1), 0, &mut args)? };
    }
    Ok(())
}

/// Every token is inside the vocabulary (a row the kernel did not write would show here).
fn check_tokens(tokens: &[u32], vocab: usize, kernel: &str) -> Result<()> {
    if let Some((row, &token)) = tokens.iter().enumerate().find(|(_, t)| **t as usize >= vocab) {
        bail!("{kernel}: row {row} came back with token {token}, outside the vocabulary of {vocab}");
    }
    Ok(())
}
