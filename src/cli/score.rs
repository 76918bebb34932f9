//! `glov-cuda score`: accuracies of the templates in a file on a dataset split.

use super::output::{Format, ScoreReport, TemplateRow};
use crate::backend::Backend;
use crate::dataset::{self, Split};
use crate::models::clip::ClipModel;
use crate::scoring::{EncodeOptions, Scorer, default_cache_dir, encode_images, read_templates};
use anyhow::{Result, bail};
use clap::Args;
use std::num::NonZeroUsize;
use std::path::PathBuf;

#[derive(Args)]
pub struct ScoreArgs {
    /// CLIP model directory or org/name in the HF cache.
    #[arg(long, value_name = "MODEL")]
    clip: String,
    /// Dataset: a folder of class folders (root/<class>/*.jpg), or the image root of a split file.
    #[arg(long, value_name = "DIR")]
    dataset: PathBuf,
    /// CoOp split file (JSON with train/val/test lists of [path, label, classname]).
    #[arg(long, value_name = "FILE")]
    split_file: Option<PathBuf>,
    /// Which split to score on.
    #[arg(long, default_value = "test")]
    split: Split,
    /// Images per class, drawn with --seed (0 or absent: all).
    #[arg(long, value_name = "K")]
    shots: Option<usize>,
    /// Seed of the k-shot draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Templates file: one per line, each with one class slot, `{}` or `<category>`.
    #[arg(long, value_name = "FILE")]
    templates: PathBuf,
    /// Also score the ensemble of all templates (class features averaged over templates).
    #[arg(long)]
    ensemble: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Images per vision-tower batch.
    #[arg(long, default_value = "64", value_name = "N")]
    image_batch: NonZeroUsize,
    /// Most texts per text-tower pass.
    #[arg(long, default_value = "1024", value_name = "N")]
    text_batch: NonZeroUsize,
    /// Folder of the image-feature cache (default: $GLOV_CUDA_CACHE, else $XDG_CACHE_HOME/glov-cuda, else
    /// ~/.cache/glov-cuda).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Compute image features without reading or writing the cache.
    #[arg(long)]
    no_cache: bool,
    /// Leave out unreadable or corrupt images with a warning, instead of failing.
    #[arg(long)]
    skip_bad_images: bool,
}

pub fn run<B: Backend>(backend: &B, args: ScoreArgs) -> Result<()> {
    let templates = read_templates(&args.templates)?;
    let mut data = dataset::open(&args.dataset, args.split_file.as_deref(), args.split)?;
    if let Some(k) = args.shots.filter(|&k| k > 0) {
        data = data.k_shot(k, args.seed);
    }
    if data.samples.is_empty() {
        bail!("the {} split of {} has no images", args.split, args.dataset.display());
    }
    let model = ClipModel::open(backend, &args.clip)?;
    let paths: Vec<PathBuf> = data.samples.iter().map(|s| s.path.clone()).collect();
    let options = EncodeOptions {
        batch_size: args.image_batch.get(),
        cache_dir: if args.no_cache { None } else { args.cache_dir.clone().or_else(default_cache_dir) },
        skip_bad_images: args.skip_bad_images,
    };
    let features = encode_images(backend, &model, &paths, &options)?;
    let labels: Vec<u32> = features.kept.iter().map(|&i| data.samples[i].label as u32).collect();
    let scorer = Scorer::new(
        backend,
        &model.clip,
        &model.tokenizer,
        &features.features,
        labels,
        data.classnames.clone(),
        args.text_batch.get(),
    )?;
    let accuracies = scorer.score_templates(&templates)?;
    let ensemble = if args.ensemble { Some(scorer.score_ensemble(&templates)?) } else { None };
    let report = ScoreReport {
        model: model.checkpoint.dir.display().to_string(),
        dataset: args.dataset.display().to_string(),
        split: args.split.to_string(),
        images: scorer.num_images(),
        skipped_images: features.skipped.len(),
        classes: data.classnames.len(),
        templates: templates
            .into_iter()
            .zip(accuracies)
            .map(|(template, accuracy)| TemplateRow { template, accuracy })
            .collect(),
        ensemble,
    };
    print!("{}", report.render(args.format)?);
    Ok(())
}
