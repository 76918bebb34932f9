//! A warp: up to 32 lanes, each with its own program counter, call stack and carry flag, and a register file
//! stored lane-major per register (`regs[r * 32 + lane]`) so that one instruction is a loop over lanes.
//!
//! After the kernel's registers the file holds the special registers: rows of 32 for the per-lane ones
//! (`%tid`, `%laneid`, the lane masks) and single slots for the uniform ones (`%ntid`, `%ctaid`, ...), then a zero
//! slot and scratch slots where an instruction's immediates are written before it runs. Every operand thus
//! becomes a `Src`, read the same way for every lane: `regs[off + (lane & lmask)] ^ xor`.

use super::context::Ctx;
use crate::ir::{Operand, Special};
use crate::memory::Allocation;

pub const LANES: usize = 32;
pub const FULL: u32 = u32::MAX;

/// Rows of per-lane special registers: `%tid.x/y/z`, `%laneid`, `%lanemask_eq/lt/le/gt/ge`.
const LANE_ROWS: usize = 9;
/// Uniform slots, after the per-lane rows.
const NTID: usize = 0;
const NCTAID: usize = 3;
const CTAID: usize = 6;
const WARPID: usize = 9;
const NWARPID: usize = 10;
const SMID: usize = 11;
const NSMID: usize = 12;
const GRIDID: usize = 13;
const DYN_SMEM: usize = 14;
const TOTAL_SMEM: usize = 15;
const ZERO: usize = 16;
/// Scratch slots for immediates, one per operand position of an instruction.
const SCRATCH: usize = 17;
pub const SCRATCH_SLOTS: usize = 8;
const UNIFORM_SLOTS: usize = SCRATCH + SCRATCH_SLOTS;

/// `%nwarpid`: warp slots of an sm_80 multiprocessor.
const WARP_SLOTS: u64 = 64;

/// An operand resolved for one instruction: the value of lane `l` is `regs[off + (l & lmask)] ^ xor`.
#[derive(Clone, Copy, Debug)]
pub struct Src {
    pub off: usize,
    pub lmask: usize,
    pub xor: u64,
}

/// What a lane that is not runnable waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    None,
    /// At `bar.sync id[, count]`.
    Barrier {
        id: u32,
        count: Option<u32>,
    },
    /// At a warp collective (`shfl`, `vote`, `match`, `bar.warp.sync`, `mma`) until the lanes it names arrive.
    Collective,
}

/// A `cp.async` copy in flight: lane `lane`'s, issued at `pc` into its group `group`, the `len` bytes it will
/// write at shared offset `shared` (`read` of them read from global memory at issue, zeros after them).
pub struct AsyncCopy {
    pub lane: u8,
    pub len: u8,
    pub read: u8,
    pub group: u32,
    pub pc: u32,
    pub shared: u32,
    pub bytes: [u8; 16],
}

/// Iterates the set bits of a lane mask, lowest first.
#[derive(Clone, Copy)]
pub struct Lanes(pub u32);

impl Iterator for Lanes {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let l = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(l)
    }
}

pub struct Warp<'a> {
    /// Index of the warp in its block.
    pub index: u32,
    /// Lanes that exist (the last warp of a block may be partial).
    pub exists: u32,
    pub exited: u32,
    /// Lanes blocked at a barrier or collective (`wait` says which).
    pub waiting: u32,
    pub pc: [u32; LANES],
    pub wait: [Wait; LANES],
    /// Return program counters of `call`s, per lane.
    pub stacks: [Vec<u32>; LANES],
    pub carry: [bool; LANES],
    pub regs: Vec<u64>,
    /// `local_bytes` per lane, lane after lane.
    pub local: Vec<u8>,
    /// The allocation the warp's last global access hit.
    pub cache: Option<&'a Allocation>,
    /// Counts the `bar.warp.sync`s the warp completed: accesses of its lanes separated by one are ordered.
    pub sync_gen: u32,
    /// Warp instructions issued (`%clock`).
    pub issued: u64,
    /// The `cp.async` copies of the warp's lanes that have not landed.
    pub copies: Vec<AsyncCopy>,
    /// Per lane, the `cp.async` groups it has committed (its open group's number).
    pub groups: [u32; LANES],
    /// Per lane, the source bytes of its copies in flight, and the most it has had in flight at once.
    pub copy_bytes: [u32; LANES],
    pub copy_peak: [u32; LANES],
    /// Row offset of each kernel register (`slots::Slots::row`).
    rows: &'a [u32],
    /// Rows of the kernel's registers (after packing).
    nregs: usize,
}

