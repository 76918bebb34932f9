//! `glov-cuda bench vlm`: the encoder-decoder judge of GLOV's second setting at a published LLaVA-OneVision shape,
//! with random weights and no files, phase by phase:
//! - the image side: the processor's tiles (host), the vision tower and projector (backend), the packing with
//!   `image_newline` (host), for one synthetic image of `--image` pixels;
//! - the language model: the prefill of `--questions` questions over that image as the judge asks them (the
//!   image's prefix, the conversation's first tokens and the image's features, once for all; then each question
//!   and the conversation's closing tokens), and greedy decoding of `--new-tokens` tokens for each, as one batch,
//!   with no stop tokens;
//! - the matcher (an MPNet of `all-mpnet-base-v2`'s shape): `--answers` answers of about `--answer-tokens` tokens
//!   embedded.
//!
//! Every timing is the median of `--repeat` runs after a warm-up, stopped only after the backend has finished.

use super::bench::median_seconds;
use super::bench_llm::{BenchDevice, random_prompt, timed};
use crate::backend::Backend;
use crate::generation::generate::{GenerateOptions, PromptEmbeddings, SharedPrefix, generate_shared};
use crate::models::llava::random::{SHAPES, Shape, image_weights, shape};
use crate::models::llava::{ImageEncoder, ImageFeatures};
use crate::models::llm::{Llm, parameter_count};
use crate::models::sentence::SentenceEncoder;
use crate::models::sentence::config::EncoderConfig;
use crate::models::sentence::random::{mpnet_base_config, random_mpnet};
use crate::sampling::mix64;
use anyhow::{Context, Result, ensure};
use clap::Args;
use image::RgbImage;
use serde_json::json;
use std::time::Instant;

/// Tokens of the conversation before the image (`<|im_start|>system\nYou are a helpful
/// assistant.<|im_end|>\n<|im_start|>user\n` in Qwen2's tokenizer), after it before the question (`\n`), and
/// after the question (`<|im_end|>\n<|im_start|>assistant\n`).
const BEFORE_IMAGE: usize = 14;
const BEFORE_QUESTION: usize = 1;
const AFTER_QUESTION: usize = 5;

#[derive(Args)]
pub struct VlmBenchArgs {
    /// The model shape (random weights; the matcher is all-mpnet-base-v2's shape).
    #[arg(long, default_value = "llava-ov-0.5b", value_parser = clap::builder::PossibleValuesParser::new(SHAPES))]
    shape: String,
    /// Keep only the first N vision-tower layers (the last kept is the feature layer), for quick runs.
    #[arg(long, value_name = "N")]
    vision_layers: Option<usize>,
    /// Keep only the first N language-model layers, for quick runs.
    #[arg(long, value_name = "N")]
    llm_layers: Option<usize>,
    /// A language-model vocabulary of N tokens instead of the shape's, for quick runs.
    #[arg(long, value_name = "N")]
    vocab: Option<usize>,
    /// Keep only the first N matcher layers, for quick runs.
    #[arg(long, value_name = "N")]
    matcher_layers: Option<usize>,
    /// The synthetic image's size, WIDTHxHEIGHT (it decides the tiles and image tokens).
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    image: (u32, u32),
    /// Questions asked about the one image.
    #[arg(long, default_value_t = 16)]
    questions: usize,
    /// Tokens of each question.
    #[arg(long, default_value_t = 20)]
    question_tokens: usize,
    /// Greedy new tokens of each answer (the reference's 50).
    #[arg(long, default_value_t = 50)]
    new_tokens: usize,
    /// Answers embedded by the matcher.
    #[arg(long, default_value_t = 1000)]
    answers: usize,
    /// Mean tokens of an answer (lengths spread over half to one and a half times this).
    #[arg(long, default_value_t = 24)]
    answer_tokens: usize,
    /// Timed repetitions of each measurement (the median is reported), after one warm-up.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Seed of the weights, the image and the prompts.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub(super) fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT"))?;
    let side = |v: &str| match v.parse::<u32>() {
        Ok(v) if (1..=8192).contains(&v) => Ok(v),
        _ => Err(format!("{v:?} is not a side of 1 to 8192 pixels")),
    };
    Ok((side(w)?, side(h)?))
}

/// A smooth synthetic image with some texture, so that resizing has work to do.
pub(super) fn synthetic_image((width, height): (u32, u32), seed: u64) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let noise = (mix64(seed ^ mix64(((y as u64) << 32) | x as u64)) >> 58) as u32;
        image::Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, ((x + y + noise * 4) % 256) as u8])
    })
}

/// Token counts of `n` answers spread over `[mean / 2, 3 mean / 2]`, at least 3 (start, one token, end).
pub(super) fn answer_lengths(n: usize, mean: usize, seed: u64) -> Vec<usize> {
    let (low, span) = ((mean / 2).max(3), mean.max(1));
    (0..n as u64).map(|i| low + (mix64(seed ^ mix64(i)) % span as u64) as usize).collect()
}

