//! `glov-cuda optimize`: the GLOV search, its run directory, resume, and the final report.

use crate::backend::Backend;
use crate::dataset::{self, Dataset, Split};
use crate::generation::sampling::SamplingParams;
use crate::glov::engine::{ClipJudge, LlmProposer};
use crate::glov::meta_prompt::{self, MetaPrompt};
use crate::glov::method::Method;
use crate::glov::optimizer::{Judge, LoopConfig, Optimizer, Outcome, PromptKind};
use crate::glov::run_dir::RunDir;
use crate::glov::settings::{self, ConfigFile, Overrides, Settings};
use crate::glov::vlm_judge::VlmJudge;
use crate::glov::{baselines, datasets, report};
use crate::models::clip::ClipModel;
use crate::models::llava::LlavaModel;
use crate::models::llm::LlmModel;
use crate::models::sentence::SentenceModel;
use crate::scoring::generative::{AskOptions, FeatureMemory, GenerativeScorer};
use crate::scoring::{EncodeOptions, Scorer, default_cache_dir, encode_images};
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

#[derive(Args)]
#[command(override_usage = "glov-cuda optimize --llm <MODEL> --clip <MODEL> --dataset <DIR> --dataset-name <NAME> \
    --out <DIR> [OPTIONS]\n       glov-cuda optimize --llm <MODEL> --vlm <MODEL> --matcher <MODEL> --dataset <DIR> \
    --dataset-name <NAME> --out <DIR> [OPTIONS]\n       glov-cuda optimize --config <FILE> [OPTIONS]\n       \
    glov-cuda optimize --out <DIR> --resume")]
#[command(after_long_help = "Every setting can also sit in a TOML file given with --config, under the flag's name \
    (e.g. `max-new-tokens = 50`, `alphas = [1.0, 0.0]`), as can the global options (`device = \"cuda\"`) and `out`; \
    flags override the file. Relative paths in the file are taken from the file's folder, those of flags from the \
    working directory. A resumed run keeps the settings it was started with: give --out and --resume alone, or the \
    same settings again.\n\n\
    The run directory holds config.json, history.jsonl (every scored template), steps.jsonl (every step of every \
    alpha), state.json, plot.png, and at the end results.json, results.csv and best_templates.txt.")]
pub struct OptimizeArgs {
    #[command(flatten)]
    settings: Overrides,
    /// A TOML file of settings (flags override it).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The run directory (created; must not hold another run unless --resume) (required).
    #[arg(short = 'o', long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last completed step.
    #[arg(long)]
    resume: bool,
    /// Print a built-in meta-prompt template (a starting point for --meta-prompt) and exit: glov, llm-opt, or vlm
    /// (GLOV's for whole questions, the default with --vlm) [default: glov].
    #[arg(long, exclusive = true, value_name = "WHICH", num_args = 0..=1, default_missing_value = "glov")]
    print_meta_prompt: Option<BuiltInMetaPrompt>,
}

/// The meta-prompts built into the binary.
#[derive(Clone, Copy, clap::ValueEnum)]
enum BuiltInMetaPrompt {
    Glov,
    LlmOpt,
    Vlm,
}

impl BuiltInMetaPrompt {
    fn text(self) -> &'static str {
        match self {
            BuiltInMetaPrompt::Glov => Method::Glov.default_meta_prompt(),
            BuiltInMetaPrompt::LlmOpt => Method::LlmOpt.default_meta_prompt(),
            BuiltInMetaPrompt::Vlm => meta_prompt::QUESTIONS,
        }
    }
}

/// What fixes a run's results, as `config.json` records it.
#[derive(Deserialize, Serialize)]
struct RunConfig {
    format: u32,
    engine: String,
    device: String,
    settings: Settings,
    layer_used: usize,
    dataset_name_shown: String,
    description_shown: String,
    meta_prompt: String,
    llm: ModelRecord,
    /// The judge: a CLIP model, or a VLM and its matcher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clip: Option<ModelRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vlm: Option<ModelRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    matcher: Option<ModelRecord>,
    images: SplitSizes,
}