impl<'a> Warp<'a> {
    pub fn new(ctx: &'a Ctx<'_>) -> Self {
        let nregs = ctx.slots.count as usize;
        Warp {
            index: 0,
            exists: 0,
            exited: 0,
            waiting: 0,
            pc: [0; LANES],
            wait: [Wait::None; LANES],
            stacks: Default::default(),
            carry: [false; LANES],
            regs: vec![0; (nregs + LANE_ROWS) * LANES + UNIFORM_SLOTS],
            local: vec![0; ctx.func.local_bytes as usize * LANES],
            cache: None,
            sync_gen: 0,
            issued: 0,
            copies: Vec::new(),
            groups: [0; LANES],
            copy_bytes: [0; LANES],
            copy_peak: [0; LANES],
            rows: &ctx.slots.row,
            nregs,
        }
    }

    /// Makes this the warp `index` of block `block` (linear index `linear`): all its lanes at the first
    /// instruction, the kernel's registers and local memory poisoned (0xFF bytes, NaN in every float width: what
    /// they hold on a GPU is undefined) or, without `options.poison`, zeroed; special registers set.
    pub fn reset(&mut self, ctx: &Ctx<'_>, index: u32, block: [u32; 3], linear: u64) {
        let first = index * LANES as u32;
        let count = (ctx.block_threads - first).min(LANES as u32);
        self.index = index;
        self.exists = if count == 32 { FULL } else { (1u32 << count) - 1 };
        self.exited = 0;
        self.waiting = 0;
        self.pc = [0; LANES];
        self.wait = [Wait::None; LANES];
        self.stacks.iter_mut().for_each(Vec::clear);
        self.carry = [false; LANES];
        let born = if ctx.options.poison { u8::MAX } else { 0 };
        let row = self.nregs * LANES;
        self.regs[..row].fill(u64::from_ne_bytes([born; 8]));
        self.regs[row..].fill(0);
        self.local.fill(born);
        self.sync_gen = 0;
        self.issued = 0;
        self.copies.clear();
        self.groups = [0; LANES];
        self.copy_bytes = [0; LANES];
        self.copy_peak = [0; LANES];
        let [bx, by, _] = ctx.launch.block;
        for lane in 0..LANES {
            let t = first + lane as u32;
            let tid = [t % bx, t / bx % by, t / (bx * by)];
            for (d, v) in tid.iter().enumerate() {
                self.regs[row + d * LANES + lane] = *v as u64;
            }
            let bit = 1u64 << lane;
            let masks =
                [lane as u64, bit, bit - 1, (bit << 1).wrapping_sub(1), !((bit << 1).wrapping_sub(1)), !(bit - 1)];
            for (k, m) in masks.iter().enumerate() {
                self.regs[row + (3 + k) * LANES + lane] = m & 0xFFFF_FFFF;
            }
        }
        let u = (self.nregs + LANE_ROWS) * LANES;
        for (d, b) in block.iter().enumerate() {
            self.regs[u + NTID + d] = ctx.launch.block[d] as u64;
            self.regs[u + NCTAID + d] = ctx.launch.grid[d] as u64;
            self.regs[u + CTAID + d] = *b as u64;
        }
        self.regs[u + WARPID] = index as u64;
        self.regs[u + NWARPID] = WARP_SLOTS;
        self.regs[u + SMID] = linear % ctx.options.sm_count.max(1) as u64;
        self.regs[u + NSMID] = ctx.options.sm_count as u64;
        self.regs[u + GRIDID] = ctx.grid_id;
        self.regs[u + DYN_SMEM] = ctx.launch.dynamic_shared as u64;
        self.regs[u + TOTAL_SMEM] = ctx.shared_bytes as u64;
    }

    /// Lanes that can execute now.
    #[inline(always)]
    pub fn runnable(&self) -> u32 {
        self.exists & !self.exited & !self.waiting
    }

    /// Lanes that have not exited.
    #[inline(always)]
    pub fn live(&self) -> u32 {
        self.exists & !self.exited
    }

    fn uniform(&self, slot: usize) -> usize {
        (self.nregs + LANE_ROWS) * LANES + slot
    }

    /// The offset of register `r`'s row (lane `l` at `row(r) + l`).
    #[inline(always)]
    pub fn row(&self, r: u32) -> usize {
        self.rows[r as usize] as usize
    }

