//! Kernel execution: a grid of blocks run in parallel on host threads; each block's warps as lane arrays with a
//! program counter per lane; the checks (memcheck, racecheck, synccheck, initcheck) and the counters.
//!
//! Files, bottom to top: `slots` (registers packed by liveness), `warp` (a warp's lanes, registers and operand
//! reads), `step` (runs a group of lanes that share a program counter through consecutive instructions), `place`
//! (where an access goes, and its checks), `access` and `atomics` (memory instructions), `traffic` (coalescing and
//! bank-conflict counting), `racecheck` (the shared-memory race shadow), `collectives` and `mma` (instructions a
//! warp's lanes execute together), `barrier` (`bar.sync` across a block's warps), `block` (scheduling a block's
//! warps and lanes), `grid` (blocks on host threads), `report` (fault texts), `counters` (what a launch counted).

mod access;
mod atomics;
mod barrier;
mod block;
mod collectives;
pub mod counters;
mod grid;
mod mma;
mod place;
mod racecheck;
mod report;
mod slots;
mod step;
mod traffic;
mod warp;

#[cfg(test)]
mod tests;

use crate::ir::Module;
use crate::memory::DeviceMemory;
pub use counters::Stats;

/// One launch's geometry and parameter buffer (laid out as the kernel's `ir::Param`s say).
pub struct Launch<'a> {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_shared: u32,
    pub params: &'a [u8],
}

/// How kernels run, read once from the environment by the driver (see `Options::from_env`).
#[derive(Clone, Debug)]
pub struct Options {
    pub memcheck: bool,
    pub racecheck: bool,
    pub synccheck: bool,
    pub initcheck: bool,
    /// `Some(seed)`: vary the order of divergent lane groups and warps, from this seed.
    pub schedule_seed: Option<u64>,
    /// Host threads that run blocks.
    pub threads: usize,
    /// Streaming multiprocessors the device reports (`%nsmid`, `%smid`).
    pub sm_count: u32,
}

impl Default for Options {
    /// Every check on, the fixed (lowest program counter first) schedule, one host thread per core, 108
    /// multiprocessors (an A100's).
    fn default() -> Self {
        Options {
            memcheck: true,
            racecheck: true,
            synccheck: true,
            initcheck: true,
            schedule_seed: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            sm_count: 108,
        }
    }
}

/// What stopped a kernel: the driver turns `kind` into its error code and prints `report`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: FaultKind,
    /// Names the kernel, block, thread, instruction (PTX line and text), address and nearest allocation.
    pub report: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// An access outside every live allocation or window (`CUDA_ERROR_ILLEGAL_ADDRESS`).
    IllegalAddress,
    /// An access not aligned to its width (`CUDA_ERROR_MISALIGNED_ADDRESS`).
    Misaligned,
    /// A shared-memory data race between barriers.
    Race,
    /// A barrier or collective not reached by all the threads it names, or a deadlock.
    Sync,
    /// A read of device memory never written.
    Uninitialized,
    /// Anything else undefined: division by zero is not one (PTX defines it); an unsupported operand at run time is.
    Undefined,
}

/// Runs kernel `kernel` of `module` to completion and returns what it counted. `globals[i]` is the device address of `module.globals[i]`.
pub fn launch(
    module: &Module,
    kernel: usize,
    globals: &[u64],
    launch: &Launch<'_>,
    memory: &DeviceMemory,
    options: &Options,
) -> Result<Stats, Fault> {
    grid::run(module, kernel, globals, launch, memory, options)
}
