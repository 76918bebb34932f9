//! Finding run directories and reading what a finished run reports; an unfinished or inconsistent run is named
//! with the reason it is left out.

use crate::glov::report::Results;
use crate::glov::run_dir;
use crate::glov::settings::Settings;
use crate::sweep::cell;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A finished run.
#[derive(Clone, Debug)]
pub struct Run {
    pub dir: PathBuf,
    pub settings: Settings,
    /// The dataset's name as the run showed it (the known spelling of one of the 16 datasets).
    pub dataset_shown: String,
    pub results: Results,
}

/// A run directory left out of the report, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct LeftOut {
    pub dir: PathBuf,
    pub reason: String,
}

/// The part of `config.json` the report reads.
#[derive(Deserialize)]
struct RunConfig {
    settings: Settings,
    dataset_name_shown: String,
}

/// Every run directory (a folder with `config.json`, or a sweep's cell with its `cell.toml`) at or below the given
/// folders, in path order.
pub fn find(roots: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for root in roots {
        if !root.is_dir() {
            bail!("{} is not a folder (give run directories or folders holding them)", root.display());
        }
        walk(root, &mut found)?;
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    if dir.join(run_dir::CONFIG).is_file() || dir.join(cell::CELL_CONFIG).is_file() {
        found.push(dir.to_path_buf());
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut children: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if entry.file_type()?.is_dir() {
            children.push(entry.path());
        }
    }
    children.sort();
    for child in children {
        walk(&child, found)?;
    }
    Ok(())
}

/// Reads a run directory: the finished run, or why it is left out.
pub fn read(dir: &Path) -> std::result::Result<Run, LeftOut> {
    let failure = last_error_line(dir);
    let left_out = |reason: String| {
        let reason = match &failure {
            Some(error) => format!("{reason}; the last attempt failed: {error}"),
            None => reason,
        };
        LeftOut { dir: dir.to_path_buf(), reason }
    };
    let config_path = dir.join(run_dir::CONFIG);
    if !config_path.exists() {
        return Err(left_out("not started (no config.json)".to_string()));
    }
    let config: RunConfig = std::fs::read_to_string(&config_path)
        .map_err(anyhow::Error::from)
        .and_then(|text| Ok(serde_json::from_str(&text)?))
        .map_err(|e| left_out(format!("config.json cannot be read as a run's configuration: {e}")))?;
    let steps = config.settings.steps;
    let results_path = dir.join("results.json");
    if !results_path.exists() {
        let done = std::fs::read_to_string(dir.join(run_dir::STATE))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|state| state["completed_steps"].as_u64())
            .unwrap_or(0);
        return Err(left_out(format!("unfinished: {done} of {steps} steps, no results.json")));
    }
    let results: Results = std::fs::read_to_string(&results_path)
        .map_err(anyhow::Error::from)
        .and_then(|text| Ok(serde_json::from_str(&text)?))
        .map_err(|e| left_out(format!("results.json cannot be read: {e}")))?;
    if results.steps != steps {
        return Err(left_out(format!(
            "inconsistent: results.json reports {} steps, config.json asks {steps}",
            results.steps
        )));
    }
    let alphas: Vec<f32> = results.trajectories.iter().map(|t| t.alpha).collect();
    if alphas != config.settings.alphas {
        return Err(left_out(format!(
            "inconsistent: results.json has alphas {alphas:?}, config.json asks {:?}",
            config.settings.alphas
        )));
    }
    if !alphas.contains(&results.chosen_alpha) {
        return Err(left_out(format!(
            "inconsistent: the chosen alpha {} is not among {alphas:?}",
            results.chosen_alpha
        )));
    }
    Ok(Run { dir: dir.to_path_buf(), settings: config.settings, dataset_shown: config.dataset_name_shown, results })
}

/// The last non-empty line of a cell's `error.txt` (the error itself, as the log ends with it).
fn last_error_line(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(cell::ERROR)).ok()?;
    text.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string())
}
