//! `glov-cuda score`: accuracies on a dataset split of the templates in a file, of a published template set and
//! its ensemble, or of class descriptions.

use super::output::{DescriptionsScore, Format, ScoreReport, TemplateRow, TemplateSetName, WaffleScore};
use crate::backend::Backend;
use crate::dataset::{self, Split};
use crate::models::clip::ClipModel;
use crate::models::llava::LlavaModel;
use crate::models::sentence::SentenceModel;
use crate::scoring::descriptions::{Aggregate, Descriptions};
use crate::scoring::generative::{AskOptions, DEFAULT_FEATURE_MEMORY_GIB, FeatureMemory, GenerativeScorer};
use crate::scoring::{EncodeOptions, Scorer, default_cache_dir, encode_images, read_templates, template_sets, waffle};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(group(clap::ArgGroup::new("texts").required(true).multiple(true).args(["templates", "template_set", "descriptions", "waffle", "prompts"])))]
pub struct ScoreArgs {
    /// CLIP model directory or org/name in the HF cache.
    #[arg(long, value_name = "MODEL", required_unless_present = "vlm", conflicts_with = "vlm")]
    clip: Option<String>,
    /// A LLaVA-OneVision model that answers each of --prompts about each image (greedy, the reference's
    /// conversation, the prompt's double quotes stripped and a `?` appended); with --matcher.
    #[arg(
        long,
        value_name = "MODEL",
        requires_all = ["matcher", "prompts"],
        conflicts_with_all = ["templates", "template_set", "descriptions", "waffle", "ensemble", "skip_bad_images",
                              "image_batch", "text_batch"]
    )]
    vlm: Option<String>,
    /// The sentence-transformers model that matches an answer to the class whose name it is nearest to (cosine of
    /// the embeddings), e.g. sentence-transformers/all-mpnet-base-v2.
    #[arg(long, value_name = "MODEL", requires = "vlm")]
    matcher: Option<String>,
    /// The VLM's prompts, one per line (blank lines skipped).
    #[arg(long, value_name = "FILE", requires = "vlm")]
    prompts: Option<PathBuf>,
    /// Most tokens of a VLM answer.
    #[arg(long, default_value = "50", value_name = "N")]
    max_new_tokens: NonZeroUsize,
    /// Most VLM answers decoded together.
    #[arg(long, default_value = "64", value_name = "N")]
    vlm_batch: NonZeroUsize,
    /// Host memory, in GiB, for the VLM's image features; the others are read back from the disk cache (or
    /// encoded again each time under --no-cache).
    #[arg(long, default_value_t = DEFAULT_FEATURE_MEMORY_GIB, value_name = "GIB", requires = "vlm")]
    vlm_feature_memory: usize,
    /// Write every VLM answer to this JSONL file: prompt, image, label, answer, predicted class.
    #[arg(long, value_name = "FILE", requires = "vlm")]
    answers: Option<PathBuf>,
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
    templates: Option<PathBuf>,
    /// A published template set, scored template by template and as an ensemble: `imagenet-80` (OpenAI's 80
    /// ImageNet templates), `imagenet-7` (their forward selection), or CLIP's list for a dataset, by its name
    /// (`oxford_pets`, `Flowers102`, `dtd`, ...; an unknown name lists them all).
    #[arg(long, value_name = "NAME", conflicts_with = "templates")]
    template_set: Option<String>,
    /// Also score the ensemble of all templates (class features averaged over templates).
    #[arg(long)]
    ensemble: bool,
    /// Class descriptions: a JSON object of class names to lists of sentences (CuPL's published format, and what
    /// `describe` writes); every class of the dataset must have one sentence or more.
    #[arg(long, value_name = "FILE")]
    descriptions: Option<PathBuf>,
    /// How descriptions score a class: `embedding` (CuPL: the cosine with the normalised mean of the sentences'
    /// normalised embeddings) or `score` (DCLIP: the mean of the sentences' cosines).
    #[arg(long, value_enum, default_value_t = Aggregate::Embedding, requires = "descriptions")]
    aggregate: Aggregate,
    /// WaffleCLIP: describe every class by the same N pairs of random-word and random-character descriptors
    /// ("A photo of a {class}, which is/has ..."), scored as DCLIP scores descriptions (15 as published).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    waffle: Option<u32>,
    /// WaffleCLIP runs, drawn from seeds 0, 1, ...: the mean and the spread (population standard deviation) of
    /// their accuracies (7 as published).
    #[arg(long, value_name = "R", default_value_t = 7, requires = "waffle", value_parser = clap::value_parser!(u32).range(1..=1000))]
    waffle_runs: u32,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Images per vision-tower batch.
    #[arg(long, default_value = "64", value_name = "N")]
    image_batch: NonZeroUsize,
    /// Most texts per text-tower pass.
    #[arg(long, default_value = "1024", value_name = "N")]
    text_batch: NonZeroUsize,
    /// Folder of the image-feature caches, CLIP's and the VLM's (default: $GLOV_CUDA_CACHE, else $XDG_CACHE_HOME/glov-cuda, else
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
    if args.vlm.is_some() {
        return run_generative(backend, args);
    }
    let clip = args.clip.clone().expect("clap requires --clip without --vlm");
    let set = args.template_set.as_deref().map(template_sets::find).transpose()?;
    let templates = match (&args.templates, set) {
        (Some(path), _) => read_templates(path)?,
        (None, Some(set)) => set.templates(),
        (None, None) => Vec::new(),
    };
    let descriptions = args.descriptions.as_deref().map(Descriptions::read).transpose()?;
    let mut data = dataset::open(&args.dataset, args.split_file.as_deref(), args.split)?;
    if let Some(k) = args.shots.filter(|&k| k > 0) {
        data = data.k_shot(k, args.seed);
    }
    if data.samples.is_empty() {
        bail!("the {} split of {} has no images", args.split, args.dataset.display());
    }
    // Checked before any model is loaded or image encoded.
    let sentences = match (&descriptions, &args.descriptions) {
        (Some(d), Some(path)) => Some(
            d.for_classes(&data.classnames)
                .with_context(|| format!("descriptions file {} on {}", path.display(), args.dataset.display()))?,
        ),
        _ => None,
    };
    let model = ClipModel::open(backend, &clip)?;
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
    let ensemble = if (args.ensemble || set.is_some()) && !templates.is_empty() {
        Some(scorer.score_ensemble(&templates)?)
    } else {
        None
    };
    let descriptions = match (&sentences, &args.descriptions) {
        (Some(sentences), Some(file)) => Some(DescriptionsScore {
            file: file.display().to_string(),
            aggregate: args.aggregate,
            sentences: sentences.iter().map(Vec::len).sum(),
            accuracy: scorer.score_descriptions(sentences, args.aggregate)?,
        }),
        _ => None,
    };
    let waffle =
        args.waffle.map(|pairs| score_waffle(&scorer, &data.classnames, pairs, args.waffle_runs)).transpose()?;
    let report = ScoreReport {
        model: model.checkpoint.dir.display().to_string(),
        dataset: args.dataset.display().to_string(),
        split: args.split.to_string(),
        images: scorer.num_images(),
        skipped_images: features.skipped.len(),
        classes: data.classnames.len(),
        template_set: set.map(|s| TemplateSetName { name: s.name.to_string(), source: s.source.to_string() }),
        templates: templates
            .into_iter()
            .zip(accuracies)
            .map(|(template, accuracy)| TemplateRow { template, accuracy })
            .collect(),
        ensemble,
        descriptions,
        waffle,
    };
    print!("{}", report.render(args.format)?);
    Ok(())
}

