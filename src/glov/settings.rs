//! The settings of an optimisation run: from flags, from a TOML file (the same names as the flags, e.g.
//! `max-new-tokens = 50`), and from the defaults of GLOV.md, in that order of precedence. A resumed run takes its
//! stored settings; a setting given again must equal the stored one.
//!
//! Numbers must be finite wherever settings are read: [`check_finite`] refuses NaN and the infinities, naming the
//! key, in a config file, a sweep plan and the merged settings the flags give (a flag's text is parsed by
//! [`parse_finite`], which applies the same rule). JSON, in which settings are merged and stored, has no such numbers
//! and would read one back as "unset".

use crate::backend::runtime_options::{self, RuntimeOptions};
use crate::generation::steering::SteerCache;
use crate::glov::baselines::DescriptionBaseline;
use crate::glov::method::Method;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Every setting of a run, each optional: what flags or a config file give.
#[derive(Args, Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Overrides {
    /// The LLM that proposes templates: a model directory or org/name in the HF cache (e.g.
    /// meta-llama/Meta-Llama-3-8B-Instruct).
    #[arg(long, value_name = "MODEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<String>,
    /// The CLIP model that scores them (e.g. openai/clip-vit-base-patch32); or --vlm and --matcher.
    #[arg(long, value_name = "MODEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip: Option<String>,
    /// Instead of CLIP, the LLaVA-OneVision model that answers the proposed questions (whole questions, no class
    /// slot; e.g. llava-hf/llava-onevision-qwen2-7b-ov-hf); its defaults: samples 5, top-bottom 3, steps 50, the
    /// reference's starting question. Needs --matcher.
    #[arg(long, value_name = "MODEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlm: Option<String>,
    /// The sentence-transformers model that matches the VLM's answers to class names (e.g.
    /// sentence-transformers/all-mpnet-base-v2).
    #[arg(long, value_name = "MODEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matcher: Option<String>,
    /// Most new tokens of a VLM answer (greedy) [default: 50].
    #[arg(long, value_name = "T")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlm_max_new_tokens: Option<usize>,
    /// Most VLM answers decoded in one batch [default: 64].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlm_batch: Option<usize>,
    /// Host memory, in GiB, for the VLM's image features (the train split's first); the others are read back from
    /// the disk cache, or encoded again each time they are asked about under --no-cache [default: 16].
    #[arg(long, value_name = "GIB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlm_feature_memory: Option<usize>,
    /// The optimiser: glov, or llm-opt (LLM-OPT's meta-prompt of good and bad templates, no guidance; its defaults:
    /// alphas 0, top-bottom 3) [default: glov].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// The dataset: class folders with train/val/test subfolders, or the image root of --split-file.
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<PathBuf>,
    /// CoOp split file (split_zhou_*.json) with the train, val and test lists.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_file: Option<PathBuf>,
    /// The dataset's name, shown to the LLM; one of the 16 of GLOV (ImageNet, EuroSAT, ...) also brings a
    /// built-in description.
    #[arg(long, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    /// One sentence describing the images, shown to the LLM (replaces the built-in one).
    #[arg(long, value_name = "TEXT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Optimisation steps [default: 100].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Answers sampled per step and trajectory (K) [default: 10].
    #[arg(long, value_name = "K")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// Train images per class for the fitness [default: 1].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shots: Option<usize>,
    /// Seed of the few-shot draw and of sampling [default: 1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Guidance strengths, one trajectory each; 0 is GLOV without guidance [default: 1,0.75,0.5,0.25,0].
    #[arg(long, value_delimiter = ',', value_name = "A,B,...", value_parser = parse_finite)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alphas: Option<Vec<f32>>,
    /// The decoder block (0-based) whose output is steered [default: 17 for a 32-block model, the same relative
    /// depth for others].
    #[arg(long, value_name = "L")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// Best and worst templates shown to the LLM, each (k = min(this, history / 2)) [default: 5].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_bottom: Option<usize>,
    /// Most tokens per answer [default: 50].
    #[arg(long, value_name = "T")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
    /// Sampling temperature; 0 is greedy decoding (every answer of a step then the same) [default: 1].
    #[arg(long, value_parser = parse_finite)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Top-k filter of sampling, 0 for none [default: 50].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    /// Top-p (nucleus) filter of sampling, 1 for none [default: 0.9, GLOV's; generate's is transformers' 1].
    #[arg(long, value_parser = parse_finite)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// What the KV cache keeps of a steered position: steered (cheap), or clean (as the original code, which
    /// recomputes every position unsteered) [default: steered].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steer_cache: Option<SteerCache>,
    /// Meta-prompt template file ([system] and [user] sections; see docs/optimizer.md) [default: the built-in one].
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_prompt: Option<PathBuf>,
    /// The starting template, `{}` (or `<category>`) where the class name goes [default: "a photo of a {}."].
    #[arg(long, value_name = "TEMPLATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Templates per ensemble (a step's best, and the result) [default: 3].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ensemble_size: Option<usize>,
    /// Description baselines scored on the test split after the last step, with this run's LLM and CLIP model:
    /// cupl, dclip, waffle (see docs/optimizer.md) [default: none].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "B,...")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baselines: Option<Vec<DescriptionBaseline>>,
    /// Images per vision-tower batch [default: 64].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_batch: Option<usize>,
    /// Most texts per text-tower pass [default: 1024].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_batch: Option<usize>,
    /// Folder of the image-feature caches, CLIP's and the VLM's [default: as for `score`].
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Compute image features without the disk cache.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_cache: Option<bool>,
}

