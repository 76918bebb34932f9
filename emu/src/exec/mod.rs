//! Kernel execution: a grid of blocks run in parallel on host threads; each block's warps as lane arrays with a
//! program counter per lane; the checks (memcheck, racecheck, synccheck, initcheck) and the counters.
//!
//! The files stand on floors, bottom to top; a file imports only files on lower floors, or files on its own floor
//! that do not import it back:
//! 1. state: `warp`, `block_state`, `context`, `fault`, `slots`, `racecheck`, `global_race`, `traffic`, `footprint`,
//!    `counters`
//! 2. operand helpers and fault reports: `operand`, `place`, `report`
//! 3. operations: `access`, `async_copy`, `atomics`, `barrier`, `collectives`, `ldmatrix`, `mma`
//! 4. the dispatcher: `step`
//! 5. the block runner: `block`
//! 6. the grid: `grid` (which `launch` calls)
//!
//! `warp`: a warp's lanes, registers and operand reads; `block_state`: what the warps of a block share (shared
//! memory, race shadow, barrier arrivals, counters); `context`: a launch's geometry and options, and what every
//! block reads; `fault`: what stopped a kernel; `slots`: registers packed by liveness; `racecheck`: the
//! shared-memory race shadow; `global_race`: the log of a block's global accesses, checked per epoch; `traffic`: coalescing and bank-conflict counting; `footprint`: the distinct sectors a launch touched; `counters`: what a launch counted;
//! `operand`: vector sources and width masks; `place`: where an access goes, and its checks; `report`: fault texts;
//! `access` and `atomics`: memory instructions; `async_copy`: `cp.async` and its groups; `ldmatrix`: matrix loads
//! from shared memory into fragments; `barrier`: `bar.sync` across a block's warps; `collectives` and
//! `mma`: instructions a warp's lanes execute together; `step`: runs a group of lanes that share a program counter
//! through consecutive instructions; `block`: scheduling a block's warps and lanes; `grid`: blocks on host threads.

// 1. state
mod block_state;
mod context;
pub mod counters;
mod fault;
pub mod footprint;
mod global_race;
mod racecheck;
mod slots;
mod traffic;
mod warp;
// 2. operand helpers and fault reports
mod operand;
mod place;
mod report;
// 3. operations
mod access;
mod async_copy;
mod atomics;
mod barrier;
mod collectives;
mod ldmatrix;
mod mma;
// 4. the dispatcher
mod step;
// 5. the block runner
mod block;
// 6. the grid
mod grid;

#[cfg(test)]
mod tests;

use crate::ir::Module;
use crate::memory::DeviceMemory;
pub use context::{Launch, Options};
pub use counters::Stats;
pub use fault::{Fault, FaultKind};

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
