//! `glov-cuda bench llm`: prefill and decode tokens/s of a randomly initialised LLM of a named shape, and for each
//! decode batch the memory-bandwidth roofline: the bytes one decode step must read (weights and KV cache) over the
//! device's measured copy bandwidth, and the fraction of it that decoding reaches.
//!
//! Timings, each the median of `--repeat` runs after warm-ups, each stopped only after the backend has finished
//! its work:
//! - prefill: one forward pass of a `--prompt-tokens` prompt into a fresh KV cache, plus the logits of its last
//!   position (what HF's first `generate` step computes);
//! - decode, at each `--batch` n: one prompt group of n sequences (the prompt is their shared prefix), through
//!   [`generate`] exactly as GLOV calls it, with GLOV's sampling and no stop tokens, so that every sequence makes
//!   `--new-tokens` tokens. `generate` with 0 new tokens runs the prefill of the shared prefix and nothing else;
//!   with N new tokens it runs the same prefill and then N decode steps (the first of which feeds the last prompt
//!   token and samples the first new token). The difference of the two times is the time of the N decode steps,
//!   which make n x N tokens.

use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::backend::CudaBackend;
use crate::backend::cuda::ops::{GemmTiles, Variant, gemm_tile};
use crate::backend::{Backend, CachedRow, Stream};
use crate::generation::generate::{GenerateOptions, Generation, Request, Streams, generate};
use crate::models::llm::{Llm, LlmConfig, parameter_count, shape_config};
use crate::sampling::{SamplingParams, mix64};
use anyhow::{Result, ensure};
use clap::Args;
use rayon::prelude::*;
use serde_json::{Value, json};
use std::time::Instant;

/// The named LLM shapes (see [`shape_config`]).
pub const LLM_SHAPES: [&str; 5] = ["llama3-8b", "llama3-1b", "qwen2-7b", "gemma3-270m", "small-100m"];

/// GLOV's sampling: temperature 1, top-k 50, top-p 0.9 (the paper's settings, and `optimize`'s defaults).
pub const GLOV_SAMPLING: SamplingParams = SamplingParams { temperature: 1.0, top_k: 50, top_p: 0.9, greedy: false };

/// A measured memory bandwidth, and how it was measured.
pub struct Bandwidth {
    /// Bytes read plus bytes written per second.
    pub bytes_per_s: f64,
    pub method: String,
}

/// What the LLM benchmarks need of a backend beyond [`Backend`].
pub trait BenchDevice: Backend {
    /// The memory copy bandwidth of the device the backend computes on.
    fn copy_bandwidth(&self) -> Result<Bandwidth>;
    /// Runs the products in `tiles` from now on (an error where the backend has no such tiles).
    fn force_gemm_tiles(&self, tiles: GemmTiles) -> Result<()>;
    /// The tile (rows x columns of the output) a product of `m x n` takes in `tiles`; none where the backend has
    /// no tiles.
    fn gemm_tile(&self, m: usize, n: usize, tiles: GemmTiles) -> Option<String>;
}

/// The counting convention of every copy bandwidth reported.
pub const BANDWIDTH_COUNTING: &str = "bytes read + bytes written per second: a copy of S bytes counts 2 S";

impl BenchDevice for CudaBackend {
    fn copy_bandwidth(&self) -> Result<Bandwidth> {
        use crate::backend::cuda::bandwidth::{COPY_BYTES, copy_bandwidth};
        Ok(Bandwidth {
            bytes_per_s: copy_bandwidth(&self.gpu)?,
            method: format!(
                "cuMemcpyDtoDAsync of {} MiB, 10 copies between two events after 2 untimed",
                COPY_BYTES >> 20
            ),
        })
    }

    fn force_gemm_tiles(&self, tiles: GemmTiles) -> Result<()> {
        self.gpu.set_gemm_tiles(tiles);
        Ok(())
    }

    fn gemm_tile(&self, m: usize, n: usize, tiles: GemmTiles) -> Option<String> {
        let tile = gemm_tile(tiles, m, n, self.gpu.multiprocessors);
        (self.variant() == Variant::Fast).then(|| format!("{}x{}", tile.rows, tile.cols))
    }
}

/// Bytes of each buffer of the host copy: far past any CPU cache.
const HOST_COPY_BYTES: usize = 256 << 20;

impl BenchDevice for CpuBackend {
    fn copy_bandwidth(&self) -> Result<Bandwidth> {
        Ok(Bandwidth {
            bytes_per_s: host_copy_bandwidth(),
            method: format!(
                "host memcpy of {} MiB in 1 MiB chunks on {} threads (as the backend's work is spread), median of 5 \
                 after 1 untimed",
                HOST_COPY_BYTES >> 20,
                rayon::current_num_threads()
            ),
        })
    }

