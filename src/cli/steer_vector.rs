//! `glov-cuda steer-vector`: alpha * (H(positive) - H(negative)), the mean block-L outputs of two texts, saved as
//! safetensors.

use crate::backend::Backend;
use crate::generation::hidden::block_output_means;
use crate::glov::settings::parse_finite;
use crate::models::llm::LlmModel;
use anyhow::{Result, bail};
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Args)]
pub struct SteerVectorArgs {
    /// LLM directory, GGUF file, or org/name in the HF cache.
    #[arg(long, value_name = "MODEL")]
    llm: String,
    /// The text to steer towards.
    #[arg(long, value_name = "TEXT")]
    positive: String,
    /// The text to steer away from.
    #[arg(long, value_name = "TEXT")]
    negative: String,
    /// The decoder block (0-based) whose output is averaged.
    #[arg(long, value_name = "L")]
    layer: usize,
    /// Scale of the difference of the two means (the guidance strength, as optimize's alphas).
    #[arg(long, default_value_t = 1.0, value_name = "A", value_parser = parse_finite)]
    alpha: f32,
    /// Output safetensors file (one tensor, `steer`); an existing file is kept unless --force.
    #[arg(short = 'o', long = "out", visible_alias = "output", value_name = "FILE")]
    out: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

pub fn run<B: Backend>(backend: &B, args: SteerVectorArgs) -> Result<()> {
    if !args.force && crate::no_follow::exists(&args.out)? {
        bail!("{} already exists: choose another --out, or replace it with --force", args.out.display());
    }
    let model = LlmModel::open(backend, &args.llm)?;
    let texts = [model.tokenizer.encode_plain(&args.positive)?, model.tokenizer.encode_plain(&args.negative)?];
    let means = block_output_means(backend, &model.llm, &texts, args.layer)?;
    let hidden = model.llm.config.hidden_size;
    let vector: Vec<f32> = (0..hidden).map(|i| args.alpha * (means[i] - means[hidden + i])).collect();
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    let metadata = HashMap::from([
        ("layer".to_string(), args.layer.to_string()),
        ("alpha".to_string(), args.alpha.to_string()),
        ("positive".to_string(), args.positive.clone()),
        ("negative".to_string(), args.negative.clone()),
        ("model".to_string(), model.checkpoint.dir.display().to_string()),
    ]);
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![hidden], bytemuck::cast_slice(&vector))?;
    crate::atomic_file::write(&args.out, &safetensors::serialize([("steer", view)], Some(metadata))?)?;
    tracing::info!(norm, hidden, file = %args.out.display(), "steering vector saved");
    Ok(())
}