    /// Resolves `op` for the instruction about to run; an immediate takes scratch slot `slot`.
    #[inline]
    pub fn src(&mut self, op: Operand, slot: usize, ctx: &Ctx<'_>) -> Src {
        match op {
            Operand::Reg(r) => Src { off: self.row(r), lmask: LANES - 1, xor: 0 },
            Operand::NotPred(r) => Src { off: self.row(r), lmask: LANES - 1, xor: 1 },
            Operand::Imm(v) => self.constant(v, slot),
            Operand::GlobalAddr(i) => self.constant(ctx.globals[i as usize], slot),
            Operand::Special(s) => self.special(s, slot, ctx),
        }
    }

    /// A source that reads 0 in every lane.
    #[inline(always)]
    pub fn zero(&self) -> Src {
        Src { off: self.uniform(ZERO), lmask: 0, xor: 0 }
    }

    #[inline(always)]
    fn constant(&mut self, v: u64, slot: usize) -> Src {
        let off = self.uniform(SCRATCH + slot);
        self.regs[off] = v;
        Src { off, lmask: 0, xor: 0 }
    }

    fn special(&mut self, s: Special, slot: usize, ctx: &Ctx<'_>) -> Src {
        let lane_row = |row: usize| Src { off: (self.nregs + row) * LANES, lmask: LANES - 1, xor: 0 };
        let uniform = |k: usize| Src { off: self.uniform(k), lmask: 0, xor: 0 };
        match s {
            Special::Tid(d) => lane_row(d as usize),
            Special::LaneId => lane_row(3),
            Special::LanemaskEq => lane_row(4),
            Special::LanemaskLt => lane_row(5),
            Special::LanemaskLe => lane_row(6),
            Special::LanemaskGt => lane_row(7),
            Special::LanemaskGe => lane_row(8),
            Special::Ntid(d) => uniform(NTID + d as usize),
            Special::Nctaid(d) => uniform(NCTAID + d as usize),
            Special::Ctaid(d) => uniform(CTAID + d as usize),
            Special::WarpId => uniform(WARPID),
            Special::NWarpId => uniform(NWARPID),
            Special::SmId => uniform(SMID),
            Special::NSmId => uniform(NSMID),
            Special::GridId => uniform(GRIDID),
            Special::DynamicSmemSize => uniform(DYN_SMEM),
            Special::TotalSmemSize => uniform(TOTAL_SMEM),
            Special::Clock => self.constant(self.issued & 0xFFFF_FFFF, slot),
            Special::Clock64 => self.constant(self.issued, slot),
            Special::GlobalTimer => self.constant(ctx.start.elapsed().as_nanos() as u64, slot),
        }
    }

    /// Lane `l`'s value of a resolved source.
    #[inline(always)]
    pub fn rd(&self, s: Src, l: usize) -> u64 {
        self.regs[s.off + (l & s.lmask)] ^ s.xor
    }

    /// Lane `l`'s value of `op` (for instructions whose lanes may sit at different program counters).
    pub fn read_lane(&mut self, op: Operand, l: usize, ctx: &Ctx<'_>) -> u64 {
        let s = self.src(op, SCRATCH_SLOTS - 1, ctx);
        self.rd(s, l)
    }

    /// Lanes of `group` whose guard `@[!]p` holds.
    #[inline(always)]
    pub fn guard(&self, p: u32, negate: bool, group: u32) -> u32 {
        let off = self.row(p);
        let row = &self.regs[off..off + LANES];
        let mut on = 0u32;
        for (l, v) in row.iter().enumerate() {
            on |= ((*v != 0) as u32) << l;
        }
        if negate { group & !on } else { group & on }
    }

    /// Sets the program counter of every lane in `mask`.
    #[inline(always)]
    pub fn set_pc(&mut self, mask: u32, pc: u32) {
        for l in Lanes(mask) {
            self.pc[l] = pc;
        }
    }

    /// Marks the lanes of `mask` as waiting for `what`.
    pub fn block_on(&mut self, mask: u32, what: Wait) {
        self.waiting |= mask;
        for l in Lanes(mask) {
            self.wait[l] = what;
        }
    }

    /// Releases the waiting lanes of `mask` to the instruction after the one they wait at.
    pub fn release(&mut self, mask: u32) {
        self.waiting &= !mask;
        for l in Lanes(mask) {
            self.wait[l] = Wait::None;
            self.pc[l] += 1;
        }
    }

    /// Block-linear thread index of lane `l`.
    pub fn thread(&self, l: usize) -> u32 {
        self.index * LANES as u32 + l as u32
    }
}