    fn force_gemm_tiles(&self, tiles: GemmTiles) -> Result<()> {
        ensure!(tiles == GemmTiles::Auto, "the CPU backend has no product tiles to choose: --tiles auto");
        Ok(())
    }

    fn gemm_tile(&self, _m: usize, _n: usize, _tiles: GemmTiles) -> Option<String> {
        None
    }
}

/// Bytes per second, read plus written, of a parallel host copy of [`HOST_COPY_BYTES`].
fn host_copy_bandwidth() -> f64 {
    const CHUNK: usize = 1 << 20;
    let src = vec![1u8; HOST_COPY_BYTES];
    let mut dst = vec![0u8; HOST_COPY_BYTES];
    let mut copy = || {
        dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| d.copy_from_slice(s));
        std::hint::black_box(&mut dst);
    };
    copy(); // faults the destination's pages in
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            copy();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (2 * HOST_COPY_BYTES) as f64 / times[times.len() / 2].max(1e-9)
}

#[derive(Args)]
pub struct LlmBenchArgs {
    /// The model shape (random weights).
    #[arg(long, default_value = "llama3-8b", value_parser = clap::builder::PossibleValuesParser::new(LLM_SHAPES))]
    shape: String,
    /// Keep only the first N decoder blocks (for quick runs).
    #[arg(long, value_name = "N")]
    layers: Option<usize>,
    /// A vocabulary of N tokens instead of the shape's (for quick runs).
    #[arg(long, value_name = "N")]
    vocab: Option<usize>,
    /// Tokens of the prompt: the prefill prompt, and the prefix the decode batches share.
    #[arg(long, default_value_t = 1000)]
    prompt_tokens: usize,
    /// New tokens of every decoded sequence.
    #[arg(long, default_value_t = 50)]
    new_tokens: usize,
    /// Decode batch sizes: sequences sampled from the one prompt.
    #[arg(long, value_delimiter = ',', default_value = "1,10,40,64")]
    batch: Vec<usize>,
    /// Timed repetitions of each measurement (the median is reported), after warm-up.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Seed of the weights, the prompt and the sampling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// A named shape, cut to `layers` blocks and a `vocab`-token vocabulary where given.
pub fn llm_config(shape: &str, layers: Option<usize>, vocab: Option<usize>) -> Result<LlmConfig> {
    let mut config = shape_config(shape)?;
    if let Some(layers) = layers {
        ensure!(layers > 0, "the model needs at least one layer");
        config.num_layers = layers;
        if let Some(gemma) = config.gemma3.as_mut() {
            gemma.sliding_layers.truncate(layers);
        }
    }
    if let Some(vocab) = vocab {
        ensure!(vocab > 0, "the vocabulary needs at least one token");
        config.vocab_size = vocab;
    }
    Ok(config)
}

/// What the JSON says of a model's shape.
pub fn describe_config(config: &LlmConfig) -> Value {
    json!({
        "architecture": config.architecture, "layers": config.num_layers, "hidden": config.hidden_size,
        "intermediate": config.intermediate_size, "heads": config.num_heads, "kv_heads": config.num_kv_heads,
        "head_dim": config.head_dim, "vocab": config.vocab_size, "tied_embeddings": config.tie_word_embeddings,
        "qkv_bias": config.qkv_bias, "parameters": parameter_count(config),
    })
}

pub fn sampling_json(s: &SamplingParams) -> Value {
    // f32 settings as the decimals they were given as (0.9, not 0.8999999761581421).
    let decimal = |x: f32| (x as f64 * 1e6).round() / 1e6;
    json!({"temperature": decimal(s.temperature), "top_k": s.top_k, "top_p": decimal(s.top_p), "greedy": s.greedy})
}

/// `n` token ids drawn uniformly from the vocabulary.
pub fn random_prompt(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    (0..n as u64).map(|i| (mix64(seed ^ mix64(i)) % vocab as u64) as u32).collect()
}

/// The median over `repeat` runs of `f` of the seconds from its start until the backend has finished, after
/// `warmup` untimed runs; with the last run's result.
pub fn timed<B: Backend, T>(
    backend: &B,
    warmup: usize,
    repeat: usize,
    mut f: impl FnMut() -> Result<T>,
) -> Result<(f64, T)> {
    for _ in 0..warmup {
        f()?;
        backend.synchronize()?;
    }
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..repeat.max(1) {
        backend.synchronize()?;
        let start = Instant::now();
        let out = f()?;
        backend.synchronize()?;
        times.push(start.elapsed().as_secs_f64());
        last = Some(out);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], last.expect("at least one run")))
}