/// How much of each model a quick run keeps: the first N layers, a smaller vocabulary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cuts {
    pub vision_layers: Option<usize>,
    pub llm_layers: Option<usize>,
    pub vocab: Option<usize>,
    pub matcher_layers: Option<usize>,
}

/// A random LLaVA-OneVision of a named shape and a random MPNet matcher, as the benchmarks use them.
pub struct RandomJudge<B: Backend> {
    pub shape: Shape,
    pub encoder: ImageEncoder<B>,
    pub llm: Llm<B>,
    pub matcher_config: EncoderConfig,
    pub matcher: SentenceEncoder<B>,
}

impl<B: Backend> RandomJudge<B> {
    pub fn new(backend: &B, name: &str, cuts: Cuts, seed: u64) -> Result<Self> {
        let mut s = shape(name)?;
        let positive = |n: Option<usize>, what: &str| -> Result<Option<usize>> {
            ensure!(n != Some(0), "{what} must be positive");
            Ok(n)
        };
        if let Some(n) = positive(cuts.vision_layers, "the vision layers kept")? {
            s.config.vision.tower.num_layers = n.min(s.config.vision.tower.num_layers);
            s.config.feature_layers = vec![s.config.vision.tower.num_layers];
        }
        if let Some(n) = positive(cuts.llm_layers, "the language-model layers kept")? {
            s.llm.num_layers = n.min(s.llm.num_layers);
        }
        if let Some(v) = positive(cuts.vocab, "the vocabulary")? {
            s.llm.vocab_size = v;
        }
        let mut matcher_config = mpnet_base_config();
        if let Some(n) = positive(cuts.matcher_layers, "the matcher layers kept")? {
            matcher_config.num_layers = n.min(matcher_config.num_layers);
        }
        let store = image_weights(&s.config, crate::checkpoint::DType::BF16, seed);
        let encoder = ImageEncoder::load(backend, &store, s.config.clone(), s.processor.clone(), "random weights")?;
        drop(store);
        let llm = Llm::random(backend, s.llm.clone(), mix64(seed ^ 1))?;
        let matcher = random_mpnet(backend, matcher_config.clone(), mix64(seed ^ 2))?;
        Ok(Self { shape: s, encoder, llm, matcher_config, matcher })
    }

    /// The questions' prompts about one image of `image_tokens` tokens, as the judge groups them: the image's
    /// prefix (random conversation tokens around the image's positions), then each question's tokens.
    pub fn questions(&self, image_tokens: usize, questions: &[Vec<u32>], seed: u64) -> (SharedPrefix, Vec<usize>) {
        let vocab = self.shape.llm.vocab_size;
        let prefix = random_prompt(BEFORE_IMAGE + image_tokens + BEFORE_QUESTION, vocab, seed);
        let closing = random_prompt(AFTER_QUESTION, vocab, mix64(seed ^ 3));
        let group = SharedPrefix {
            prefix,
            continuations: questions.iter().map(|q| [q.as_slice(), &closing].concat()).collect(),
            steer: None,
        };
        (group, (BEFORE_IMAGE..BEFORE_IMAGE + image_tokens).collect())
    }
}