#[derive(Deserialize, PartialEq, Serialize)]
struct ModelRecord {
    dir: PathBuf,
    checksum: String,
}

impl ModelRecord {
    fn of(checkpoint: &crate::checkpoint::Checkpoint) -> Result<Self> {
        Ok(Self { dir: checkpoint.dir.clone(), checksum: checkpoint.checksum()? })
    }
}

#[derive(Deserialize, Serialize)]
struct SplitSizes {
    classes: usize,
    train: usize,
    val: usize,
    test: usize,
}

const FORMAT: u32 = 1;

/// Raised when the run stopped on Ctrl-C after saving; the process then exits with 130.
#[derive(Debug, thiserror::Error)]
#[error("stopped after step {steps} of {total} on request; continue with: glov-cuda optimize --out {} --resume", out.display())]
pub struct Interrupted {
    steps: usize,
    total: usize,
    out: PathBuf,
}

fn open_split(settings: &Settings, split: Split) -> Result<Dataset> {
    let data = dataset::open(&settings.dataset, settings.split_file.as_deref(), split)
        .with_context(|| format!("the {split} split"))?;
    if data.samples.is_empty() {
        bail!("the {split} split of {} has no images", settings.dataset.display());
    }
    Ok(data)
}

fn scorer<'a, B: Backend>(
    backend: &'a B,
    clip: &'a ClipModel<B>,
    data: &Dataset,
    settings: &Settings,
    what: &str,
) -> Result<Scorer<'a, B>> {
    let _span = tracing::info_span!("split_features", split = what, images = data.samples.len()).entered();
    let paths: Vec<PathBuf> = data.samples.iter().map(|s| s.path.clone()).collect();
    let options = EncodeOptions {
        batch_size: settings.image_batch,
        cache_dir: if settings.no_cache { None } else { settings.cache_dir.clone().or_else(default_cache_dir) },
        skip_bad_images: false,
    };
    let features = encode_images(backend, clip, &paths, &options).with_context(|| format!("the {what} images"))?;
    let labels = features.kept.iter().map(|&i| data.samples[i].label as u32).collect();
    Scorer::new(
        backend,
        &clip.clip,
        &clip.tokenizer,
        &features.features,
        labels,
        data.classnames.clone(),
        settings.text_batch,
    )
}

/// The judge of one split on the encoder-decoder path: each image's features computed once, the class names
/// embedded once.
fn generative_scorer<'a, B: Backend>(
    backend: &'a B,
    vlm: &'a LlavaModel<B>,
    matcher: &'a SentenceModel<B>,
    data: &Dataset,
    options: &AskOptions,
) -> Result<GenerativeScorer<'a, B>> {
    let paths: Vec<PathBuf> = data.samples.iter().map(|s| s.path.clone()).collect();
    let labels: Vec<usize> = data.samples.iter().map(|s| s.label).collect();
    GenerativeScorer::new(backend, (vlm, matcher), &paths, labels, &data.classnames, options)
}

