//! Block state: what the warps of a block share (its index, shared memory and which bytes of it were written, the
//! race shadows of shared and global memory, barrier arrivals, counters); the block runner resets it for each block.

use super::counters::Stats;
use super::global_race::GlobalLog;
use super::racecheck::Shadow;

/// Block-wide state the instructions of every warp use.
pub struct BlockState {
    pub block: [u32; 3],
    pub shared: Vec<u8>,
    /// Which bytes of `shared` a thread of this block has written (initcheck: shared memory starts undefined on a
    /// GPU, holding whatever an earlier block left).
    pub shared_written: Vec<bool>,
    pub race: Shadow,
    /// Global accesses of the current epoch (racecheck in global memory, within the block).
    pub global_race: GlobalLog,
    pub barriers: Barriers,
    /// Shared bytes that `cp.async` copies in flight will write.
    pub in_flight: InFlight,
    pub stats: Stats,
}

/// Per shared byte, 0 or 1 + the thread whose `cp.async` copy in flight will write it (allocated at a block's
/// first copy); `count` bytes are marked.
#[derive(Default)]
pub struct InFlight {
    by: Vec<u32>,
    count: usize,
}

impl InFlight {
    /// The thread whose copy in flight writes one of bytes `[off, off + len)`, if any.
    #[inline(always)]
    pub fn writer(&self, off: usize, len: usize) -> Option<u32> {
        if self.count == 0 {
            return None;
        }
        self.by[off..off + len].iter().find(|&&t| t != 0).map(|t| t - 1)
    }

    /// Marks bytes `[off, off + len)` of a block with `shared` bytes as written by `thread`'s copy.
    pub fn mark(&mut self, shared: usize, off: usize, len: usize, thread: u32) {
        if self.by.len() != shared {
            self.by = vec![0; shared];
        }
        self.by[off..off + len].fill(thread + 1);
        self.count += len;
    }

    /// The copy of bytes `[off, off + len)` landed.
    pub fn clear(&mut self, off: usize, len: usize) {
        self.by[off..off + len].fill(0);
        self.count -= len;
    }

    pub fn reset(&mut self) {
        if self.count != 0 {
            self.by.fill(0);
            self.count = 0;
        }
    }
}

/// Named barriers per block.
pub(super) const BARRIERS: u32 = 16;

/// Threads counted at each barrier by `bar.arrive` since it last completed.
#[derive(Default)]
pub struct Barriers {
    pub(super) arrived: [u32; BARRIERS as usize],
}

impl Barriers {
    pub fn clear(&mut self) {
        self.arrived = [0; BARRIERS as usize];
    }
}
