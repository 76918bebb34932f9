//! Finished runs laid out as the paper's tables: one block per CLIP model (and per combination of the other
//! settings, when the runs differ in more than the dataset and the seed), one row per dataset, each measure the
//! mean and standard deviation over the row's seeds, and the mean over the datasets last.

use super::runs::{LeftOut, Run};
use crate::glov::method::Method;
use crate::glov::report::Results;
use serde::Serialize;
use serde::ser::SerializeStruct;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings that place a run in a row (the dataset), tell seeds apart, do not change results (batch sizes, the
/// feature cache) or add comparisons beside them (the description baselines); every other setting must be equal
/// within a block.
const NOT_IN_BLOCK_KEY: [&str; 14] = [
    "clip",
    "vlm",
    "vlm-batch",
    "vlm-feature-memory",
    "dataset",
    "split-file",
    "dataset-name",
    "description",
    "seed",
    "image-batch",
    "text-batch",
    "cache-dir",
    "no-cache",
    "baselines",
];

/// Settings in which an LLM-OPT run may differ from the GLOV runs whose block it joins as a column.
const METHOD_KEYS: [&str; 4] = ["method", "alphas", "top-bottom", "meta-prompt"];

/// A way of writing CLIP's text side that a run scores beside its search, as a column before the optimisers', in
/// the paper's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// The ensemble of the dataset's published CLIP template set.
    TemplateSet,
    Cupl,
    Dclip,
    Waffle,
}

impl Comparison {
    pub const ALL: [Comparison; 4] = [Comparison::TemplateSet, Comparison::Cupl, Comparison::Dclip, Comparison::Waffle];

    /// The column's header in tables.
    pub fn header(self) -> &'static str {
        match self {
            Comparison::TemplateSet => "CLIP set",
            Comparison::Cupl => "CuPL",
            Comparison::Dclip => "DCLIP",
            Comparison::Waffle => "Waffle",
        }
    }

    /// The measure's name in CSV and JSON.
    pub fn key(self) -> &'static str {
        match self {
            Comparison::TemplateSet => "template_set",
            Comparison::Cupl => "cupl",
            Comparison::Dclip => "dclip",
            Comparison::Waffle => "waffle",
        }
    }

    /// A run's test accuracy of it, where the run scored it.
    fn of(self, results: &Results) -> Option<f64> {
        let d = &results.descriptions;
        match self {
            Comparison::TemplateSet => results.template_set.as_ref().map(|s| s.test_accuracy),
            Comparison::Cupl => d.cupl.as_ref().map(|c| c.test_accuracy),
            Comparison::Dclip => d.dclip.as_ref().map(|c| c.test_accuracy),
            Comparison::Waffle => d.waffle.as_ref().map(|w| w.test_accuracy),
        }
    }
}

/// Accuracies (percent) of one measure over a row's runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stat {
    pub values: Vec<f64>,
}

impl Stat {
    pub fn mean(&self) -> f64 {
        self.values.iter().sum::<f64>() / self.values.len() as f64
    }

    /// The sample standard deviation (n - 1 in the denominator); `None` for a single value.
    pub fn std(&self) -> Option<f64> {
        let n = self.values.len();
        if n < 2 {
            return None;
        }
        let mean = self.mean();
        Some((self.values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt())
    }
}

impl Serialize for Stat {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Stat", 3)?;
        s.serialize_field("mean", &self.mean())?;
        s.serialize_field("std", &self.std())?;
        s.serialize_field("values", &self.values)?;
        s.end()
    }
}

