//! `glov-cuda bench`: benchmarks of randomly initialised models of named shapes (no model files: the weights are
//! drawn with a seed, CLIP's tokenizer is OpenAI's, built in), on the chosen backend; JSON on stdout.
//!
//! - `bench clip`: images/s of the vision tower and templates/s of scoring;
//! - `bench llm`: prefill and decode tokens/s of an LLM, against the memory-bandwidth roofline (`bench_llm`);
//! - `bench glov-step`: one whole GLOV step, steered generation then scoring, with both models (`bench_glov`);
//! - `bench vlm`: LLaVA-OneVision's image side, prefill and decoding, and the sentence matcher (`bench_vlm`);
//! - `bench gemm`: the linear layers' product at GLOV's shapes, in each tile shape side by side (`bench_gemm`).

use super::bench_gemm::{self, GemmBenchArgs};
use super::bench_glov::{self, GlovStepBenchArgs};
use super::bench_llm::{self, BenchDevice, LlmBenchArgs};
use super::bench_vlm::{self, VlmBenchArgs};
use crate::backend::Backend;
use crate::checkpoint::DType;
use crate::models::clip::{Clip, SHAPES, random_weights, shape_config};
use crate::scoring::Scorer;
use crate::tokenizer::openai_clip_tokenizer;
use anyhow::{Result, ensure};
use clap::{Args, Subcommand};
use serde_json::json;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The vision tower's images/s and zero-shot scoring's templates/s.
    Clip(ClipBenchArgs),
    /// An LLM's prefill and decode tokens/s (one shared prompt, n sequences), against the memory-bandwidth
    /// roofline of decoding.
    Llm(LlmBenchArgs),
    /// One whole GLOV step: steered generation of several prompt groups, then scoring of the new templates.
    GlovStep(GlovStepBenchArgs),
    /// LLaVA-OneVision and its sentence matcher: images/s through the vision tower and projector, prefill and
    /// decode tokens/s of many questions over one image, and the matcher's answers/s.
    Vlm(VlmBenchArgs),
    /// TFLOP/s of the linear layers' product at the shapes of a GLOV step, in each tile shape of the tensor-core
    /// kernel side by side.
    Gemm(GemmBenchArgs),
}

#[derive(Args)]
pub struct ClipBenchArgs {
    /// The model shape (random weights).
    #[arg(long, default_value = "vit-b-32", value_parser = clap::builder::PossibleValuesParser::new(SHAPES))]
    shape: String,
    /// Vision-tower batch sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "256,1024")]
    batch: Vec<usize>,
    /// Classes of the scoring benchmark.
    #[arg(long, default_value_t = 1000)]
    classes: usize,
    /// Cached image features scored against.
    #[arg(long, default_value_t = 1000)]
    images: usize,
    /// Templates scored per timed call.
    #[arg(long, default_value_t = 40)]
    templates: usize,
    /// Timed repetitions of each measurement (the median is reported), after one untimed warm-up.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Most texts per text-tower pass (as score and optimize).
    #[arg(long, default_value_t = 1024)]
    text_batch: usize,
}

/// The median of `repeat` timed runs of `f`, after one warm-up run; each run is logged as it ends (a CPU run can
/// take minutes), under `what`.
pub(super) fn median_seconds(what: &str, repeat: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    f()?;
    tracing::info!("{what}: warm-up run in {:.2} s", start.elapsed().as_secs_f64());
    let mut times = Vec::with_capacity(repeat);
    for run in 1..=repeat.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
        tracing::info!("{what}: run {run}/{} in {:.2} s", repeat.max(1), start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Deterministic pseudo-random values in [-1, 1).
pub(super) fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let bits = crate::sampling::mix64(seed ^ crate::sampling::mix64(i));
            (bits >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Class names and templates that tokenise to realistic lengths.
pub(super) fn class_names(n: usize) -> Vec<String> {
    let adjectives = ["red", "spotted", "mountain", "river", "golden", "wild", "desert", "sea", "giant", "night"];
    let things = ["fox", "owl", "bicycle", "lighthouse", "tulip", "beetle", "canoe", "harp", "cactus", "truck"];
    (0..n).map(|i| format!("{} {} {}", adjectives[i % 10], adjectives[(i / 10) % 10], things[(i / 100) % 10])).collect()
}

pub(super) fn templates(n: usize) -> Vec<String> {
    let styles = [
        "a photo of a {}.",
        "a blurry photo of the {}.",
        "itap of a {}.",
        "a close-up photo of a {} in the wild.",
        "a drawing of a {}, in a children's book.",
        "a low resolution photo of the {}.",
        "a sculpture of a {}.",
        "art of the {}.",
    ];
    (0..n).map(|i| format!("{} (variant {i})", styles[i % styles.len()])).collect()
}

pub fn run<B: BenchDevice>(backend: &B, command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Clip(args) => clip(backend, args),
        BenchCommand::Llm(args) => bench_llm::run(backend, args),
        BenchCommand::GlovStep(args) => bench_glov::run(backend, args),
        BenchCommand::Vlm(args) => bench_vlm::run(backend, args),
        BenchCommand::Gemm(args) => bench_gemm::run(backend, args),
    }
}

fn clip<B: Backend>(backend: &B, args: ClipBenchArgs) -> Result<()> {
    ensure!(
        args.classes > 0 && args.images > 0 && args.templates > 0,
        "--classes, --images and --templates must be positive"
    );
    let config = shape_config(&args.shape)?;
    let tokenizer = openai_clip_tokenizer(config.text.eos_token_id)?;
    let clip = Clip::from_store(backend, &random_weights(&config, DType::BF16, 1), config.clone())?;
    let pixels_per_image = 3 * config.vision.image_size * config.vision.image_size;

    let mut vision = Vec::new();
    for &batch in &args.batch {
        let pixels = backend.upload(&values(batch * pixels_per_image, batch as u64), batch, pixels_per_image)?;
        let seconds = median_seconds(&format!("vision tower, {batch} images"), args.repeat, || {
            // Downloading the features waits for the work to finish.
            backend.download(&clip.encode_images(backend, &pixels)?).map(|_| ())
        })?;
        vision.push(json!({"batch": batch, "seconds": seconds, "images_per_s": batch as f64 / seconds}));
    }

    let dim = config.projection_dim;
    let labels: Vec<u32> = (0..args.images).map(|i| (i % args.classes) as u32).collect();
    let features = values(args.images * dim, 7);
    let scorer =
        Scorer::new(backend, &clip, &tokenizer, &features, labels, class_names(args.classes), args.text_batch)?;
    let templates = templates(args.templates);
    let what = format!("scoring {} templates x {} classes", args.templates, args.classes);
    let seconds = median_seconds(&what, args.repeat, || scorer.score_templates(&templates).map(|_| ()))?;
    let out = json!({
        "bench": "clip",
        "shape": args.shape,
        "backend": backend.describe(),
        "engine": concat!(env!("CARGO_PKG_VERSION"), " (", env!("GLOV_CUDA_COMMIT"), ")"),
        "vision": vision,
        "scoring": {
            "templates": args.templates, "classes": args.classes, "images": args.images,
            "seconds": seconds, "templates_per_s": args.templates as f64 / seconds,
        },
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