/// Ctrl-C asks the loop to stop after the step in progress; a second Ctrl-C ends the process at once (the run
/// directory is consistent at every moment, so nothing saved is lost).
fn install_interrupt(quiet: bool) -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        if !quiet {
            eprintln!(
                "\nstopping after the current step (Ctrl-C again to stop now; the run resumes from its last saved step)"
            );
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

fn progress_bar(quiet: bool, total: usize, done: usize) -> indicatif::ProgressBar {
    let target = if quiet { indicatif::ProgressDrawTarget::hidden() } else { indicatif::ProgressDrawTarget::stderr() };
    let bar = indicatif::ProgressBar::with_draw_target(Some(total as u64), target);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("step {pos}/{len} [{bar:25}] {elapsed_precise} (ETA {eta}) {msg}")
    {
        bar.set_style(style);
    }
    bar.set_position(done as u64);
    bar
}

fn best_per_alpha(optimizer: &Optimizer) -> String {
    let parts: Vec<String> =
        optimizer.trajectories.iter().map(|t| format!("a={}: {:.1}%", t.alpha, t.history.best().accuracy)).collect();
    format!("best {}", parts.join(", "))
}

/// The `--config` file of the command, read before anything else: it may say where the run computes.
pub fn read_config(args: OptimizeArgs) -> Result<(OptimizeArgs, ConfigFile)> {
    let file = match &args.config {
        Some(path) => ConfigFile::read(path)?,
        None => ConfigFile::default(),
    };
    Ok((args, file))
}

pub fn run<B: Backend>(backend: &B, args: OptimizeArgs, file: ConfigFile, quiet: bool) -> Result<()> {
    if let Some(which) = args.print_meta_prompt {
        print!("{}", which.text());
        return Ok(());
    }
    let out = args.out.clone().or(file.out);
    let resume = args.resume || file.resume == Some(true);
    let overrides = args.settings.or(file.settings)?.absolute()?;
    let mut missing = if resume { Vec::new() } else { overrides.missing() };
    if out.is_none() {
        missing.insert(0, "out");
    }
    settings::require(&missing)?;
    let out = out.expect("checked above");
    let stored = if resume {
        let (run, resumed) = RunDir::open::<RunConfig>(&out)?;
        if resumed.config.format != FORMAT {
            bail!("{} was written by another version of glov-cuda (format {})", out.display(), resumed.config.format);
        }
        Some((run, resumed))
    } else {
        None
    };
    if !resume && crate::no_follow::exists(&out.join(crate::glov::run_dir::CONFIG))? {
        bail!("{} already holds a run: continue it with --resume, or choose another --out", out.display());
    }
    let settings = match &stored {
        Some((_, resumed)) => overrides.check_resume(resumed.config.settings.clone())?,
        None => overrides.resolve()?,
    };
    let (dataset_name, description) = datasets::resolve(&settings.dataset_name, settings.description.as_deref())?;
    let meta = match &settings.meta_prompt {
        Some(path) => MetaPrompt::from_file(path)?,
        None if settings.vlm.is_some() => MetaPrompt::parse(meta_prompt::QUESTIONS)?,
        None => MetaPrompt::parse(settings.method.default_meta_prompt())?,
    };

    let started = Instant::now();
    let llm = LlmModel::open(backend, &settings.llm)?;
    let clip = settings.clip.as_deref().map(|m| ClipModel::open(backend, m)).transpose()?;
    let vlm = settings.vlm.as_deref().map(|m| LlavaModel::open(backend, m)).transpose()?;
    let matcher = settings.matcher.as_deref().map(|m| SentenceModel::open(backend, m)).transpose()?;
    let layer = settings.layer_for(llm.llm.config.num_layers);
    llm.llm.config.check_steering(llm.llm.config.hidden_size, layer).context("--layer")?;

    let train = open_split(&settings, Split::Train)?.k_shot(settings.shots, settings.seed);
    let val = open_split(&settings, Split::Val)?;
    let test = open_split(&settings, Split::Test)?;
    if settings.split_file.is_none() && !settings.dataset.join("train").is_dir() {
        tracing::warn!(
            "{} has no train/val/test layout and no --split-file: the validation and test splits are the whole \
             dataset, and the train shots are drawn from it too",
            settings.dataset.display()
        );
    }
    let config = RunConfig {
        format: FORMAT,
        engine: format!("glov-cuda {} ({})", env!("CARGO_PKG_VERSION"), env!("GLOV_CUDA_COMMIT")),
        device: backend.describe(),
        settings: settings.clone(),
        layer_used: layer,
        dataset_name_shown: dataset_name.clone(),
        description_shown: description.clone(),
        meta_prompt: meta.source().to_string(),
        llm: ModelRecord::of(&llm.checkpoint)?,
        clip: clip.as_ref().map(|m| ModelRecord::of(&m.checkpoint)).transpose()?,
        vlm: vlm.as_ref().map(|m| ModelRecord::of(&m.checkpoint)).transpose()?,
        matcher: matcher.as_ref().map(|m| ModelRecord::of(&m.checkpoint)).transpose()?,
        images: SplitSizes {
            classes: train.classnames.len(),
            train: train.samples.len(),
            val: val.samples.len(),
            test: test.samples.len(),
        },
    };
    if let Some((_, resumed)) = &stored {
        check_same_run(&resumed.config, &config)?;
    }

    let mut clip_judge = match &clip {
        Some(clip) => Some(ClipJudge {
            train: scorer(backend, clip, &train, &settings, "train")?,
            val: scorer(backend, clip, &val, &settings, "val")?,
            test: scorer(backend, clip, &test, &settings, "test")?,
        }),
        None => None,
    };
    // One memory for the three splits' image features: the train split's, asked about at every step, first.
    let ask = AskOptions {
        max_new_tokens: settings.vlm_max_new_tokens,
        batch: settings.vlm_batch,
        memory: FeatureMemory::new(settings.vlm_feature_memory.saturating_mul(1 << 30)),
        cache_dir: if settings.no_cache { None } else { settings.cache_dir.clone().or_else(default_cache_dir) },
    };
    let mut vlm_judge = match (&vlm, &matcher) {
        (Some(vlm), Some(matcher)) => Some(VlmJudge::new(
            generative_scorer(backend, vlm, matcher, &train, &ask)?,
            generative_scorer(backend, vlm, matcher, &val, &ask)?,
            generative_scorer(backend, vlm, matcher, &test, &ask)?,
        )),
        _ => None,
    };
    let judge: &mut dyn Judge = match (clip_judge.as_mut(), vlm_judge.as_mut()) {
        (Some(judge), _) => judge,
        (None, Some(judge)) => judge,
        (None, None) => unreachable!("the settings name one judge"),
    };
    let mut proposer = LlmProposer {
        backend,
        model: &llm,
        layer,
        cache: settings.steer_cache,
        sampling: SamplingParams {
            temperature: settings.temperature,
            top_k: settings.top_k,
            top_p: settings.top_p,
            greedy: false,
        },
        max_new_tokens: settings.max_new_tokens,
        seed: settings.seed,
        kv_cache_bytes: 0,
        generated_tokens: Arc::new(AtomicUsize::new(0)),
    };
    let loop_config = LoopConfig {
        dataset_name,
        description,
        baseline: settings.baseline.clone(),
        alphas: settings.alphas.clone(),
        steps: settings.steps,
        samples: settings.samples,
        top_bottom: settings.top_bottom,
        ensemble_size: settings.ensemble_size,
        prompts: if settings.vlm.is_some() { PromptKind::Question } else { PromptKind::Template },
    };
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "models and image features ready");

    let mut optimizer = match stored {
        Some((run, resumed)) if !resumed.history.is_empty() => {
            tracing::info!(completed = resumed.completed_steps, "resuming");
            Optimizer::resume(loop_config, &meta, run, resumed, &mut proposer)?
        }
        Some((run, _)) => Optimizer::start(loop_config, &meta, run, judge)?,
        None => Optimizer::start(loop_config, &meta, RunDir::create(&out, &config)?, judge)?,
    };

    let stop = install_interrupt(quiet)?;
    // On a terminal a progress bar; in a log (a sweep's cell, a batch job) a line per step.
    let on_terminal = std::io::stderr().is_terminal();
    let bar = progress_bar(quiet || !on_terminal, settings.steps, optimizer.completed_steps());
    bar.set_message(best_per_alpha(&optimizer));
    let generated = proposer.generated_tokens.clone();
    let mut tokens_before = 0;
    let outcome = optimizer.run(&mut proposer, judge, &stop, &mut |o: &Optimizer| {
        bar.set_position(o.completed_steps() as u64);
        bar.set_message(best_per_alpha(o));
        after_step(o);
        let tokens = generated.load(Ordering::Relaxed);
        if !on_terminal {
            log_step(o, settings.steps, tokens - tokens_before);
        }
        tokens_before = tokens;
    })?;
    bar.finish_and_clear();
    if let Outcome::Interrupted(steps) = outcome {
        return Err(Interrupted { steps, total: settings.steps, out }.into());
    }

    let mut results = report::results(&mut optimizer, judge)?;
    if let Some(judge) = &clip_judge {
        results.descriptions =
            baselines::run(backend, &llm, &judge.test, &test.classnames, &settings, optimizer.run_dir())?;
    }
    write_results(&optimizer, &results)?;
    print!("{}", report::summary_table(&results, settings.method, optimizer.config().prompts));
    println!("run directory: {}", optimizer.run_dir().path().display());
    Ok(())
}

