//! A launch's context: what the caller gives (`Launch`, `Options`) and what every block of the launch reads (`Ctx`).

use super::slots::Slots;
use crate::ir::Function;
use crate::memory::View;
use std::sync::Arc;
use std::time::Instant;

/// One launch's geometry and parameter buffer (laid out as the kernel's `ir::Param`s say).
pub struct Launch<'a> {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_shared: u32,
    pub params: &'a [u8],
}

/// How kernels run, read once from the environment by the driver (`driver::Config`).
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
    /// Registers and local memory start as 0xFF bytes (NaN in every float width), as undefined as on a GPU; else
    /// zero.
    pub poison: bool,
}

impl Default for Options {
    /// Every check on, the fixed (lowest program counter first) schedule, one host thread per core, 108
    /// multiprocessors (an A100's), poisoned registers.
    fn default() -> Self {
        Options {
            memcheck: true,
            racecheck: true,
            synccheck: true,
            initcheck: true,
            schedule_seed: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            sm_count: 108,
            poison: true,
        }
    }
}

/// What every block of one launch reads.
pub struct Ctx<'a> {
    pub func: &'a Function,
    /// The register slots of `func`.
    pub slots: Arc<Slots>,
    pub globals: &'a [u64],
    pub launch: &'a Launch<'a>,
    pub view: View,
    pub options: &'a Options,
    pub block_threads: u32,
    pub warps: u32,
    /// Static plus dynamic shared memory of a block.
    pub shared_bytes: u32,
    pub grid_id: u64,
    pub start: Instant,
    /// `(offset, base, bytes)`: each 8-byte parameter that points into a live allocation, and that allocation.
    pub param_allocations: Vec<(u32, u64, u64)>,
}

impl Ctx<'_> {
    /// The allocation the pointer parameter at `offset` points into, if it does: `(base, bytes)`.
    #[inline]
    pub fn param_allocation(&self, offset: u32) -> Option<(u64, u64)> {
        self.param_allocations.iter().find(|p| p.0 == offset).map(|p| (p.1, p.2))
    }
}