/// One forward pass of `prompt` into a fresh cache and the logits of its last position, on the host.
fn prefill<B: Backend>(backend: &B, llm: &Llm<B>, prompt: &[u32]) -> Result<()> {
    let mut cache = backend.kv_cache(&llm.kv_layout(vec![prompt.len()], vec![(0, 1)]))?;
    let rows: Vec<CachedRow> =
        (0..prompt.len()).map(|p| CachedRow { stream: Stream::Prefix(0), position: p }).collect();
    let hidden = llm.forward_hidden(backend, &mut cache, prompt, &rows, llm.config.num_layers, None)?;
    backend.download(&llm.logits(backend, &hidden, &[prompt.len() - 1])?)?;
    Ok(())
}

/// Bytes that one decode step of `batch` sequences must read from memory, at the least.
///
/// Weights, in bf16 (as both backends keep them): every block's parameters (norms, the fused QKV projection and
/// its bias, the output projection, the gated MLP), the final norm and the LM head (`vocab x hidden`; with tied
/// embeddings that is the embedding table, read whole as the head) are read in full at every step. Of the input
/// embedding table only the `batch` rows of the step's tokens are read, not the table: so the table counts
/// `batch x hidden`, not `vocab x hidden` (for llama3-8b that leaves out 1.05 GB of its 16.06 GB of parameters).
///
/// KV cache: at step t (0-based) of N, a sequence's query attends to `prompt + t` positions: the group's shared
/// prefix (the prompt less its last token), the last prompt token, and the t tokens made so far; each position
/// holds a key and a value of `kv_heads x head_dim` elements in every layer. Averaged over the N steps that is
/// `prompt + (N - 1) / 2` positions per sequence. `kv_per_sequence` counts the shared prefix once for every
/// sequence that reads it (an attention that reads it per sequence from memory); `kv_unique` counts it once per
/// step (the least any attention can read: the prefix once, each sequence's own part once).
///
/// Left out, as small next to these: activations, the logits written and read back (`batch x vocab` floats), the
/// new keys and values written, the rotary tables.
pub struct StepBytes {
    pub weights: f64,
    pub kv_per_sequence: f64,
    pub kv_unique: f64,
}

pub fn step_bytes(config: &LlmConfig, batch: usize, prompt: usize, new_tokens: usize, kv_element: usize) -> StepBytes {
    let (d, v) = (config.hidden_size, config.vocab_size);
    let table = v * d;
    let untied_head = if config.tie_word_embeddings { 0 } else { v * d };
    // Blocks and the final norm: everything but the embedding table and a separate head.
    let blocks = parameter_count(config) - table - untied_head;
    let weights = 2.0 * (blocks + v * d + batch * d) as f64;
    let per_position = (config.num_layers * 2 * config.num_kv_heads * config.head_dim * kv_element) as f64;
    let n = new_tokens as f64;
    let mean_positions = prompt as f64 + (n - 1.0) / 2.0;
    let kv_per_sequence = batch as f64 * mean_positions * per_position;
    // The prefix (prompt - 1 positions) once; each sequence's own part: t + 1 positions at step t, (N + 1) / 2 on
    // average.
    let kv_unique = ((prompt as f64 - 1.0) + batch as f64 * (n + 1.0) / 2.0) * per_position;
    StepBytes { weights, kv_per_sequence, kv_unique }
}

