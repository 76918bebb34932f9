//! Steering: an offset vector added to the residual stream after one decoder block (GLOV's guidance, and the
//! activation-addition / control-vector technique).

use std::fmt;
use std::str::FromStr;

/// Which positions receive the offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SteerMode {
    /// Only the position whose next token is being sampled, at every step (GLOV).
    Last,
    /// Every position, the prompt included.
    All,
}

/// What the KV cache keeps for a steered position in `last` mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SteerCache {
    /// The keys and values computed with the offset (one pass per token).
    Steered,
    /// The keys and values of the unsteered position, as a model without a cache recomputes them (the original
    /// GLOV code); costs a second pass over the blocks after the steered one.
    Clean,
}

/// Where and how offsets are applied, for a whole batch. Each request carries its own vector (or none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SteerConfig {
    /// The block (0-based) whose output receives the offset.
    pub layer: usize,
    pub mode: SteerMode,
    pub cache: SteerCache,
}

impl fmt::Display for SteerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SteerMode::Last => "last",
            SteerMode::All => "all",
        })
    }
}

impl FromStr for SteerCache {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "steered" => Ok(SteerCache::Steered),
            "clean" => Ok(SteerCache::Clean),
            other => Err(format!("unknown steering cache mode {other:?} (expected steered or clean)")),
        }
    }
}