/// The resolved settings of a run, as `config.json` records them.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// Runs started before there was a choice are GLOV's.
    #[serde(default)]
    pub method: Method,
    pub llm: String,
    /// The judge: a CLIP model, or a VLM and its matcher.
    #[serde(default)]
    pub clip: Option<String>,
    #[serde(default)]
    pub vlm: Option<String>,
    #[serde(default)]
    pub matcher: Option<String>,
    #[serde(default = "default_vlm_max_new_tokens")]
    pub vlm_max_new_tokens: usize,
    #[serde(default = "default_vlm_batch")]
    pub vlm_batch: usize,
    #[serde(default = "default_vlm_feature_memory")]
    pub vlm_feature_memory: usize,
    pub dataset: PathBuf,
    pub split_file: Option<PathBuf>,
    pub dataset_name: String,
    pub description: Option<String>,
    pub steps: usize,
    pub samples: usize,
    pub shots: usize,
    pub seed: u64,
    pub alphas: Vec<f32>,
    /// `None`: chosen from the model's depth when the run starts (recorded in `config.json` as `layer-used`).
    pub layer: Option<usize>,
    pub top_bottom: usize,
    pub max_new_tokens: usize,
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub steer_cache: SteerCache,
    pub meta_prompt: Option<PathBuf>,
    pub baseline: String,
    pub ensemble_size: usize,
    /// Runs started before there were any scored none.
    #[serde(default)]
    pub baselines: Vec<DescriptionBaseline>,
    pub image_batch: usize,
    pub text_batch: usize,
    pub cache_dir: Option<PathBuf>,
    pub no_cache: bool,
}

/// Refuses NaN and the infinities anywhere in a table of settings, naming the key (`alphas[1]`, `grid.top-p[0]`).
pub fn check_finite(table: &toml::Table) -> Result<()> {
    fn walk(key: &str, value: &toml::Value) -> Result<()> {
        match value {
            toml::Value::Float(number) => finite(key, *number),
            toml::Value::Array(items) => {
                items.iter().enumerate().try_for_each(|(i, item)| walk(&format!("{key}[{i}]"), item))
            }
            toml::Value::Table(table) => table.iter().try_for_each(|(k, v)| walk(&format!("{key}.{k}"), v)),
            _ => Ok(()),
        }
    }
    table.iter().try_for_each(|(key, value)| walk(key, value))
}

/// The rule itself: a setting's number must be finite.
fn finite(key: &str, number: f64) -> Result<()> {
    if !number.is_finite() {
        bail!("{key}: {number} is not a finite number");
    }
    Ok(())
}

