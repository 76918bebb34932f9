//! `glov-cuda bench glov-step`: one whole GLOV step of a search with guidance on, both models random and in one
//! process on one backend, timed by phase:
//! - generation: `--groups` prompt groups (the trajectories of an alpha sweep, each with its own meta-prompt and
//!   its own offset, alpha x direction) of `--sequences / --groups` answers each, sampled in one batch through
//!   [`generate`] as `LlmProposer` does (offset after the steered block at the sampled position, `last` mode,
//!   common random numbers across groups, GLOV's sampling), with no stop tokens: every answer runs to
//!   `--new-tokens`, the worst case of a real step, where answers end at the end of turn;
//! - text encoding: every new template filled with every class name, tokenised, through CLIP's text tower and
//!   normalised, in passes of at most `--text-batch` texts as `Scorer` does;
//! - scoring: each pass's templates against the cached, normalised image features (`Backend::score`).
//!
//! With `--vlm-shape`, the judge is the encoder-decoder path's instead ([`super::bench_glov_vlm`]): LLaVA-OneVision
//! answers the step's `--templates` questions about `--images` images, and the matcher reads the answers.
//!
//! The step is run once untimed, then `--repeat` times; the run with the median total is reported.

use super::bench::{class_names, templates, values};
use super::bench_glov_vlm::{VlmHalf, VlmStep, VlmTimes};
use super::bench_llm::{
    BenchDevice, GLOV_SAMPLING, LLM_SHAPES, describe_config, llm_config, random_prompt, sampling_json,
};
use super::bench_vlm::Cuts;
use crate::backend::Backend;
use crate::checkpoint::DType;
use crate::generation::generate::{GenerateOptions, Request, Streams, generate};
use crate::generation::steering::{SteerCache, SteerConfig, SteerMode};
use crate::models::clip::{Clip, SHAPES as CLIP_SHAPES, random_weights, shape_config as clip_shape_config};
use crate::models::llava::random::SHAPES as VLM_SHAPES;
use crate::models::llm::Llm;
use crate::sampling::mix64;
use crate::scoring::fill;
use crate::tokenizer::{ClipTokenizer, openai_clip_tokenizer};
use anyhow::{Result, ensure};
use clap::Args;
use serde_json::json;
use std::time::Instant;

/// GLOV's default guidance strengths; group g is steered with `ALPHAS[g % 5]` times the direction.
const ALPHAS: [f32; 5] = [1.0, 0.75, 0.5, 0.25, 0.0];

