//! Steering options shared by `generate` and `probe llm`, and reading a steering vector file.

use crate::checkpoint::DType;
use crate::generation::steering::{SteerCache, SteerMode};
use crate::glov::settings::parse_finite;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Clone)]
pub struct SteerArgs {
    /// Steering vector: a safetensors file holding one vector of the model's hidden size (see `steer-vector`).
    #[arg(long, value_name = "FILE")]
    pub steer: Option<PathBuf>,
    /// The decoder block (0-based) whose output receives the vector.
    #[arg(long, value_name = "L", requires = "steer")]
    pub steer_layer: Option<usize>,
    /// Scale of the vector.
    #[arg(long, default_value_t = 1.0, value_name = "A", value_parser = parse_finite)]
    pub alpha: f32,
    /// Where the vector is added: the sampled position only (GLOV) or every position.
    #[arg(long, value_enum, default_value = "last")]
    pub steer_mode: SteerMode,
    /// With --steer-mode last: cache the steered keys and values, or the clean ones (exactly the original GLOV).
    #[arg(long, value_enum, default_value = "steered")]
    pub steer_cache: SteerCache,
}

impl SteerArgs {
    /// The scaled vector and its layer, when `--steer` is given.
    pub fn load(&self) -> Result<Option<(Vec<f32>, usize)>> {
        let Some(path) = &self.steer else { return Ok(None) };
        let Some(layer) = self.steer_layer else { bail!("--steer needs --steer-layer") };
        let vector = read_vector(path)?;
        Ok(Some((vector.iter().map(|v| v * self.alpha).collect(), layer)))
    }
}

/// The vector of a steering file: its only tensor, or the tensor named `steer`.
pub fn read_vector(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read steering vector {}", path.display()))?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a valid safetensors file: {e}", path.display()))?;
    let names = tensors.names();
    let name = if names.len() == 1 { names[0].to_string() } else { "steer".to_string() };
    let view = tensors
        .tensor(&name)
        .with_context(|| format!("{} has {} tensors and none named steer", path.display(), names.len()))?;
    if view.shape().len() != 1 && !(view.shape().len() == 2 && view.shape()[0] == 1) {
        bail!("steering vector {name} in {} has shape {:?}; expected one vector", path.display(), view.shape());
    }
    let dtype =
        DType::from_safetensors(view.dtype()).with_context(|| format!("tensor {name} in {}", path.display()))?;
    let mut out = vec![0.0f32; view.shape().iter().product()];
    dtype.convert(view.data(), &mut out);
    Ok(out)
}