/// A number flag's value: a finite `f32`.
pub fn parse_finite(text: &str) -> std::result::Result<f32, String> {
    let number: f32 = text.trim().parse().map_err(|e| format!("{text:?} is not a number ({e})"))?;
    finite("the value", number.into()).map_err(|e| e.to_string())?;
    Ok(number)
}

fn default_vlm_max_new_tokens() -> usize {
    50
}

fn default_vlm_batch() -> usize {
    64
}

fn default_vlm_feature_memory() -> usize {
    crate::scoring::generative::DEFAULT_FEATURE_MEMORY_GIB
}

/// The question the encoder-decoder path starts from (the reference's).
pub const VLM_BASELINE: &str =
    "Describe the category present in this image briefly and also identify the name of the category present.";

/// The defaults of the encoder-decoder path (`vlm`) that differ from CLIP's: the reference's for that path.
fn vlm_defaults() -> Map<String, Value> {
    let Value::Object(map) = serde_json::json!({
        "samples": 5, "top-bottom": 3, "steps": 50, "baseline": VLM_BASELINE,
    }) else {
        unreachable!("an object literal")
    };
    map
}

fn defaults() -> Map<String, Value> {
    let Value::Object(map) = serde_json::json!({
        "method": "glov", "split-file": null, "description": null, "steps": 100, "samples": 10, "shots": 1, "seed": 1,
        "alphas": [1.0, 0.75, 0.5, 0.25, 0.0], "layer": null, "top-bottom": 5, "max-new-tokens": 50,
        "temperature": 1.0, "top-k": 50, "top-p": 0.9, "steer-cache": "steered", "meta-prompt": null,
        "baseline": "a photo of a {}.", "ensemble-size": 3, "baselines": [], "image-batch": 64, "text-batch": 1024,
        "cache-dir": null, "no-cache": false, "clip": null, "vlm": null, "matcher": null, "vlm-max-new-tokens": 50,
        "vlm-batch": 64, "vlm-feature-memory": crate::scoring::generative::DEFAULT_FEATURE_MEMORY_GIB,
    }) else {
        unreachable!("an object literal")
    };
    map
}

/// The settings that change what a run computes; the others (batch sizes, the cache) may differ on resume.
const NOT_COMPARED: [&str; 6] =
    ["image-batch", "text-batch", "cache-dir", "no-cache", "vlm-batch", "vlm-feature-memory"];

/// A `--config` file: every setting, the run's `out` and `resume`, and the runtime options (`device`, ...).
#[derive(Debug, Default)]
pub struct ConfigFile {
    pub settings: Overrides,
    pub out: Option<PathBuf>,
    pub resume: Option<bool>,
    pub runtime: RuntimeOptions,
}

impl ConfigFile {
    /// Reads a config file; its relative paths are taken from the file's folder (see [`Overrides::rebase`]).
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the config file {}", path.display()))?;
        let mut file = Self::parse(&text).with_context(|| format!("config file {}", path.display()))?;
        let folder = path.parent().unwrap_or(Path::new(""));
        file.settings = file.settings.rebase(folder);
        file.out = file.out.map(|out| folder.join(out));
        Ok(file)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let mut table: toml::Table = toml::from_str(text)?;
        check_finite(&table)?;
        let out = match table.remove("out") {
            Some(toml::Value::String(dir)) => Some(PathBuf::from(dir)),
            Some(other) => bail!("out must be a string (a folder), not {other}"),
            None => None,
        };
        let resume = match table.remove("resume") {
            Some(toml::Value::Boolean(b)) => Some(b),
            Some(other) => bail!("resume must be true or false, not {other}"),
            None => None,
        };
        let runtime = RuntimeOptions::take_from(&mut table, "runtime options")?;
        Ok(Self { settings: parse_settings(table)?, out, resume, runtime })
    }
}