pub fn run<B: BenchDevice>(backend: &B, args: VlmBenchArgs) -> Result<()> {
    ensure!(args.questions > 0 && args.new_tokens > 0, "--questions and --new-tokens must be positive");
    ensure!(args.answers > 0 && args.answer_tokens > 0, "--answers and --answer-tokens must be positive");
    let cuts = Cuts {
        vision_layers: args.vision_layers,
        llm_layers: args.llm_layers,
        vocab: args.vocab,
        matcher_layers: args.matcher_layers,
    };
    let start = Instant::now();
    let judge = RandomJudge::new(backend, &args.shape, cuts, args.seed)?;
    backend.synchronize()?;
    let init_seconds = start.elapsed().as_secs_f64();
    tracing::info!(shape = %args.shape, seconds = init_seconds, "random models made");
    let RandomJudge { shape: s, encoder, llm, matcher_config, matcher } = &judge;

    let img = synthetic_image(args.image, args.seed);
    let tiles = encoder.tiles(&img)?;
    let tower = encoder.tower(backend, &tiles)?;
    let image: ImageFeatures = encoder.pack(&tiles, &tower)?;
    let tiles_seconds = median_seconds("anyres tiles", args.repeat, || encoder.tiles(&img).map(|_| ()))?;
    let tower_seconds =
        median_seconds("vision tower and projector", args.repeat, || encoder.tower(backend, &tiles).map(|_| ()))?;
    let pack_seconds = median_seconds("packing", args.repeat, || encoder.pack(&tiles, &tower).map(|_| ()))?;
    let image_seconds = tiles_seconds + tower_seconds + pack_seconds;

    let prefix_tokens = BEFORE_IMAGE + image.tokens + BEFORE_QUESTION;
    let continuation_tokens = args.question_tokens + AFTER_QUESTION;
    let prompt_tokens = prefix_tokens + continuation_tokens;
    ensure!(
        prompt_tokens + args.new_tokens <= s.llm.max_positions,
        "a prompt of {prompt_tokens} tokens and {} new tokens is past the model's context of {} (a smaller --image)",
        args.new_tokens,
        s.llm.max_positions
    );
    let vocab = s.llm.vocab_size;
    let asked: Vec<Vec<u32>> = (0..args.questions)
        .map(|q| random_prompt(args.question_tokens, vocab, mix64(args.seed ^ (q as u64 + 11))))
        .collect();
    let (group, positions) = judge.questions(image.tokens, &asked, mix64(args.seed ^ 10));
    let replaced = [PromptEmbeddings { positions, values: &image.features }];
    let groups = std::slice::from_ref(&group);
    // No stop tokens: every answer runs to the end.
    let options = |max_new_tokens| GenerateOptions::greedy(max_new_tokens, Vec::new());
    let (prefill_seconds, _) =
        timed(backend, 1, args.repeat, || generate_shared(backend, llm, groups, &replaced, &options(0)))?;
    tracing::info!(seconds = prefill_seconds, "prefill timed");
    let (generate_seconds, generation) =
        timed(backend, 0, args.repeat, || generate_shared(backend, llm, groups, &replaced, &options(args.new_tokens)))?;
    let decoded: usize = generation.sequences.iter().map(|q| q.tokens.len()).sum();
    ensure!(decoded == args.questions * args.new_tokens, "{decoded} tokens decoded, not questions x new tokens");
    let decode_seconds = generate_seconds - prefill_seconds;
    ensure!(decode_seconds > 0.0, "decoding took no time over the prefill; use more --new-tokens or --repeat");
    tracing::info!(tokens_per_s = decoded as f64 / decode_seconds, "decode timed");

    let lengths = answer_lengths(args.answers, args.answer_tokens, args.seed);
    let answers: Vec<Vec<u32>> = lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| random_prompt(n, matcher_config.vocab_size, mix64(args.seed ^ (i as u64 + 1_000_000))))
        .collect();
    let matcher_seconds = median_seconds("matcher", args.repeat, || matcher.embed_ids(backend, &answers).map(|_| ()))?;
    let memory = backend.memory();

    // The prefix once, then each continuation but its last token (the first decode step feeds that one).
    let prefill_tokens = prefix_tokens + args.questions * (continuation_tokens - 1);
    let v = &s.config.vision;
    let out = json!({
        "bench": "vlm",
        "shape": args.shape,
        "backend": backend.describe(),
        "engine": concat!(env!("CARGO_PKG_VERSION"), " (", env!("GLOV_CUDA_COMMIT"), ")"),
        "weights": "bf16, random",
        "config": {
            "vision": {"layers": v.tower.num_layers, "hidden": v.tower.hidden_size, "tile": v.image_size,
                       "patch": v.patch_size, "tokens_per_tile": v.grid() * v.grid()},
            "llm": super::bench_llm::describe_config(&s.llm),
            "matcher": {"layers": matcher_config.num_layers, "hidden": matcher_config.hidden_size},
            "parameters": {"llm": parameter_count(&s.llm)},
        },
        "repeat": args.repeat,
        "init_seconds": init_seconds,
        "image": {
            "size": [args.image.0, args.image.1], "resolution": [tiles.best.1, tiles.best.0],
            "tiles": image.tiles, "image_tokens": image.tokens,
            "tiles_seconds": tiles_seconds, "tower_seconds": tower_seconds, "pack_seconds": pack_seconds,
            "seconds": image_seconds, "images_per_s": 1.0 / image_seconds,
            "tiles_per_s": image.tiles as f64 / tower_seconds,
            "what": "one image: the processor's tiles (host), the vision tower and projector (backend), the packing \
                     with image_newline (host)",
        },
        "prefill": {
            "questions": args.questions, "prompt_tokens": prompt_tokens, "prefix_tokens": prefix_tokens,
            "tokens": prefill_tokens, "tokens_unshared": args.questions * (prompt_tokens - 1),
            "seconds": prefill_seconds, "tokens_per_s": prefill_tokens as f64 / prefill_seconds,
            "what": "the image's prefix once, then every question's continuation but its last token, into the KV \
                     cache (tokens_unshared: what prefilling each whole prompt would take)",
        },
        "decode": {
            "questions": args.questions, "new_tokens": args.new_tokens, "tokens": decoded,
            "seconds": decode_seconds, "tokens_per_s": decoded as f64 / decode_seconds,
            "step_seconds": decode_seconds / args.new_tokens as f64,
            "answers_per_s": args.questions as f64 / generate_seconds,
            "kv_cache_bytes": generation.kv_cache_bytes,
            "what": "greedy, no stop tokens, one batch; seconds = time(new_tokens) - time(prefill only); \
                     answers_per_s counts the prefill too",
        },
        "matcher": {
            "answers": args.answers, "tokens": lengths.iter().sum::<usize>(), "seconds": matcher_seconds,
            "answers_per_s": args.answers as f64 / matcher_seconds,
            "what": "answers of random tokens embedded (mean pooling, normalised), batched by length",
        },
        "memory": memory,
    });
    println!("{}", serde_json::to_string_pretty(&out).context("writing the result")?);
    Ok(())
}
