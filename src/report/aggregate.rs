//! Finished runs laid out as the paper's tables: one block per CLIP model (and per combination of the other
//! settings, when the runs differ in more than the dataset and the seed), one row per dataset, each measure the
//! mean and standard deviation over the row's seeds, and the mean over the datasets last.

use super::runs::{LeftOut, Run};
use serde::Serialize;
use serde::ser::SerializeStruct;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings that place a run in a row (the dataset), tell seeds apart, or do not change results (batch sizes, the
/// feature cache); every other setting must be equal within a block.
const NOT_IN_BLOCK_KEY: [&str; 10] = [
    "clip",
    "dataset",
    "split-file",
    "dataset-name",
    "description",
    "seed",
    "image-batch",
    "text-batch",
    "cache-dir",
    "no-cache",
];

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
    /// GLOV without guidance: alpha 0's ensemble (`None` when alpha 0 was not run).
    pub without_guidance: Option<Stat>,
    /// GLOV: the chosen alpha's ensemble.
    pub glov: Stat,
    /// GLOV minus the baseline, run by run.
    pub gain: Stat,
    /// Each alpha's ensemble, in the runs' order of alphas.
    pub per_alpha: Vec<(f32, Stat)>,
    /// How many runs chose each alpha.
    pub chosen: Vec<(f32, usize)>,
}

/// The rows of one CLIP model under one set of method settings.
#[derive(Clone, Debug, Serialize)]
pub struct Block {
    pub clip: String,
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
    pub without_guidance: Option<f64>,
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
        Means {
            baseline: mean(&|r| r.baseline.mean()),
            without_guidance,
            glov: mean(&|r| r.glov.mean()),
            gain: mean(&|r| r.gain.mean()),
            per_alpha: (0..self.alphas.len()).map(|i| (self.alphas[i], mean(&|r| r.per_alpha[i].1.mean()))).collect(),
        }
    }

    /// The optimiser of the block's runs, as tables name it: "GLOV", or "LLM-OPT" (runs of either method never share
    /// a block: the method is one of the settings that tell blocks apart).
    pub fn method_label(&self) -> &'static str {
        let distinct = self.distinct.iter().find(|(k, _)| k == "method").map(|(_, v)| v.as_str());
        let shared = self.settings.get("method").and_then(Value::as_str);
        match distinct.or(shared) {
            Some("llm-opt") => "LLM-OPT",
            _ => "GLOV",
        }
    }

    /// How the block is named in a report: the CLIP model's last path component, then the distinct settings.
    pub fn title(&self) -> String {
        let short = self.clip.trim_end_matches('/').rsplit('/').next().unwrap_or(&self.clip);
        let mut title = format!("CLIP {short}");
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

/// Groups runs (in path order) into blocks and rows; a second run of a row with the same seed is left out.
pub fn aggregate(mut runs: Vec<Run>, mut left_out: Vec<LeftOut>) -> Report {
    runs.sort_by(|a, b| a.dir.cmp(&b.dir));
    type RowKey = (PathBuf, Option<PathBuf>, String);
    let mut groups: Vec<((String, BTreeMap<String, Value>), Vec<(RowKey, Vec<Run>)>)> = Vec::new();
    for run in runs {
        let block_key = (run.settings.clip.clone(), block_settings(&run));
        let row_key: RowKey =
            (run.settings.dataset.clone(), run.settings.split_file.clone(), run.settings.dataset_name.clone());
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
        .map(|((clip, settings), rows)| {
            let alphas = rows[0].1[0].settings.alphas.clone();
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
                    row(label, runs, &alphas)
                })
                .collect();
            let distinct = distinct_keys
                .iter()
                .map(|k| (k.clone(), settings.get(k).map_or_else(|| "default".to_string(), shown)))
                .collect();
            Block { clip, settings, distinct, alphas, rows }
        })
        .collect();
    Report { blocks, left_out }
}

fn row(dataset: String, runs: &[Run], alphas: &[f32]) -> Row {
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
        without_guidance: has_alpha_zero.then(|| stat(&|r| trajectory_accuracy(r, 0.0))),
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
