//! The description baselines a run scores beside its search (`baselines = ["cupl", "dclip", "waffle"]`), with its
//! own LLM and CLIP model on its own test split, so that a comparison with GLOV differs in the method alone:
//!
//! - CuPL and DCLIP: class descriptions written by the run's LLM with the published settings of `describe` (seeded
//!   by the run's seed), scored with CuPL's class embedding and DCLIP's mean of cosines. The descriptions are kept
//!   in the run directory as `describe` writes them (`descriptions-cupl.json`, `descriptions-dclip.json`).
//! - WaffleCLIP: 15 pairs of random descriptors, the mean and population spread of 7 runs, as published; run `r` of
//!   a run with seed `s` draws from seed `7 s + r` (`score --waffle` draws from 0, 1, ...).
//!
//! They run after the last step. Where the LLM leaves a class without a sentence (a CuPL answer with nothing before
//! its full stop, a DCLIP answer with no `- ` line), that class is scored by the run's baseline template instead
//! and the result names it: `score --descriptions` refuses such a file, but a run of many steps should not fail at
//! its end for it.

use super::run_dir::RunDir;
use super::settings::Settings;
use crate::backend::Backend;
use crate::describe::{DescribeOptions, Style, describe};
use crate::models::llm::LlmModel;
use crate::scoring::descriptions::Aggregate;
use crate::scoring::{Scorer, fill, waffle};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// WaffleCLIP's published pairs of descriptors and runs.
const WAFFLE_PAIRS: usize = 15;
const WAFFLE_RUNS: u64 = 7;
/// Most sequences decoded together while describing (a description depends on it, as on the seed).
const DESCRIBE_BATCH: usize = 256;

/// A description baseline a run can score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DescriptionBaseline {
    /// CuPL: sampled answers to five questions per class, as one class embedding.
    Cupl,
    /// DCLIP: the features one few-shot answer lists, as the mean of their cosines.
    Dclip,
    /// WaffleCLIP: random words and characters as descriptors, shared by all classes.
    Waffle,
}

/// The descriptions of one style, written by the run's LLM, and their test accuracy.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct DescribedResult {
    /// The descriptions file in the run directory.
    pub file: String,
    pub sentences: usize,
    /// Classes the LLM left without a sentence, scored by the run's baseline template instead.
    pub classes_without_sentence: Vec<String>,
    pub test_accuracy: f64,
}

/// WaffleCLIP's runs on the test split.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct WaffleResult {
    pub pairs: usize,
    /// The seed of each run's descriptors.
    pub seeds: Vec<u64>,
    /// Each run's test accuracy.
    pub runs: Vec<f64>,
    /// Their mean.
    pub test_accuracy: f64,
    /// Their population standard deviation, as published.
    pub std: f64,
}

/// The description baselines a run scored (none where its settings asked for none).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct DescriptionResults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cupl: Option<DescribedResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dclip: Option<DescribedResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waffle: Option<WaffleResult>,
}

impl DescriptionResults {
    pub fn is_empty(&self) -> bool {
        self.cupl.is_none() && self.dclip.is_none() && self.waffle.is_none()
    }
}

/// Scores the baselines `settings` asks for on the test split.
pub fn run<B: Backend>(
    backend: &B,
    llm: &LlmModel<B>,
    test: &Scorer<B>,
    classnames: &[String],
    settings: &Settings,
    run_dir: &RunDir,
) -> Result<DescriptionResults> {
    let mut results = DescriptionResults::default();
    for &baseline in &settings.baselines {
        let _span = tracing::info_span!("description_baseline", ?baseline).entered();
        match baseline {
            DescriptionBaseline::Cupl => {
                results.cupl = Some(described(backend, llm, test, classnames, settings, run_dir, Style::Cupl)?)
            }
            DescriptionBaseline::Dclip => {
                results.dclip = Some(described(backend, llm, test, classnames, settings, run_dir, Style::Dclip)?)
            }
            DescriptionBaseline::Waffle => results.waffle = Some(waffle_runs(test, classnames, settings.seed)?),
        }
    }
    Ok(results)
}

fn described<B: Backend>(
    backend: &B,
    llm: &LlmModel<B>,
    test: &Scorer<B>,
    classnames: &[String],
    settings: &Settings,
    run_dir: &RunDir,
    style: Style,
) -> Result<DescribedResult> {
    let (file, aggregate) = match style {
        Style::Cupl => ("descriptions-cupl.json", Aggregate::Embedding),
        Style::Dclip => ("descriptions-dclip.json", Aggregate::Score),
    };
    let options = DescribeOptions::published(style, settings.seed, DESCRIBE_BATCH);
    let descriptions = describe(backend, llm, classnames, &options)?;
    run_dir.write(file, (serde_json::to_string_pretty(&descriptions)? + "\n").as_bytes())?;
    let mut sentences = Vec::with_capacity(classnames.len());
    let mut classes_without_sentence = Vec::new();
    for class in classnames {
        let written: Vec<String> = descriptions.0.get(class).cloned().unwrap_or_default();
        if written.is_empty() {
            classes_without_sentence.push(class.clone());
            sentences.push(vec![fill(&settings.baseline, class)]);
        } else {
            sentences.push(written);
        }
    }
    if !classes_without_sentence.is_empty() {
        tracing::warn!(
            ?style,
            classes = ?classes_without_sentence,
            "classes without a sentence are scored by the baseline template"
        );
    }
    let accuracy =
        test.score_descriptions(&sentences, aggregate).with_context(|| format!("{file} on the test split"))?;
    Ok(DescribedResult {
        file: file.to_string(),
        sentences: descriptions.0.values().map(Vec::len).sum(),
        classes_without_sentence,
        test_accuracy: accuracy.top1,
    })
}

fn waffle_runs<B: Backend>(test: &Scorer<B>, classnames: &[String], seed: u64) -> Result<WaffleResult> {
    let first = seed.wrapping_mul(WAFFLE_RUNS);
    let seeds: Vec<u64> = (0..WAFFLE_RUNS).map(|r| first.wrapping_add(r)).collect();
    let (_, accuracies) = waffle::score_runs(test, classnames, WAFFLE_PAIRS, seeds.iter().copied())?;
    let runs: Vec<f64> = accuracies.iter().map(|a| a.top1).collect();
    let mean = runs.iter().sum::<f64>() / runs.len() as f64;
    let std = (runs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / runs.len() as f64).sqrt();
    Ok(WaffleResult { pairs: WAFFLE_PAIRS, seeds, runs, test_accuracy: mean, std })
}