/// A table of settings, an unknown key answered with the known one it is closest to.
pub fn parse_settings(table: toml::Table) -> Result<Overrides> {
    let settings = runtime_options::flag_names::<Overrides>();
    for key in table.keys() {
        if !settings.contains(key) {
            let runtime = runtime_options::keys();
            let near = settings.iter().chain(&runtime).map(String::as_str).chain(["out", "resume"]);
            let hint = match near.map(|k| (strsim::levenshtein(k, key), k)).min() {
                Some((distance, known)) if distance <= 2 || known.contains(key.as_str()) => {
                    format!("; did you mean {known}?")
                }
                _ => String::new(),
            };
            bail!(
                "unknown setting {key:?}{hint} (settings: {}; runtime options: {}; and out, resume)",
                settings.join(", "),
                runtime.join(", ")
            );
        }
    }
    Ok(toml::Value::Table(table).try_into()?)
}

/// Refuses to go on without the settings named (by their keys), all named in one message.
pub fn require(missing: &[&str]) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    let flags: Vec<String> = missing.iter().map(|key| format!("--{key}")).collect();
    let keys: Vec<String> = missing.iter().map(|key| format!("{key} = ...")).collect();
    let verb = if missing.len() == 1 { "is" } else { "are" };
    bail!("{} {verb} required (as flags, or as {} in --config)", flags.join(", "), keys.join(", "))
}

impl Overrides {
    /// `self` where set, else `other`.
    pub fn or(self, other: Overrides) -> Result<Overrides> {
        let mut map = other.to_map()?;
        map.extend(self.to_map()?);
        Ok(serde_json::from_value(Value::Object(map)).expect("the union of two valid override sets is valid"))
    }

    /// The settings that are set, as JSON; a number that JSON cannot hold is refused by [`check_finite`].
    fn to_map(&self) -> Result<Map<String, Value>> {
        check_finite(&toml::Table::try_from(self).context("the settings as a table")?)?;
        match serde_json::to_value(self).expect("overrides serialise") {
            Value::Object(map) => Ok(map),
            _ => unreachable!("a struct serialises to an object"),
        }
    }

    /// Paths made absolute, and model arguments that name an existing folder too, so that a run reads the same
    /// files when resumed from another working directory.
    pub fn absolute(mut self) -> Result<Self> {
        let abs = |p: &Path| -> Result<PathBuf> {
            std::path::absolute(p).with_context(|| format!("cannot make {} absolute", p.display()))
        };
        for path in self.paths_mut() {
            *path = abs(path)?;
        }
        for model in self.models_mut() {
            if Path::new(model.as_str()).is_dir() {
                *model = abs(Path::new(model.as_str()))?.display().to_string();
            }
        }
        Ok(self)
    }

    /// The file and folder settings that are set.
    fn paths_mut(&mut self) -> impl Iterator<Item = &mut PathBuf> {
        [&mut self.dataset, &mut self.split_file, &mut self.meta_prompt, &mut self.cache_dir].into_iter().flatten()
    }

    /// The model settings that are set (a folder, a file or an org/name id).
    fn models_mut(&mut self) -> impl Iterator<Item = &mut String> {
        [&mut self.llm, &mut self.clip, &mut self.vlm, &mut self.matcher].into_iter().flatten()
    }

    /// Relative paths taken from `folder` (a config file's) rather than the working directory; a model argument
    /// is rebased where `folder` holds it, else left as it is (an org/name id of the HF cache).
    pub fn rebase(mut self, folder: &Path) -> Self {
        for path in self.paths_mut() {
            *path = folder.join(&*path);
        }
        for model in self.models_mut() {
            let local = folder.join(model.as_str());
            if Path::new(model.as_str()).is_relative() && local.exists() {
                *model = local.display().to_string();
            }
        }
        self
    }