#[derive(Args)]
pub struct GlovStepBenchArgs {
    /// The LLM's shape (random weights).
    #[arg(long, default_value = "llama3-8b", value_parser = clap::builder::PossibleValuesParser::new(LLM_SHAPES))]
    llm_shape: String,
    /// CLIP's shape (random weights).
    #[arg(long, default_value = "vit-b-32", value_parser = clap::builder::PossibleValuesParser::new(CLIP_SHAPES))]
    clip_shape: String,
    /// Keep only the LLM's first N blocks (for quick runs).
    #[arg(long, value_name = "N")]
    llm_layers: Option<usize>,
    /// An LLM vocabulary of N tokens instead of the shape's (for quick runs).
    #[arg(long, value_name = "N")]
    vocab: Option<usize>,
    /// Keep only the first N layers of each CLIP tower (for quick runs).
    #[arg(long, value_name = "N")]
    clip_layers: Option<usize>,
    /// Prompt groups: trajectories with their own meta-prompt and offset.
    #[arg(long, default_value_t = 4)]
    groups: usize,
    /// Answers sampled in the step, over all groups (a multiple of --groups).
    #[arg(long, default_value_t = 40)]
    sequences: usize,
    /// Tokens of each group's meta-prompt (GLOV's, with ten examples and the chat template, is about 500).
    #[arg(long, default_value_t = 500)]
    prompt_tokens: usize,
    /// New tokens of every answer.
    #[arg(long, default_value_t = 50)]
    new_tokens: usize,
    /// The steered block [default: 17 of 32, scaled to the model's depth, as `optimize` chooses].
    #[arg(long)]
    layer: Option<usize>,
    /// What the KV cache keeps of a steered position.
    #[arg(long, value_enum, default_value = "steered")]
    steer_cache: SteerCache,
    /// New templates scored.
    #[arg(long, default_value_t = 40)]
    templates: usize,
    /// Classes of the dataset.
    #[arg(long, default_value_t = 1000)]
    classes: usize,
    /// Cached image features scored against.
    #[arg(long, default_value_t = 1000)]
    images: usize,
    /// Most texts per text-tower pass (as score and optimize).
    #[arg(long, default_value_t = 1024)]
    text_batch: usize,
    /// The judge is LLaVA-OneVision of this shape (random weights) and an MPNet matcher instead of CLIP: it answers
    /// --templates questions about each of --images images.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(VLM_SHAPES))]
    vlm_shape: Option<String>,
    /// The images' size, WIDTHxHEIGHT (with --vlm-shape).
    #[arg(long, default_value = "640x480", value_parser = super::bench_vlm::parse_size)]
    image: (u32, u32),
    /// Tokens of each question (with --vlm-shape).
    #[arg(long, default_value_t = 20)]
    question_tokens: usize,
    /// Greedy new tokens of each VLM answer (with --vlm-shape).
    #[arg(long, default_value_t = 50)]
    vlm_new_tokens: usize,
    /// Most VLM answers decoded in one batch (with --vlm-shape).
    #[arg(long, default_value_t = 64)]
    vlm_batch: usize,
    /// Mean tokens of a VLM answer the matcher embeds (with --vlm-shape).
    #[arg(long, default_value_t = 24)]
    answer_tokens: usize,
    /// Keep only the first N vision-tower layers (with --vlm-shape, for quick runs).
    #[arg(long, value_name = "N")]
    vlm_vision_layers: Option<usize>,
    /// Keep only the VLM language model's first N layers (with --vlm-shape, for quick runs).
    #[arg(long, value_name = "N")]
    vlm_layers: Option<usize>,
    /// A VLM vocabulary of N tokens (with --vlm-shape, for quick runs).
    #[arg(long, value_name = "N")]
    vlm_vocab: Option<usize>,
    /// Keep only the matcher's first N layers (with --vlm-shape, for quick runs).
    #[arg(long, value_name = "N")]
    matcher_layers: Option<usize>,
    /// Timed steps (the one with the median total is reported), after one untimed.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Seed of the weights, prompts, offsets and sampling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// The scoring half of a step: CLIP, the cached image features, the class names and the step's new templates.
struct Judge<'a, B: Backend> {
    clip: &'a Clip<B>,
    tokenizer: &'a ClipTokenizer,
    /// Normalised image features `[images, dim]`.
    images: B::Tensor,
    labels: Vec<u32>,
    classnames: Vec<String>,
    templates: Vec<String>,
    text_batch: usize,
}

impl<B: Backend> Judge<'_, B> {
    /// Templates per pass of the text tower, as `Scorer` groups them.
    fn per_pass(&self) -> usize {
        (self.text_batch / self.classnames.len()).max(1)
    }

    /// Normalised text features of `texts`, in passes of at most `text_batch` texts (joined through the host when
    /// one template's classes need several), as `Scorer` encodes them.
    fn encode(&self, backend: &B, texts: &[String]) -> Result<B::Tensor> {
        let mut parts = Vec::new();
        for chunk in texts.chunks(self.text_batch.max(1)) {
            let tokens = self.tokenizer.encode_batch(chunk)?;
            parts.push(backend.l2_normalize(&self.clip.encode_text(backend, &tokens)?)?);
        }
        if parts.len() == 1 {
            return Ok(parts.pop().expect("one part"));
        }
        let mut joined = Vec::new();
        for part in &parts {
            joined.extend(backend.download(part)?);
        }
        backend.upload(&joined, texts.len(), self.clip.config.projection_dim)
    }

    /// Seconds of text encoding and of scoring, each pass's phases timed apart.
    fn run(&self, backend: &B) -> Result<(f64, f64)> {
        let classes = self.classnames.len();
        let (mut encoding, mut scoring) = (0.0, 0.0);
        for group in self.templates.chunks(self.per_pass()) {
            let start = Instant::now();
            let texts: Vec<String> = group.iter().flat_map(|t| self.classnames.iter().map(|c| fill(t, c))).collect();
            let features = self.encode(backend, &texts)?;
            backend.synchronize()?;
            encoding += start.elapsed().as_secs_f64();
            let start = Instant::now();
            let counts = backend.score(&self.images, &features, &self.labels, group.len(), classes)?;
            backend.synchronize()?;
            scoring += start.elapsed().as_secs_f64();
            ensure!(counts.len() == group.len(), "{} counts for {} templates", counts.len(), group.len());
        }
        Ok((encoding, scoring))
    }
}

