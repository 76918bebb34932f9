//! racecheck: a shadow of the block's shared memory that finds two accesses to the same byte by different threads,
//! at least one a write and not both atomic, that nothing orders.
//!
//! Order: a completed barrier starts a new epoch (accesses of earlier epochs are ordered before every later one);
//! within an epoch, accesses of different warps are unordered, and accesses of lanes of one warp are ordered only
//! when a `bar.warp.sync` (`__syncwarp`) the warp completed lies between them (`Warp::sync_gen`) — lanes
//! have independent program counters, so nothing else orders them, not even executing one store together.
//!
//! The shadow is one cell per 4-byte word, holding the last writer and the last reader(s) with their epoch, warp
//! generation and instruction; a word that a narrower access touches is split into four byte cells for the rest
//! of the block, so that threads using different bytes of a word (16-bit elements) do not conflict. Readers are
//! kept compactly: one thread, several threads of one warp at one generation, or threads of several warps.

use super::warp::LANES;

/// The readers of a cell.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Readers {
    /// `thread` alone (in this epoch).
    #[default]
    One,
    /// Several threads of `thread`'s warp, all at generation `r_gen`.
    SameWarp,
    /// Threads of several warps (`thread` is the latest, for reports).
    Mixed,
}

#[derive(Clone, Copy, Default)]
struct Cell {
    w_epoch: u32,
    w_thread: u32,
    w_gen: u32,
    w_pc: u32,
    w_atomic: bool,
    r_epoch: u32,
    r_thread: u32,
    r_gen: u32,
    r_pc: u32,
    readers: Readers,
}

/// One thread's access, as the shadow sees it.
#[derive(Clone, Copy)]
pub struct Access {
    /// Linear thread index in the block.
    pub thread: u32,
    /// The warp's `bar.warp.sync` generation at the access.
    pub generation: u32,
    pub pc: u32,
    pub write: bool,
    pub atomic: bool,
}

/// The earlier access a new one races with.
#[derive(Debug)]
pub struct Conflict {
    pub thread: u32,
    pub pc: u32,
    pub write: bool,
    /// The shared-memory byte (the first of its cell).
    pub offset: u32,
    /// The earlier access is one of several threads' reads.
    pub several: bool,
}

pub struct Shadow {
    enabled: bool,
    epoch: u32,
    words: Vec<Cell>,
    /// Per word: 0 while whole, else 1 + the index of its byte cells in `bytes`.
    split: Vec<u32>,
    bytes: Vec<[Cell; 4]>,
}

impl Shadow {
    pub fn new(shared_bytes: u32, enabled: bool) -> Self {
        let words = if enabled { shared_bytes.div_ceil(4) as usize } else { 0 };
        Shadow { enabled, epoch: 0, words: vec![Cell::default(); words], split: vec![0; words], bytes: Vec::new() }
    }

    /// A new block, or a barrier completed: every access so far is ordered before every later one.
    pub fn new_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1).max(1);
    }

    /// A block begins: its words are whole again.
    pub fn new_block(&mut self) {
        self.new_epoch();
        if !self.bytes.is_empty() {
            self.split.fill(0);
            self.bytes.clear();
        }
    }

    /// Records `a` of bytes `[off, off + len)` (inside the block's shared memory); the access it races with, if any.
    #[inline]
    pub fn access(&mut self, off: u32, len: u32, a: Access) -> Result<(), Conflict> {
        if !self.enabled {
            return Ok(());
        }
        let end = off + len;
        let mut word = off / 4;
        while word * 4 < end {
            let w = word as usize;
            let (lo, hi) = (word * 4, word * 4 + 4);
            let whole = off <= lo && end >= hi;
            if whole && self.split[w] == 0 {
                check(&mut self.words[w], self.epoch, a).map_err(|c| Conflict { offset: lo, ..c })?;
            } else {
                if self.split[w] == 0 {
                    self.bytes.push([self.words[w]; 4]);
                    self.split[w] = self.bytes.len() as u32;
                }
                let cells = &mut self.bytes[self.split[w] as usize - 1];
                for b in off.max(lo)..end.min(hi) {
                    check(&mut cells[(b - lo) as usize], self.epoch, a).map_err(|c| Conflict { offset: b, ..c })?;
                }
            }
            word += 1;
        }
        Ok(())
    }
}

/// Whether an access by `t` at `generation` and an earlier one by `prev` at `prev_gen` (same epoch, different
/// threads) are unordered.
#[inline(always)]
fn unordered(prev: u32, prev_gen: u32, t: u32, generation: u32) -> bool {
    prev / LANES as u32 != t / LANES as u32 || prev_gen == generation
}

/// Checks `a` against a cell and records it; on a race, the earlier access (its offset set by the caller).
#[inline(always)]
fn check(c: &mut Cell, epoch: u32, a: Access) -> Result<(), Conflict> {
    let writer = Conflict { thread: c.w_thread, pc: c.w_pc, write: true, offset: 0, several: false };
    let reader =
        Conflict { thread: c.r_thread, pc: c.r_pc, write: false, offset: 0, several: c.readers != Readers::One };
    let t = a.thread;
    if c.w_epoch == epoch
        && c.w_thread != t
        && unordered(c.w_thread, c.w_gen, t, a.generation)
        && !(a.atomic && c.w_atomic)
    {
        return Err(writer);
    }
    if a.write {
        if c.r_epoch == epoch {
            let same_warp = c.r_thread / LANES as u32 == t / LANES as u32;
            let race = match c.readers {
                Readers::One => c.r_thread != t && unordered(c.r_thread, c.r_gen, t, a.generation),
                Readers::SameWarp => !same_warp || c.r_gen == a.generation,
                Readers::Mixed => true,
            };
            if race {
                return Err(reader);
            }
        }
        *c = Cell { w_epoch: epoch, w_thread: t, w_gen: a.generation, w_pc: a.pc, w_atomic: a.atomic, ..*c };
        return Ok(());
    }
    let same_warp = c.r_thread / LANES as u32 == t / LANES as u32;
    c.readers = if c.r_epoch != epoch {
        Readers::One
    } else {
        match c.readers {
            Readers::One if c.r_thread == t => Readers::One,
            Readers::One | Readers::SameWarp if same_warp && c.r_gen == a.generation => Readers::SameWarp,
            // The earlier readers are ordered before this one (a `bar.warp.sync` of the warp lies between).
            Readers::One | Readers::SameWarp if same_warp => Readers::One,
            _ => Readers::Mixed,
        }
    };
    c.r_epoch = epoch;
    c.r_thread = t;
    c.r_gen = a.generation;
    c.r_pc = a.pc;
    Ok(())
}
