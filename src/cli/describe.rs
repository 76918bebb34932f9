//! `glov-cuda describe`: class descriptions written by an LLM in CuPL's or DCLIP's way, as a JSON file of class
//! names to sentences that `score --descriptions` reads.

use crate::backend::Backend;
use crate::dataset::{self, Split};
use crate::describe::{DescribeOptions, Style, describe};
use crate::generation::sampling::SamplingParams;
use crate::glov::settings::parse_finite;
use crate::models::llm::LlmModel;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct DescribeArgs {
    /// The LLM: a model directory, GGUF file, or org/name in the HF cache.
    #[arg(long, value_name = "MODEL")]
    llm: String,
    /// The dataset whose classes are described: class folders, or the image root of --split-file.
    #[arg(long, value_name = "DIR")]
    dataset: PathBuf,
    /// CoOp split file (its class names are used).
    #[arg(long, value_name = "FILE")]
    split_file: Option<PathBuf>,
    /// cupl: sampled answers to several questions per class; dclip: the listed features of one few-shot answer.
    #[arg(long, value_enum)]
    style: Style,
    /// The JSON file written: class names to lists of sentences.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// CuPL's questions, one per line, `{}` where the class goes with its article ("a", or "an" before an
    /// upper-case vowel) [default: CuPL's five ImageNet questions].
    #[arg(long, value_name = "FILE")]
    questions: Option<PathBuf>,
    /// Answers sampled per question [default: 10 for cupl, 1 for dclip].
    #[arg(long, value_name = "N")]
    samples: Option<NonZeroUsize>,
    /// Sampling temperature [default: 0.99 for cupl, 0.7 for dclip, as published].
    #[arg(long, value_parser = parse_finite)]
    temperature: Option<f32>,
    /// Most tokens per answer [default: 50 for cupl, 100 for dclip, as published].
    #[arg(long, value_name = "T")]
    max_new_tokens: Option<NonZeroUsize>,
    /// Top-k filter of sampling, 0 for none (the published runs used none).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Top-p filter of sampling, 1 for none (the published runs used none).
    #[arg(long, default_value_t = 1.0, value_parser = parse_finite)]
    top_p: f32,
    /// Seed of sampling (with the batch size, it fixes every answer).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most sequences decoded together.
    #[arg(long, default_value = "256", value_name = "N")]
    batch: NonZeroUsize,
}

/// A questions file: one question per line with one `{}`; blank lines skipped; errors name the line.
fn read_questions(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read questions file {}", path.display()))?;
    let mut questions = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.matches("{}").count() != 1 {
            bail!("questions file {}, line {}: {line:?} needs one {{}} where the class goes", path.display(), i + 1);
        }
        questions.push(line.to_string());
    }
    if questions.is_empty() {
        bail!("questions file {} holds no questions", path.display());
    }
    Ok(questions)
}

pub fn run<B: Backend>(backend: &B, args: DescribeArgs) -> Result<()> {
    if args.questions.is_some() && args.style == Style::Dclip {
        bail!("--questions are CuPL's: DCLIP asks its one published few-shot question");
    }
    let data = dataset::open(&args.dataset, args.split_file.as_deref(), Split::Test)?;
    let mut options = DescribeOptions::published(args.style, args.seed, args.batch.get());
    if let Some(path) = &args.questions {
        options.questions = read_questions(path)?;
    }
    if let Some(samples) = args.samples {
        options.samples = samples.get();
    }
    if let Some(tokens) = args.max_new_tokens {
        options.max_new_tokens = tokens.get();
    }
    options.sampling = SamplingParams {
        temperature: args.temperature.unwrap_or(options.sampling.temperature),
        top_k: args.top_k,
        top_p: args.top_p,
        greedy: false,
    };
    options.sampling.validate().context("sampling")?;
    let model = LlmModel::open(backend, &args.llm)?;
    let descriptions = describe(backend, &model, &data.classnames, &options)?;
    let empty: Vec<&String> = descriptions.0.iter().filter(|(_, s)| s.is_empty()).map(|(c, _)| c).collect();
    if !empty.is_empty() {
        tracing::warn!(classes = ?empty, "classes without a sentence: score --descriptions will refuse the file");
    }
    let sentences: usize = descriptions.0.values().map(Vec::len).sum();
    crate::atomic_file::write(&args.out, (serde_json::to_string_pretty(&descriptions)? + "\n").as_bytes())?;
    println!(
        "{sentences} sentences for {} classes ({} without one) written to {}",
        descriptions.0.len(),
        empty.len(),
        args.out.display()
    );
    Ok(())
}