/// One line for a finished step: where the search stands, what the step did, and how fast.
fn log_step(optimizer: &Optimizer, total: usize, tokens: usize) {
    let steps: Vec<_> = optimizer.trajectories.iter().filter_map(|t| t.steps.last()).collect();
    let Some(first) = steps.first() else { return };
    let scored: usize = steps.iter().map(|s| s.new_templates).sum();
    let rejected: usize = steps.iter().map(|s| s.rejected).sum();
    let seconds = first.generate_seconds + first.score_seconds;
    let noun = optimizer.config().prompts.noun();
    tracing::info!(
        "step {}/{total}: {}; new {noun}s scored: {scored}, answers without a {noun}: {rejected}; {seconds:.1} s \
         ({:.0} tokens/s generating)",
        optimizer.completed_steps(),
        best_per_alpha(optimizer),
        tokens as f64 / first.generate_seconds.max(1e-9)
    );
}

/// Logs a finished step and redraws the plot (a plot that cannot be drawn or written is a warning, not an error).
fn after_step(optimizer: &Optimizer) {
    let last = &optimizer.trajectories[0].steps.last().expect("a step was just recorded");
    tracing::debug!(
        step = last.step,
        generate_seconds = last.generate_seconds,
        score_seconds = last.score_seconds,
        "step done"
    );
    let written = report::plot(optimizer).and_then(|png| optimizer.run_dir().write("plot.png", &png));
    if let Err(e) = written {
        tracing::warn!("cannot draw or write the plot: {e:#}");
    }
}