/// One dataset of a block.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub dataset: String,
    pub runs: Vec<PathBuf>,
    pub seeds: Vec<u64>,
    /// The zero-shot baseline template's test accuracy.
    pub baseline: Stat,
    /// The comparisons every run of the row scored.
    pub comparisons: BTreeMap<Comparison, Stat>,
    /// GLOV without guidance: alpha 0's ensemble (`None` when alpha 0 was not run).
    pub without_guidance: Option<Stat>,
    /// LLM-OPT runs of the same settings otherwise, where there are any: their result's test accuracy.
    pub llm_opt: Option<Stat>,
    /// The LLM-OPT runs counted in `llm_opt`, and their seeds.
    pub llm_opt_runs: Vec<PathBuf>,
    pub llm_opt_seeds: Vec<u64>,
    /// GLOV: the chosen alpha's ensemble.
    pub glov: Stat,
    /// GLOV minus the baseline, run by run.
    pub gain: Stat,
    /// Each alpha's ensemble, in the runs' order of alphas.
    pub per_alpha: Vec<(f32, Stat)>,
    /// How many runs chose each alpha.
    pub chosen: Vec<(f32, usize)>,
}

/// The rows of one judged model (a CLIP model, or a VLM) under one set of method settings.
#[derive(Clone, Debug, Serialize)]
pub struct Block {
    pub model: String,
    /// `CLIP` or `VLM`: the kind of the judged model.
    pub kind: &'static str,
    /// The settings shared by the block's runs (those that tell blocks apart are in `distinct`).
    pub settings: BTreeMap<String, Value>,
    /// The settings whose values differ between blocks, with this block's values.
    pub distinct: Vec<(String, String)>,
    pub alphas: Vec<f32>,
    pub rows: Vec<Row>,
}

/// The mean over a block's datasets of one measure's per-dataset means.
#[derive(Clone, Debug, Serialize)]
pub struct Means {
    pub baseline: f64,
    /// The comparisons every row has.
    pub comparisons: BTreeMap<Comparison, f64>,
    pub without_guidance: Option<f64>,
    pub llm_opt: Option<f64>,
    pub glov: f64,
    pub gain: f64,
    pub per_alpha: Vec<(f32, f64)>,
}

impl Block {
    pub fn means(&self) -> Means {
        let mean = |f: &dyn Fn(&Row) -> f64| self.rows.iter().map(f).sum::<f64>() / self.rows.len() as f64;
        let without_guidance = if self.rows.iter().all(|r| r.without_guidance.is_some()) {
            Some(mean(&|r| r.without_guidance.as_ref().map_or(f64::NAN, Stat::mean)))
        } else {
            None
        };
        let llm_opt = self
            .rows
            .iter()
            .all(|r| r.llm_opt.is_some())
            .then(|| mean(&|r| r.llm_opt.as_ref().map_or(f64::NAN, Stat::mean)));
        let comparisons = Comparison::ALL
            .into_iter()
            .filter(|c| self.rows.iter().all(|r| r.comparisons.contains_key(c)))
            .map(|c| (c, mean(&|r| r.comparisons[&c].mean())))
            .collect();
        Means {
            baseline: mean(&|r| r.baseline.mean()),
            comparisons,
            without_guidance,
            llm_opt,
            glov: mean(&|r| r.glov.mean()),
            gain: mean(&|r| r.gain.mean()),
            per_alpha: (0..self.alphas.len()).map(|i| (self.alphas[i], mean(&|r| r.per_alpha[i].1.mean()))).collect(),
        }
    }

    /// The optimiser of the block's runs, as tables name it: "GLOV", or "LLM-OPT" for a block of LLM-OPT runs that
    /// found no GLOV block to join as a column.
    pub fn method_label(&self) -> &'static str {
        let distinct = self.distinct.iter().find(|(k, _)| k == "method").map(|(_, v)| v.as_str());
        let shared = self.settings.get("method").and_then(Value::as_str);
        match distinct.or(shared) {
            Some("llm-opt") => "LLM-OPT",
            _ => "GLOV",
        }
    }

    /// How the block is named in a report: the judged model's kind and last path component, then the distinct
    /// settings.
    pub fn title(&self) -> String {
        let short = self.model.trim_end_matches('/').rsplit('/').next().unwrap_or(&self.model);
        let mut title = format!("{} {short}", self.kind);
        if !self.distinct.is_empty() {
            let parts: Vec<String> = self.distinct.iter().map(|(k, v)| format!("{k}={v}")).collect();
            title.push_str(&format!(" ({})", parts.join(", ")));
        }
        title
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub blocks: Vec<Block>,
    pub left_out: Vec<LeftOut>,
}