    /// The settings a new run needs that are not given, by their keys.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut needed = vec![("llm", self.llm.is_some())];
        if self.vlm.is_some() || self.matcher.is_some() {
            needed.extend([("vlm", self.vlm.is_some()), ("matcher", self.matcher.is_some())]);
        } else {
            needed.push(("clip", self.clip.is_some()));
        }
        needed.extend([("dataset", self.dataset.is_some()), ("dataset-name", self.dataset_name.is_some())]);
        needed.into_iter().filter_map(|(key, given)| (!given).then_some(key)).collect()
    }

    /// New settings: these overrides on the defaults.
    pub fn resolve(self) -> Result<Settings> {
        require(&self.missing())?;
        let mut map = defaults();
        if self.vlm.is_some() {
            map.extend(vlm_defaults());
        }
        map.extend(self.method.unwrap_or_default().defaults().into_iter().map(|(key, value)| (key.to_string(), value)));
        map.extend(self.to_map()?);
        let mut settings: Settings = serde_json::from_value(Value::Object(map)).context("resolving the settings")?;
        if settings.vlm.is_none() {
            settings.baseline = crate::scoring::templates::normalize(&settings.baseline).context("baseline")?;
        }
        settings.validate()?;
        Ok(settings)
    }

    /// A resumed run's settings: the stored ones, where every setting given again must be equal.
    pub fn check_resume(mut self, stored: Settings) -> Result<Settings> {
        // A baseline given again in the LLM's spelling (`<category>`) is the one stored with `{}`.
        if let Some(baseline) = self.baseline.as_ref().filter(|_| stored.vlm.is_none()) {
            self.baseline = Some(crate::scoring::templates::normalize(baseline).context("baseline")?);
        }
        let stored_map = match serde_json::to_value(&stored)? {
            Value::Object(map) => map,
            _ => unreachable!("a struct serialises to an object"),
        };
        let mut merged = stored_map.clone();
        let mut differences = Vec::new();
        for (key, value) in self.to_map()? {
            let before = stored_map.get(&key).cloned().unwrap_or(Value::Null);
            if before != value && !NOT_COMPARED.contains(&key.as_str()) {
                differences.push(format!("{key}: the run has {before}, now {value}"));
            }
            merged.insert(key, value);
        }
        if !differences.is_empty() {
            bail!(
                "the run was started with other settings; resume it with its own (or start a new run with another \
                 --out):\n  {}",
                differences.join("\n  ")
            );
        }
        Ok(serde_json::from_value(Value::Object(merged))?)
    }
}