/// A prompts file: one prompt per line, blank lines skipped; errors name the file.
fn read_prompts(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read prompts file {}", path.display()))?;
    let prompts: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    if prompts.is_empty() {
        bail!("prompts file {} holds no prompts", path.display());
    }
    Ok(prompts)
}

/// `score --vlm --matcher --prompts`: each prompt's generative accuracy.
fn run_generative<B: Backend>(backend: &B, args: ScoreArgs) -> Result<()> {
    let (vlm, matcher) = (args.vlm.as_deref().expect("checked"), args.matcher.as_deref().expect("clap requires it"));
    let prompts = read_prompts(args.prompts.as_deref().expect("clap requires it"))?;
    let mut data = dataset::open(&args.dataset, args.split_file.as_deref(), args.split)?;
    if let Some(k) = args.shots.filter(|&k| k > 0) {
        data = data.k_shot(k, args.seed);
    }
    if data.samples.is_empty() {
        bail!("the {} split of {} has no images", args.split, args.dataset.display());
    }
    let vlm_model = LlavaModel::open(backend, vlm)?;
    let matcher_model = SentenceModel::open(backend, matcher)?;
    let paths: Vec<PathBuf> = data.samples.iter().map(|s| s.path.clone()).collect();
    let labels: Vec<usize> = data.samples.iter().map(|s| s.label).collect();
    let ask = AskOptions {
        max_new_tokens: args.max_new_tokens.get(),
        batch: args.vlm_batch.get(),
        memory: FeatureMemory::new(args.vlm_feature_memory.saturating_mul(1 << 30)),
        cache_dir: if args.no_cache { None } else { args.cache_dir.clone().or_else(default_cache_dir) },
    };
    let scorer = GenerativeScorer::new(backend, (&vlm_model, &matcher_model), &paths, labels, &data.classnames, &ask)?;
    let mut rows = Vec::with_capacity(prompts.len());
    let mut lines = String::new();
    let asked: Vec<&str> = prompts.iter().map(String::as_str).collect();
    for (prompt, (accuracy, judged)) in prompts.iter().zip(scorer.score_all(&asked)?) {
        if args.answers.is_some() {
            for j in &judged {
                let line = serde_json::json!({
                    "prompt": prompt, "image": paths[j.image].display().to_string(), "label": data.classnames[j.label],
                    "answer": j.answer, "predicted": data.classnames[j.predicted],
                });
                lines.push_str(&format!("{line}\n"));
            }
        }
        rows.push(TemplateRow { template: prompt.clone(), accuracy });
    }
    if let Some(path) = &args.answers {
        crate::atomic_file::write(path, lines.as_bytes())?;
    }
    let report = ScoreReport {
        model: vlm_model.checkpoint.dir.display().to_string(),
        dataset: args.dataset.display().to_string(),
        split: args.split.to_string(),
        images: paths.len(),
        skipped_images: 0,
        classes: data.classnames.len(),
        template_set: None,
        templates: rows,
        ensemble: None,
        descriptions: None,
        waffle: None,
    };
    print!("{}", report.render(args.format)?);
    Ok(())
}

/// WaffleCLIP's runs, drawn from seeds 0, 1, ...: their accuracies, then their mean and population standard
/// deviation, as published.
fn score_waffle<B: Backend>(scorer: &Scorer<B>, classnames: &[String], pairs: u32, runs: u32) -> Result<WaffleScore> {
    let (first_descriptors, per_run) = waffle::score_runs(scorer, classnames, pairs as usize, 0..u64::from(runs))?;
    Ok(WaffleScore::new(pairs as usize, first_descriptors, per_run))
}