struct StepTimes {
    generation: f64,
    text_encoding: f64,
    scoring: f64,
    vlm: VlmTimes,
    total: f64,
    tokens: usize,
    kv_cache_bytes: usize,
}

/// The judge of a step: CLIP, or a VLM with its matcher.
enum StepJudge<'a, B: Backend> {
    Clip(Judge<'a, B>),
    Vlm(Box<VlmHalf<B>>),
}

fn step<B: Backend>(
    backend: &B,
    llm: &Llm<B>,
    requests: &[Request],
    options: &GenerateOptions,
    judge: &StepJudge<B>,
) -> Result<StepTimes> {
    backend.synchronize()?;
    let start = Instant::now();
    let generation = generate(backend, llm, requests, options)?;
    backend.synchronize()?;
    let generation_seconds = start.elapsed().as_secs_f64();
    let ((text_encoding, scoring), vlm) = match judge {
        StepJudge::Clip(judge) => (judge.run(backend)?, VlmTimes::default()),
        StepJudge::Vlm(half) => ((0.0, 0.0), half.run(backend)?),
    };
    Ok(StepTimes {
        generation: generation_seconds,
        text_encoding,
        scoring,
        vlm,
        total: start.elapsed().as_secs_f64(),
        tokens: generation.sequences.iter().map(|s| s.tokens.len()).sum(),
        kv_cache_bytes: generation.kv_cache_bytes,
    })
}

