//! Sweeps: a grid of `optimize` runs (datasets x models x seeds x any setting) expanded from a plan into one run
//! directory per cell, run on this machine or as a Slurm job array. Each cell is an ordinary run directory with
//! its configuration written first, so that it can be started, resumed or re-run alone with `optimize --config`.
//!
//! The sweep's folder holds `sweep.json` (the plan and the cells, in order), the cells' folders, and `slurm/` (the
//! job-array script and the jobs submitted).

pub mod cell;
pub mod job_script;
pub mod local;
pub mod plan;
pub mod preflight;
pub mod slurm;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "sweep.json";

/// "1 cell", "4 cells".
pub fn count_cells(n: usize) -> String {
    if n == 1 { "1 cell".to_string() } else { format!("{n} cells") }
}

/// What `sweep.json` records: enough for `sweep --status` to find the cells without the plan.
#[derive(Debug, Deserialize, PartialEq, Serialize)]
pub struct Manifest {
    pub plan: PathBuf,
    /// The cells' folders below the sweep's, in the plan's order.
    pub cells: Vec<String>,
}

impl Manifest {
    pub fn read(sweep_dir: &Path) -> Result<Self> {
        let path = sweep_dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}: is {} a sweep's folder (--out of glov-cuda sweep)?",
                path.display(),
                sweep_dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }
}

/// Writes every cell's `cell.toml` (with the runtime options the cells run with) and the sweep's `sweep.json`:
/// after this, each cell can run on its own.
pub fn prepare(sweep_dir: &Path, plan: &plan::Plan, cells: &[plan::Cell], runtime: &toml::Table) -> Result<()> {
    for c in cells {
        cell::write_config(&sweep_dir.join(&c.id), &plan.path, &c.id, &c.config, runtime)?;
    }
    let manifest = Manifest {
        plan: std::path::absolute(&plan.path).unwrap_or_else(|_| plan.path.clone()),
        cells: cells.iter().map(|c| c.id.clone()).collect(),
    };
    crate::atomic_file::write(&sweep_dir.join(MANIFEST), (serde_json::to_string_pretty(&manifest)? + "\n").as_bytes())
}
