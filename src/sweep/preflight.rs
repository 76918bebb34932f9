//! The checks a sweep makes before it runs, lists or submits anything: that every cell's models, dataset, split
//! file and meta-prompt are there and readable as what they are meant to be. Cheap: a model's config is read, not
//! its weights; a dataset's folder is looked at, not its images. Everything wrong is reported at once, so that a
//! job array is not queued for hours to fail at its first cell.

use super::plan::Cell;
use crate::checkpoint::{self, gguf::GgufFile};
use crate::glov::{datasets, meta_prompt::MetaPrompt};
use crate::models::clip::ClipConfig;
use crate::models::llava::config::LlavaConfig;
use crate::models::llm::LlmConfig;
use crate::models::sentence::config::SentenceConfig;
use anyhow::{Context, Result};
use std::path::Path;

/// A check of one thing a cell needs.
type Check<'a> = Box<dyn Fn() -> Result<()> + 'a>;

/// Every problem of the cells, each once, with the number of cells it concerns.
pub fn problems(cells: &[Cell]) -> Vec<String> {
    // What was checked, what it gave, and in how many cells it stands.
    let mut results: Vec<(String, Option<String>, usize)> = Vec::new();
    for cell in cells {
        let s = &cell.settings;
        let mut checks: Vec<(String, Check)> = vec![
            (format!("llm {}", s.llm), Box::new(|| llm(&s.llm))),
            (format!("dataset {}", s.dataset.display()), Box::new(|| folder("the dataset", &s.dataset))),
            (
                format!("dataset-name {}", s.dataset_name),
                Box::new(|| datasets::resolve(&s.dataset_name, s.description.as_deref()).map(drop)),
            ),
        ];
        if let Some(model) = &s.clip {
            checks.push((format!("clip {model}"), Box::new(|| clip(model))));
        }
        if let Some(model) = &s.vlm {
            checks.push((format!("vlm {model}"), Box::new(|| vlm(model))));
        }
        if let Some(model) = &s.matcher {
            checks.push((format!("matcher {model}"), Box::new(|| matcher(model))));
        }
        if let Some(split) = &s.split_file {
            checks.push((format!("split-file {}", split.display()), Box::new(|| file("the split file", split))));
        }
        if let Some(meta) = &s.meta_prompt {
            checks
                .push((format!("meta-prompt {}", meta.display()), Box::new(|| MetaPrompt::from_file(meta).map(drop))));
        }
        for (what, check) in checks {
            match results.iter_mut().find(|(done, _, _)| *done == what) {
                Some((_, _, count)) => *count += 1,
                None => results.push((what, check().err().map(|e| format!("{e:#}")), 1)),
            }
        }
    }
    results
        .into_iter()
        .filter_map(|(what, problem, count)| {
            let cells = if count == 1 { String::new() } else { format!(" ({count} cells)") };
            problem.map(|problem| format!("{what}: {problem}{cells}"))
        })
        .collect()
}

fn folder(what: &str, path: &Path) -> Result<()> {
    anyhow::ensure!(path.is_dir(), "{what} folder {} does not exist", path.display());
    Ok(())
}

fn file(what: &str, path: &Path) -> Result<()> {
    anyhow::ensure!(path.is_file(), "{what} {} does not exist", path.display());
    Ok(())
}

/// The model's `config.json`, or a GGUF file's header and metadata.
fn config_of(model: &str) -> Result<serde_json::Value> {
    if checkpoint::is_gguf(Path::new(model)) {
        let file = GgufFile::open(Path::new(model))?;
        return checkpoint::gguf::hf::load_config(&file);
    }
    let dir = checkpoint::resolve_model(model)?;
    checkpoint::model_config(&dir)
}

fn llm(model: &str) -> Result<()> {
    LlmConfig::from_json(&config_of(model)?).context("not a supported LLM").map(drop)
}

fn clip(model: &str) -> Result<()> {
    ClipConfig::from_json(&config_of(model)?).context("not a supported CLIP model").map(drop)
}

fn vlm(model: &str) -> Result<()> {
    LlavaConfig::from_json(&config_of(model)?).context("not a supported LLaVA-OneVision model").map(drop)
}

/// A sentence-transformers directory whose modules glov-cuda reads.
fn matcher(model: &str) -> Result<()> {
    SentenceConfig::read(&checkpoint::resolve_model(model)?).context("not a supported sentence model").map(drop)
}
