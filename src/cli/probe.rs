//! `glov-cuda probe clip`: projected CLIP features as JSON, exactly what HF's `get_text_features` and
//! `get_image_features` return (not normalised); `probe llm`: an LLM's last logits and a block's mean hidden state;
//! `probe embed`: what sentence-transformers' `encode` returns; `probe vlm`: a LLaVA-OneVision answer.

use super::steering_args::SteerArgs;
use crate::backend::Backend;
use crate::generation::hidden::block_output_means;
use crate::generation::prompt_logits::{Steer, last_logits};
use crate::models::clip::ClipModel;
use crate::models::llava::LlavaModel;
use crate::models::llm::LlmModel;
use crate::models::sentence::SentenceModel;
use crate::preprocess;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ProbeCommand {
    /// Text and image features of a CLIP model.
    Clip(ClipProbeArgs),
    /// Last-position logits and a block's mean hidden state of an LLM on a plain-text prompt.
    Llm(LlmProbeArgs),
    /// Sentence embeddings of a sentence-transformers model (MPNet or BERT), as its `encode` returns them.
    Embed(EmbedProbeArgs),
    /// A LLaVA-OneVision model's greedy answer to a question about an image, with the prompt's ids and last logits.
    Vlm(VlmProbeArgs),
}

#[derive(Args)]
pub struct VlmProbeArgs {
    /// LLaVA-OneVision model directory (LlavaOnevisionForConditionalGeneration, either weight layout) or org/name
    /// in the HF cache.
    #[arg(long, value_name = "MODEL")]
    model: String,
    /// The image file.
    #[arg(long, value_name = "PATH")]
    image: PathBuf,
    /// The question, inserted verbatim into the conversation (no `?` is added).
    #[arg(long, value_name = "TEXT")]
    prompt: String,
    /// Most tokens of the answer (it ends earlier at the model's end tokens).
    #[arg(long, default_value_t = 50, value_name = "N")]
    max_new_tokens: usize,
    /// Also print the packed image features that replace the image tokens.
    #[arg(long)]
    features: bool,
}

#[derive(Args)]
pub struct EmbedProbeArgs {
    /// sentence-transformers model directory (modules.json, the transformer's files, 1_Pooling/) or org/name in
    /// the HF cache.
    #[arg(long, value_name = "MODEL")]
    model: String,
    /// A text to embed (repeatable).
    #[arg(long = "text", value_name = "TEXT", required = true)]
    texts: Vec<String>,
}

#[derive(Args)]
pub struct LlmProbeArgs {
    /// LLM directory, GGUF file, or org/name in the HF cache.
    #[arg(long, value_name = "MODEL")]
    model: String,
    /// Plain-text prompt (the tokenizer's own special tokens are added; no chat template).
    #[arg(long, value_name = "TEXT")]
    prompt: String,
    /// Report the mean over the prompt's tokens of this block's output (0-based).
    #[arg(long, value_name = "L")]
    layer: Option<usize>,
    #[command(flatten)]
    steer: SteerArgs,
}

#[derive(Args)]
pub struct ClipProbeArgs {
    /// CLIP model directory or org/name in the HF cache.
    #[arg(long, value_name = "MODEL")]
    model: String,
    /// A text to encode (repeatable).
    #[arg(long = "text", value_name = "TEXT")]
    texts: Vec<String>,
    /// An image file to encode (repeatable).
    #[arg(long = "image", value_name = "PATH")]
    images: Vec<PathBuf>,
}

pub fn run<B: Backend>(backend: &B, command: ProbeCommand) -> Result<()> {
    match command {
        ProbeCommand::Clip(args) => probe_clip(backend, args),
        ProbeCommand::Llm(args) => probe_llm(backend, args),
        ProbeCommand::Embed(args) => probe_embed(backend, args),
        ProbeCommand::Vlm(args) => probe_vlm(backend, args),
    }
}

fn rows(values: Vec<f32>, dim: usize) -> Vec<Vec<f32>> {
    values.chunks_exact(dim.max(1)).map(<[f32]>::to_vec).collect()
}

fn probe_embed<B: Backend>(backend: &B, args: EmbedProbeArgs) -> Result<()> {
    let model = SentenceModel::open(backend, &args.model)?;
    let ids: Vec<Vec<u32>> = args.texts.iter().map(|t| model.tokenizer.encode(t)).collect::<Result<_>>()?;
    let embeddings = model.embed(backend, &args.texts)?;
    println!("{}", json!({"input_ids": ids, "embeddings": embeddings}));
    Ok(())
}

fn probe_vlm<B: Backend>(backend: &B, args: VlmProbeArgs) -> Result<()> {
    let model = LlavaModel::open(backend, &args.model)?;
    let img = preprocess::decode_rgb8(&args.image).with_context(|| format!("image {}", args.image.display()))?;
    let (answer, image) = model.answer(backend, &img, &args.prompt, args.max_new_tokens)?;
    let mut out = json!({
        "input_ids": answer.input_ids,
        "image_tokens": answer.image_tokens,
        "last_logits": answer.last_logits,
        "answer_ids": answer.answer_ids,
        "answer": answer.answer,
    });
    if args.features {
        out["image_features"] = json!(rows(image.features, model.image.config.text_hidden));
    }
    println!("{out}");
    Ok(())
}

fn probe_clip<B: Backend>(backend: &B, args: ClipProbeArgs) -> Result<()> {
    let model = ClipModel::open(backend, &args.model)?;
    let dim = model.clip.config.projection_dim;
    let text_features = if args.texts.is_empty() {
        Vec::new()
    } else {
        let tokens = model.tokenizer.encode_batch(&args.texts)?;
        rows(backend.download(&model.clip.encode_text(backend, &tokens)?)?, dim)
    };
    let image_features = if args.images.is_empty() {
        Vec::new()
    } else {
        let mut pixels = Vec::new();
        for (path, result) in args.images.iter().zip(preprocess::load_images(&args.images, &model.preprocess)) {
            pixels.extend(result.with_context(|| format!("image {}", path.display()))?);
        }
        let batch = backend.upload(&pixels, args.images.len(), pixels.len() / args.images.len())?;
        rows(backend.download(&model.clip.encode_images(backend, &batch)?)?, dim)
    };
    let out = json!({
        "text_features": text_features,
        "image_features": image_features,
        "logit_scale": model.clip.logit_scale,
    });
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// Logits of the prompt's last position (steered when asked) and, with `--layer`, block L's mean output.
fn probe_llm<B: Backend>(backend: &B, args: LlmProbeArgs) -> Result<()> {
    let model = LlmModel::open(backend, &args.model)?;
    let ids = model.tokenizer.encode_plain(&args.prompt)?;
    let steer = args.steer.load()?;
    let steer = steer.as_ref().map(|(vector, layer)| Steer { vector, layer: *layer, mode: args.steer.steer_mode });
    let logits = last_logits(backend, &model.llm, &ids, steer)?;
    let hidden_mean = match args.layer {
        Some(layer) => Some(block_output_means(backend, &model.llm, std::slice::from_ref(&ids), layer)?),
        None => None,
    };
    let out = json!({"token_ids": ids, "last_logits": logits, "hidden_mean": hidden_mean});
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