impl Settings {
    fn validate(&self) -> Result<()> {
        let positive = [
            ("steps", self.steps),
            ("samples", self.samples),
            ("shots", self.shots),
            ("max-new-tokens", self.max_new_tokens),
            ("ensemble-size", self.ensemble_size),
            ("image-batch", self.image_batch),
            ("text-batch", self.text_batch),
            ("vlm-max-new-tokens", self.vlm_max_new_tokens),
            ("vlm-batch", self.vlm_batch),
        ];
        for (name, value) in positive {
            if value == 0 {
                bail!("{name} must be at least 1");
            }
        }
        if self.alphas.is_empty() {
            bail!("alphas: give at least one guidance strength");
        }
        self.method.check(&self.alphas)?;
        for (i, a) in self.alphas.iter().enumerate() {
            if !a.is_finite() || *a < 0.0 {
                bail!("alphas: {a} is not a finite, non-negative strength");
            }
            if self.alphas[..i].contains(a) {
                bail!("alphas: {a} is given twice");
            }
        }
        for (i, b) in self.baselines.iter().enumerate() {
            if self.baselines[..i].contains(b) {
                bail!("baselines: {} is given twice", serde_json::to_value(b)?.as_str().unwrap_or_default());
            }
        }
        self.check_judge()?;
        crate::generation::sampling::SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            greedy: false,
        }
        .validate()
    }

    /// One judge, and what it cannot run with: a CLIP model, or a VLM with its matcher (whole questions as
    /// prompts: no class slot, no description baselines, GLOV's meta-prompt only).
    fn check_judge(&self) -> Result<()> {
        match (&self.clip, &self.vlm, &self.matcher) {
            (Some(_), None, None) => {
                crate::scoring::templates::normalize(&self.baseline).context("baseline")?;
                Ok(())
            }
            (None, Some(_), Some(_)) => {
                if self.baseline.trim().is_empty() {
                    bail!("baseline: the starting question is empty");
                }
                if !self.baselines.is_empty() {
                    bail!(
                        "baselines: the description baselines (cupl, dclip, waffle) score CLIP; a --vlm run has none"
                    );
                }
                if self.method != Method::Glov {
                    bail!("method {}: a --vlm run is GLOV's (LLM-OPT's meta-prompt asks for templates)", self.method);
                }
                Ok(())
            }
            (Some(_), Some(_), _) => bail!("--clip and --vlm are two judges; give one"),
            (_, Some(_), None) => bail!("--vlm needs --matcher (the sentence-embedding model that reads its answers)"),
            (_, None, Some(_)) => bail!("--matcher goes with --vlm"),
            (None, None, None) => bail!("give a judge: --clip, or --vlm and --matcher"),
        }
    }

    /// The judged model: the CLIP model or the VLM.
    pub fn judged_model(&self) -> &str {
        self.vlm.as_deref().or(self.clip.as_deref()).unwrap_or_default()
    }

    /// The steered block: the configured one, or block 17 of 32 scaled to the model's depth.
    pub fn layer_for(&self, num_layers: usize) -> usize {
        self.layer.unwrap_or(17 * num_layers / 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn required() -> Overrides {
        Overrides {
            llm: Some("m/llm".into()),
            clip: Some("m/clip".into()),
            dataset: Some("/data/x".into()),
            dataset_name: Some("DTD".into()),
            ..Overrides::default()
        }
    }

    #[test]
    fn defaults_are_the_method_s() {
        let s = required().resolve().unwrap();
        assert_eq!((s.steps, s.samples, s.shots, s.top_bottom, s.max_new_tokens), (100, 10, 1, 5, 50));
        assert_eq!(s.alphas, [1.0, 0.75, 0.5, 0.25, 0.0]);
        assert_eq!((s.temperature, s.top_k, s.top_p), (1.0, 50, 0.9));
        assert_eq!((s.steer_cache, s.ensemble_size, s.baseline.as_str()), (SteerCache::Steered, 3, "a photo of a {}."));
        assert_eq!((s.layer_for(32), s.layer_for(16), s.layer_for(80)), (17, 8, 42));
    }

    #[test]
    fn flags_override_the_file_and_the_file_the_defaults() {
        let file: Overrides =
            toml::from_str("steps = 7\nsamples = 4\nalphas = [1.0, 0.0]\nsteer-cache = \"clean\"\n").unwrap();
        let flags = Overrides { steps: Some(3), ..required() };
        let s = flags.or(file).unwrap().resolve().unwrap();
        assert_eq!((s.steps, s.samples, s.alphas.clone(), s.steer_cache), (3, 4, vec![1.0, 0.0], SteerCache::Clean));
        let err = format!("{:#}", ConfigFile::parse("stepz = 3\n").unwrap_err());
        assert!(err.contains("stepz"), "{err}");
        let err = Overrides { llm: None, ..required() }.resolve().unwrap_err().to_string();
        assert!(err.contains("--llm is required"), "{err}");
        let err = Overrides { alphas: Some(vec![1.0, 1.0]), ..required() }.resolve().unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
        let err = format!("{:#}", Overrides { baseline: Some("a photo".into()), ..required() }.resolve().unwrap_err());
        assert!(err.starts_with("baseline: ") && err.contains("no class slot"), "{err}");
        let s = Overrides { baseline: Some("art of a <category>".into()), ..required() }.resolve().unwrap();
        assert_eq!(s.baseline, "art of a {}");
    }

    #[test]
    fn a_vlm_run_has_the_reference_s_defaults_for_that_path_and_one_judge() {
        let vlm = Overrides { clip: None, vlm: Some("m/llava".into()), matcher: Some("m/mpnet".into()), ..required() };
        let s = vlm.clone().resolve().unwrap();
        assert_eq!((s.samples, s.top_bottom, s.steps, s.vlm_max_new_tokens), (5, 3, 50, 50));
        assert_eq!((s.baseline.as_str(), s.judged_model()), (VLM_BASELINE, "m/llava"));
        let s = Overrides { samples: Some(7), baseline: Some("What is it".into()), ..vlm.clone() }.resolve().unwrap();
        assert_eq!((s.samples, s.baseline.as_str()), (7, "What is it"));
        let err = Overrides { matcher: None, ..vlm.clone() }.resolve().unwrap_err().to_string();
        assert!(err.contains("--matcher is required"), "{err}");
        let err = Overrides { clip: Some("m/clip".into()), ..vlm.clone() }.resolve().unwrap_err().to_string();
        assert!(err.contains("two judges"), "{err}");
        let err = Overrides { clip: None, ..required() }.resolve().unwrap_err().to_string();
        assert!(err.contains("--clip is required"), "{err}");
        let stored = vlm.resolve().unwrap();
        let spelled = Overrides { baseline: Some(VLM_BASELINE.into()), ..Overrides::default() };
        assert_eq!(spelled.check_resume(stored.clone()).unwrap(), stored);
    }

    #[test]
    fn llm_opt_has_its_own_defaults_and_no_guidance() {
        let s = Overrides { method: Some(Method::LlmOpt), ..required() }.resolve().unwrap();
        assert_eq!((s.method, s.alphas.as_slice(), s.top_bottom), (Method::LlmOpt, &[0.0][..], 3));
        let s = Overrides { method: Some(Method::LlmOpt), top_bottom: Some(5), ..required() }.resolve().unwrap();
        assert_eq!(s.top_bottom, 5);
        let guided = Overrides { method: Some(Method::LlmOpt), alphas: Some(vec![1.0, 0.0]), ..required() };
        assert!(format!("{:#}", guided.resolve().unwrap_err()).contains("llm-opt has no guidance"));
        let s = required().resolve().unwrap();
        assert_eq!((s.method, s.alphas.len(), s.top_bottom), (Method::Glov, 5, 5));
    }

    #[test]
    fn the_config_keys_are_the_flags() {
        let e = format!("{:#}", ConfigFile::parse("top_k = 3\n").unwrap_err());
        assert!(e.contains("unknown setting \"top_k\"; did you mean top-k?"), "{e}");
        let e = format!("{:#}", ConfigFile::parse("devise = \"cpu\"\n").unwrap_err());
        assert!(e.contains("did you mean device?"), "{e}");
        let e = format!("{:#}", ConfigFile::parse("frobnicate = 1\n").unwrap_err());
        assert!(e.contains("unknown setting \"frobnicate\" (settings: llm, clip,"), "{e}");
        assert!(e.contains("text-batch, cache-dir, no-cache; runtime options: device, kernels,"), "{e}");
    }

    #[test]
    fn numbers_must_be_finite_wherever_settings_are_read() {
        for (text, key) in
            [("alphas = [1.0, nan]", "alphas[1]"), ("temperature = inf", "temperature"), ("top-p = -inf", "top-p")]
        {
            let e = format!("{:#}", ConfigFile::parse(text).unwrap_err());
            assert!(e.starts_with(&format!("{key}: ")) && e.contains("is not a finite number"), "{e}");
        }
        let flags = Overrides { temperature: Some(f32::NAN), ..required() };
        let e = flags.clone().or(Overrides::default()).unwrap_err().to_string();
        assert!(e.starts_with("temperature: NaN is not a finite number"), "{e}");
        assert!(flags.resolve().unwrap_err().to_string().starts_with("temperature: NaN"));
        let e = Overrides { alphas: Some(vec![f32::INFINITY]), ..Overrides::default() };
        assert!(e.check_resume(required().resolve().unwrap()).unwrap_err().to_string().starts_with("alphas[0]: inf"));
        assert_eq!(parse_finite(" 0.5"), Ok(0.5));
        for bad in ["nan", "inf", "-infinity", "x"] {
            assert!(parse_finite(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resume_keeps_the_stored_settings_and_names_differences() {
        let stored = Overrides { steps: Some(5), ..required() }.resolve().unwrap();
        assert_eq!(Overrides::default().check_resume(stored.clone()).unwrap(), stored);
        let same = Overrides { steps: Some(5), text_batch: Some(8), ..Overrides::default() };
        assert_eq!(same.check_resume(stored.clone()).unwrap().text_batch, 8);
        let spelled = Overrides { baseline: Some("a photo of a <category>.".into()), ..Overrides::default() };
        assert_eq!(spelled.check_resume(stored.clone()).unwrap(), stored);
        let other = Overrides { steps: Some(6), top_p: Some(0.5), ..Overrides::default() };
        let err = other.check_resume(stored).unwrap_err().to_string();
        assert!(err.contains("steps: the run has 5, now 6") && err.contains("top-p"), "{err}");
    }
}