fn write_results(optimizer: &Optimizer, results: &report::Results) -> Result<()> {
    let run = optimizer.run_dir();
    run.write("results.json", (serde_json::to_string_pretty(results)? + "\n").as_bytes())?;
    run.write("results.csv", report::results_csv(results).as_bytes())?;
    run.write("best_templates.txt", report::best_templates(results).as_bytes())?;
    run.write("plot.png", &report::plot(optimizer)?)
}

/// A resumed run must see the same models, meta-prompt and dataset as it started with.
fn check_same_run(stored: &RunConfig, now: &RunConfig) -> Result<()> {
    let mut differences = Vec::new();
    let models = [
        ("LLM", Some(&stored.llm), Some(&now.llm)),
        ("CLIP model", stored.clip.as_ref(), now.clip.as_ref()),
        ("VLM", stored.vlm.as_ref(), now.vlm.as_ref()),
        ("matcher", stored.matcher.as_ref(), now.matcher.as_ref()),
    ];
    for (what, before, after) in models {
        match (before, after) {
            (Some(before), Some(after)) if before.checksum != after.checksum => differences
                .push(format!("the {what} {} has other weights than when the run started", after.dir.display())),
            (Some(_), None) | (None, Some(_)) => differences.push(format!("the run's {what} is given or left out")),
            _ => {}
        }
    }
    if stored.meta_prompt != now.meta_prompt {
        differences.push("the meta-prompt template file has changed".to_string());
    }
    if stored.layer_used != now.layer_used {
        differences.push(format!("steered block: the run used {}, now {}", stored.layer_used, now.layer_used));
    }
    let (a, b) = (&stored.images, &now.images);
    if (a.classes, a.train, a.val, a.test) != (b.classes, b.train, b.val, b.test) {
        differences.push(format!(
            "the dataset has changed: classes/train/val/test images were {}/{}/{}/{}, now {}/{}/{}/{}",
            a.classes, a.train, a.val, a.test, b.classes, b.train, b.val, b.test
        ));
    }
    if stored.device != now.device {
        tracing::warn!(
            before = stored.device,
            now = now.device,
            "resuming on another device: results may differ in the last bits"
        );
    }
    if !differences.is_empty() {
        bail!("cannot resume this run:\n  {}", differences.join("\n  "));
    }
    Ok(())
}