impl Serialize for LeftOut {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("LeftOut", 2)?;
        s.serialize_field("dir", &self.dir)?;
        s.serialize_field("reason", &self.reason)?;
        s.end()
    }
}

fn block_settings(run: &Run) -> BTreeMap<String, Value> {
    let Value::Object(map) = serde_json::to_value(&run.settings).expect("settings serialise") else {
        unreachable!("settings serialise to an object")
    };
    map.into_iter().filter(|(k, _)| !NOT_IN_BLOCK_KEY.contains(&k.as_str())).collect()
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "default".to_string(),
        other => other.to_string(),
    }
}

/// The block key of `settings` without the keys an LLM-OPT run may change.
fn without_method(settings: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    settings.iter().filter(|(k, _)| !METHOD_KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A block: the CLIP model and the settings its runs share.
type BlockKey = (String, BTreeMap<String, Value>);
/// A row: the dataset, its split file and its name.
type RowKey = (PathBuf, Option<PathBuf>, String);
/// A block's rows, each with its runs.
type Rows = Vec<(RowKey, Vec<Run>)>;

fn row_key(run: &Run) -> RowKey {
    (run.settings.dataset.clone(), run.settings.split_file.clone(), run.settings.dataset_name.clone())
}

/// Groups runs (in path order) into blocks and rows; a second run of a row with the same seed is left out. An
/// LLM-OPT run joins, as the LLM-OPT column, the row of its dataset in a GLOV block whose settings are its own but
/// for the method's (`METHOD_KEYS`); one with no such row is a block of LLM-OPT runs of its own.
pub fn aggregate(mut runs: Vec<Run>, mut left_out: Vec<LeftOut>) -> Report {
    runs.sort_by(|a, b| a.dir.cmp(&b.dir));
    let (llm_opt, mut runs): (Vec<Run>, Vec<Run>) = runs.into_iter().partition(|r| r.settings.method == Method::LlmOpt);
    let glov_rows: Vec<(BlockKey, RowKey)> = runs
        .iter()
        .map(|r| ((r.settings.judged_model().to_string(), without_method(&block_settings(r))), row_key(r)))
        .collect();
    let mut attached: Vec<((BlockKey, RowKey), Vec<Run>)> = Vec::new();
    for run in llm_opt {
        let key = ((run.settings.judged_model().to_string(), without_method(&block_settings(&run))), row_key(&run));
        if !glov_rows.contains(&key) {
            runs.push(run);
            continue;
        }
        let at = match attached.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                attached.push((key, Vec::new()));
                attached.len() - 1
            }
        };
        let column = &mut attached[at].1;
        if let Some(first) = column.iter().find(|r| r.settings.seed == run.settings.seed) {
            let reason = format!(
                "inconsistent: the same settings and seed as {}, which is counted instead",
                first.dir.display()
            );
            left_out.push(LeftOut { dir: run.dir.clone(), reason });
            continue;
        }
        column.push(run);
    }
    let mut groups: Vec<(BlockKey, Rows)> = Vec::new();
    for run in runs {
        let block_key = (run.settings.judged_model().to_string(), block_settings(&run));
        let row_key = row_key(&run);
        let block = match groups.iter().position(|(k, _)| *k == block_key) {
            Some(i) => &mut groups[i].1,
            None => {
                groups.push((block_key, Vec::new()));
                &mut groups.last_mut().expect("just pushed").1
            }
        };
        let row = match block.iter().position(|(k, _)| *k == row_key) {
            Some(i) => &mut block[i].1,
            None => {
                block.push((row_key, Vec::new()));
                &mut block.last_mut().expect("just pushed").1
            }
        };
        if let Some(first) = row.iter().find(|r| r.settings.seed == run.settings.seed) {
            left_out.push(LeftOut {
                dir: run.dir.clone(),
                reason: format!(
                    "inconsistent: the same settings and seed as {}, which is counted instead",
                    first.dir.display()
                ),
            });
            continue;
        }
        row.push(run);
    }

    let distinct_keys: Vec<String> = {
        let mut keys: Vec<String> = Vec::new();
        for ((_, settings), _) in &groups {
            for (key, value) in settings {
                let differs = groups.iter().any(|((_, other), _)| other.get(key) != Some(value));
                if differs && !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
        keys.sort();
        keys
    };

    let blocks = groups
        .into_iter()
        .map(|((model, settings), rows)| {
            let alphas = rows[0].1[0].settings.alphas.clone();
            let kind = if rows[0].1[0].settings.vlm.is_some() { "VLM" } else { "CLIP" };
            let short_key = (model.clone(), without_method(&settings));
            let names: Vec<&str> = rows.iter().map(|(_, runs)| runs[0].dataset_shown.as_str()).collect();
            let rows = rows
                .iter()
                .map(|((dataset, split_file, _), runs)| {
                    let mut label = runs[0].dataset_shown.clone();
                    if names.iter().filter(|n| **n == label).count() > 1 {
                        let file = split_file.as_deref().unwrap_or(dataset);
                        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                        label = format!("{label} ({name})");
                    }
                    let key = (
                        short_key.clone(),
                        (dataset.clone(), split_file.clone(), runs[0].settings.dataset_name.clone()),
                    );
                    let llm_opt = attached.iter().find(|(k, _)| *k == key).map_or(&[][..], |(_, r)| r.as_slice());
                    row(label, runs, &alphas, llm_opt)
                })
                .collect();
            let distinct = distinct_keys
                .iter()
                .map(|k| (k.clone(), settings.get(k).map_or_else(|| "default".to_string(), shown)))
                .collect();
            Block { model, kind, settings, distinct, alphas, rows }
        })
        .collect();
    Report { blocks, left_out }
}

fn row(dataset: String, runs: &[Run], alphas: &[f32], llm_opt: &[Run]) -> Row {
    let stat = |f: &dyn Fn(&Run) -> f64| Stat { values: runs.iter().map(f).collect() };
    let has_alpha_zero = alphas.contains(&0.0);
    let trajectory_accuracy = |run: &Run, alpha: f32| {
        run.results.trajectories.iter().find(|t| t.alpha == alpha).map_or(f64::NAN, |t| t.ensemble_test_accuracy)
    };
    Row {
        dataset,
        runs: runs.iter().map(|r| r.dir.clone()).collect(),
        seeds: runs.iter().map(|r| r.settings.seed).collect(),
        baseline: stat(&|r| r.results.baseline.test_accuracy),
        comparisons: Comparison::ALL
            .into_iter()
            .filter_map(|c| {
                let values: Option<Vec<f64>> = runs.iter().map(|r| c.of(&r.results)).collect();
                Some((c, Stat { values: values? }))
            })
            .collect(),
        without_guidance: has_alpha_zero.then(|| stat(&|r| trajectory_accuracy(r, 0.0))),
        llm_opt: (!llm_opt.is_empty())
            .then(|| Stat { values: llm_opt.iter().map(|r| r.results.test_accuracy).collect() }),
        llm_opt_runs: llm_opt.iter().map(|r| r.dir.clone()).collect(),
        llm_opt_seeds: llm_opt.iter().map(|r| r.settings.seed).collect(),
        glov: stat(&|r| r.results.test_accuracy),
        gain: stat(&|r| r.results.test_accuracy - r.results.baseline.test_accuracy),
        per_alpha: alphas.iter().map(|&a| (a, stat(&|r| trajectory_accuracy(r, a)))).collect(),
        chosen: alphas
            .iter()
            .map(|&a| (a, runs.iter().filter(|r| r.results.chosen_alpha == a).count()))
            .filter(|&(_, n)| n > 0)
            .collect(),
    }
}
