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
    pub stats: Stats,
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