pub fn run<B: BenchDevice>(backend: &B, args: GlovStepBenchArgs) -> Result<()> {
    ensure!(args.groups > 0 && args.sequences > 0, "--groups and --sequences must be positive");
    ensure!(
        args.sequences.is_multiple_of(args.groups),
        "--sequences ({}) must be a multiple of --groups ({})",
        args.sequences,
        args.groups
    );
    ensure!(args.prompt_tokens > 0 && args.new_tokens > 0, "--prompt-tokens and --new-tokens must be positive");
    ensure!(
        args.templates > 0 && args.classes > 0 && args.images > 0,
        "--templates, --classes and --images must be positive"
    );
    let config = llm_config(&args.llm_shape, args.llm_layers, args.vocab)?;
    let layer = args.layer.unwrap_or(17 * config.num_layers / 32);
    let mut clip_config = clip_shape_config(&args.clip_shape)?;
    if let Some(layers) = args.clip_layers {
        ensure!(layers > 0, "--clip-layers must be positive");
        clip_config.text.tower.num_layers = layers;
        clip_config.vision.tower.num_layers = layers;
    }

    let start = Instant::now();
    let llm = Llm::random(backend, config.clone(), args.seed)?;
    let clip = Clip::from_store(backend, &random_weights(&clip_config, DType::BF16, args.seed), clip_config.clone())?;
    let tokenizer = openai_clip_tokenizer(clip_config.text.eos_token_id)?;
    backend.synchronize()?;
    let init_seconds = start.elapsed().as_secs_f64();
    tracing::info!(seconds = init_seconds, "random LLM and CLIP made");

    let samples = args.sequences / args.groups;
    let direction: Vec<f32> = values(config.hidden_size, mix64(args.seed ^ 2)).iter().map(|v| 0.05 * v).collect();
    let requests: Vec<Request> = (0..args.groups)
        .map(|g| Request {
            prompt: random_prompt(args.prompt_tokens, config.vocab_size, mix64(args.seed ^ mix64(g as u64 + 100))),
            n: samples,
            steer: Some(direction.iter().map(|v| ALPHAS[g % ALPHAS.len()] * v).collect()),
        })
        .collect();
    let options = GenerateOptions {
        max_new_tokens: args.new_tokens,
        sampling: GLOV_SAMPLING,
        seed: mix64(args.seed),
        stop_tokens: Vec::new(),
        steer: Some(SteerConfig { layer, mode: SteerMode::Last, cache: args.steer_cache }),
        streams: Streams::PerRequest,
    };

    let dim = clip_config.projection_dim;
    let labels: Vec<u32> = (0..args.images).map(|i| (i % args.classes) as u32).collect();
    let features = backend.upload(&values(args.images * dim, 7), args.images, dim)?;
    let clip_judge = Judge {
        clip: &clip,
        tokenizer: &tokenizer,
        images: backend.l2_normalize(&features)?,
        labels,
        classnames: class_names(args.classes),
        templates: templates(args.templates),
        text_batch: args.text_batch.max(1),
    };
    let passes = args.templates.div_ceil(clip_judge.per_pass());
    let judge = match &args.vlm_shape {
        None => StepJudge::Clip(clip_judge),
        Some(shape) => {
            let cuts = Cuts {
                vision_layers: args.vlm_vision_layers,
                llm_layers: args.vlm_layers,
                vocab: args.vlm_vocab,
                matcher_layers: args.matcher_layers,
            };
            let asked = VlmStep {
                images: args.images,
                image: args.image,
                questions: args.templates,
                question_tokens: args.question_tokens,
                new_tokens: args.vlm_new_tokens,
                batch: args.vlm_batch,
                answer_tokens: args.answer_tokens,
            };
            StepJudge::Vlm(Box::new(VlmHalf::new(backend, shape, cuts, asked, mix64(args.seed ^ 9))?))
        }
    };

    step(backend, &llm, &requests, &options, &judge)?; // warm-up
    let mut runs = Vec::new();
    for _ in 0..args.repeat.max(1) {
        let times = step(backend, &llm, &requests, &options, &judge)?;
        tracing::info!(seconds = times.total, "GLOV step timed");
        runs.push(times);
    }
    runs.sort_by(|a, b| a.total.total_cmp(&b.total));
    let t = &runs[runs.len() / 2];
    ensure!(
        t.tokens == args.sequences * args.new_tokens,
        "{} tokens generated, not {} x {}",
        t.tokens,
        args.sequences,
        args.new_tokens
    );
    let mut out = json!({
        "bench": "glov_step",
        "llm_shape": args.llm_shape,
        "clip_shape": args.clip_shape,
        "backend": backend.describe(),
        "engine": concat!(env!("CARGO_PKG_VERSION"), " (", env!("GLOV_CUDA_COMMIT"), ")"),
        "llm": describe_config(&config),
        "clip": {
            "text_layers": clip_config.text.tower.num_layers, "vision_layers": clip_config.vision.tower.num_layers,
            "projection_dim": dim,
        },
        "init_seconds": init_seconds,
        "repeat": args.repeat,
        "generation": {
            "groups": args.groups, "sequences": args.sequences, "samples_per_group": samples,
            "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens, "tokens": t.tokens,
            "tokens_per_s": t.tokens as f64 / t.generation,
            "stop_tokens": "none: every answer makes new_tokens tokens",
            "steer": {
                "layer": layer, "mode": SteerMode::Last, "cache": args.steer_cache,
                "alphas": (0..args.groups).map(|g| ALPHAS[g % ALPHAS.len()]).collect::<Vec<_>>(),
            },
            "streams": "per request (common random numbers across groups)",
            "sampling": sampling_json(&GLOV_SAMPLING),
        },
        "scoring": {
            "templates": args.templates, "classes": args.classes, "images": args.images,
            "texts": args.templates * args.classes, "text_batch": args.text_batch, "passes": passes,
        },
        "seconds": {
            "generation": t.generation, "text_encoding": t.text_encoding, "scoring": t.scoring, "total": t.total,
        },
        "kv_cache_bytes": t.kv_cache_bytes,
        "memory": backend.memory(),
    });
    if let StepJudge::Vlm(half) = &judge {
        // The VLM judged instead of CLIP: its phases replace text encoding and scoring.
        out["vlm_shape"] = json!(args.vlm_shape);
        out["vlm"] = half.describe(&t.vlm);
        out["seconds"] = json!({
            "generation": t.generation, "prefill": t.vlm.prefill, "decoding": t.vlm.decoding,
            "matching": t.vlm.matching, "vision_once": half.vision_seconds,
            // The phases' sum: the bench runs the prefill a second time, alone, to time it apart.
            "total": t.generation + t.vlm.prefill + t.vlm.decoding + t.vlm.matching,
        });
        if let Some(object) = out.as_object_mut() {
            for key in ["clip_shape", "clip", "scoring"] {
                object.remove(key);
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