pub fn run<B: BenchDevice>(backend: &B, args: LlmBenchArgs) -> Result<()> {
    ensure!(args.prompt_tokens >= 2, "--prompt-tokens must be at least 2");
    ensure!(args.new_tokens > 0, "--new-tokens must be positive");
    ensure!(!args.batch.is_empty() && args.batch.iter().all(|&b| b > 0), "--batch sizes must be positive");
    let config = llm_config(&args.shape, args.layers, args.vocab)?;
    ensure!(
        args.prompt_tokens + args.new_tokens <= config.max_positions,
        "--prompt-tokens + --new-tokens is past the model's context of {} tokens",
        config.max_positions
    );
    let start = Instant::now();
    let llm = Llm::random(backend, config.clone(), args.seed)?;
    backend.synchronize()?;
    let init_seconds = start.elapsed().as_secs_f64();
    tracing::info!(shape = %args.shape, seconds = init_seconds, "random LLM made");
    let prompt = random_prompt(args.prompt_tokens, config.vocab_size, args.seed);

    let (prefill_seconds, ()) = timed(backend, 1, args.repeat, || prefill(backend, &llm, &prompt))?;
    tracing::info!(seconds = prefill_seconds, "prefill timed");

    let options = |max_new_tokens| GenerateOptions {
        max_new_tokens,
        sampling: GLOV_SAMPLING,
        seed: mix64(args.seed),
        stop_tokens: Vec::new(),
        steer: None,
        streams: Streams::Batch,
    };
    let group = |n| [Request { prompt: prompt.clone(), n, steer: None }];
    // Warm-up: the largest batch, a few steps.
    let largest = *args.batch.iter().max().expect("a batch");
    generate(backend, &llm, &group(largest), &options(args.new_tokens.min(2)))?;
    backend.synchronize()?;

    let mut decode = Vec::new();
    let mut bandwidth_needed = Vec::new();
    for &batch in &args.batch {
        let requests = group(batch);
        let (prefix_seconds, _) = timed(backend, 0, args.repeat, || generate(backend, &llm, &requests, &options(0)))?;
        let (generate_seconds, generation): (f64, Generation) =
            timed(backend, 0, args.repeat, || generate(backend, &llm, &requests, &options(args.new_tokens)))?;
        let tokens: usize = generation.sequences.iter().map(|s| s.tokens.len()).sum();
        ensure!(
            tokens == batch * args.new_tokens,
            "batch {batch}: {tokens} tokens decoded, not {batch} x {}",
            args.new_tokens
        );
        let seconds = generate_seconds - prefix_seconds;
        ensure!(
            seconds > 0.0,
            "batch {batch}: generate with {} new tokens took {generate_seconds} s, no longer than with none \
             ({prefix_seconds} s); use more --new-tokens or --repeat",
            args.new_tokens
        );
        let step_seconds = seconds / args.new_tokens as f64;
        tracing::info!(batch, tokens_per_s = tokens as f64 / seconds, "decode timed");
        let bytes = step_bytes(&config, batch, args.prompt_tokens, args.new_tokens, backend.kv_element_bytes());
        bandwidth_needed.push((batch, step_seconds, bytes));
        decode.push(json!({
            "batch": batch, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens, "tokens": tokens,
            "seconds": seconds, "tokens_per_s": tokens as f64 / seconds, "step_seconds": step_seconds,
            "generate_seconds": generate_seconds, "prefix_seconds": prefix_seconds,
            "end_to_end_tokens_per_s": tokens as f64 / generate_seconds,
            "kv_cache_bytes": generation.kv_cache_bytes,
        }));
    }
    // Memory before the bandwidth measurement, whose buffers would count in the peak.
    let memory = backend.memory();
    let bandwidth = backend.copy_bandwidth()?;
    for (entry, (batch, step_seconds, bytes)) in decode.iter_mut().zip(bandwidth_needed) {
        let bytes_per_step = bytes.weights + bytes.kv_per_sequence;
        let roofline_step = bytes_per_step / bandwidth.bytes_per_s;
        let unique_step = (bytes.weights + bytes.kv_unique) / bandwidth.bytes_per_s;
        entry["roofline"] = json!({
            "weight_bytes_per_step": bytes.weights,
            "kv_bytes_per_step": bytes.kv_per_sequence,
            "bytes_per_step": bytes_per_step,
            "step_seconds": roofline_step,
            "tokens_per_s": batch as f64 / roofline_step,
            "fraction": roofline_step / step_seconds,
            "achieved_bytes_per_s": bytes_per_step / step_seconds,
            "kv_unique_bytes_per_step": bytes.kv_unique,
            "unique_step_seconds": unique_step,
            "fraction_unique": unique_step / step_seconds,
        });
    }

    let out = json!({
        "bench": "llm",
        "shape": args.shape,
        "config": describe_config(&config),
        "backend": backend.describe(),
        "engine": concat!(env!("CARGO_PKG_VERSION"), " (", env!("GLOV_CUDA_COMMIT"), ")"),
        "weights": "bf16, random (Llm::random)",
        "kv_element_bytes": backend.kv_element_bytes(),
        "sampling": sampling_json(&GLOV_SAMPLING),
        "stop_tokens": "none: every sequence makes new_tokens tokens",
        "repeat": args.repeat,
        "init_seconds": init_seconds,
        "copy_bandwidth": {
            "bytes_per_s": bandwidth.bytes_per_s, "gb_per_s": bandwidth.bytes_per_s / 1e9,
            "counting": BANDWIDTH_COUNTING, "method": bandwidth.method,
        },
        "prefill": {
            "tokens": args.prompt_tokens, "seconds": prefill_seconds,
            "tokens_per_s": args.prompt_tokens as f64 / prefill_seconds,
            "what": "one forward pass of the prompt into a fresh KV cache, and the logits of its last position",
        },
        "decode_method": "one prompt group of `batch` sequences through generate(); seconds = time(new_tokens) - \
                          time(0 new tokens: the prefix's prefill only); tokens = batch x new_tokens",
        "roofline_method": "bytes one decode step reads (bf16 weights: blocks, final norm, LM head, and batch rows of \
                            the embedding table; KV cache: per sequence, prompt + (new_tokens - 1) / 2 positions on \
                            average, the shared prefix counted for every sequence; kv_unique counts it once) over \
                            copy_bandwidth; fraction = roofline step time / measured step time",
        "decode": decode,
        "memory": memory,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
