//! racecheck in global memory, within a block: two accesses to the same byte by different threads of the block,
//! at least one a write and not both atomic, that nothing orders (the same order as in shared memory: a completed
//! barrier ends an epoch; within one, lanes of a warp are ordered only by a `bar.warp.sync` between them). Threads
//! that pass data through global scratch need the barrier as much as through shared memory. Accesses of different
//! blocks are not checked (they may only meet through atomics and fences).
//!
//! Global memory is large and mostly read, so the shadow is a log, not a map: each epoch's accesses are appended
//! (one entry per 4-byte word touched) and checked when the epoch ends. An epoch with no write is dropped
//! unchecked; otherwise only the entries on written words are sorted and compared.

use super::racecheck::Access;
use super::warp::LANES;
use std::collections::HashSet;

/// One access to one 4-byte word.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// The word's address divided by 4.
    word: u64,
    /// Which of its 4 bytes (bit `i`: byte `i`).
    bytes: u8,
    pub thread: u32,
    generation: u32,
    pub pc: u32,
    pub write: bool,
    atomic: bool,
}

impl Entry {
    /// The first byte of the word this access touches.
    pub fn address(&self) -> u64 {
        self.word * 4 + self.bytes.trailing_zeros() as u64
    }
}

/// Two accesses that race: the earlier and the later one in program order of the emulation.
pub struct GlobalRace {
    pub earlier: Entry,
    pub later: Entry,
}

pub struct GlobalLog {
    enabled: bool,
    entries: Vec<Entry>,
    written: HashSet<u64>,
}

impl GlobalLog {
    pub fn new(enabled: bool) -> Self {
        GlobalLog { enabled, entries: Vec::new(), written: HashSet::new() }
    }

    /// Records access `a` of global bytes `[addr, addr + len)`.
    #[inline]
    pub fn record(&mut self, addr: u64, len: u32, a: Access) {
        if !self.enabled {
            return;
        }
        let end = addr + len as u64;
        let mut word = addr / 4;
        while word * 4 < end {
            let lo = (addr.max(word * 4) - word * 4) as u32;
            let hi = (end.min(word * 4 + 4) - word * 4) as u32;
            let bytes = ((1u32 << hi) - (1u32 << lo)) as u8;
            if a.write {
                self.written.insert(word);
            }
            self.entries.push(Entry {
                word,
                bytes,
                thread: a.thread,
                generation: a.generation,
                pc: a.pc,
                write: a.write,
                atomic: a.atomic,
            });
            word += 1;
        }
    }

    /// The epoch ended (a barrier completed, or the block finished): checks its accesses, then forgets them.
    pub fn close_epoch(&mut self) -> Result<(), GlobalRace> {
        if !self.enabled || self.entries.is_empty() {
            return Ok(());
        }
        let found = if self.written.is_empty() { Ok(()) } else { self.check() };
        self.entries.clear();
        self.written.clear();
        found
    }

    fn check(&mut self) -> Result<(), GlobalRace> {
        let written = &self.written;
        // Keep program order within a word (a stable sort), so that the report names the earlier access first.
        let mut on_written: Vec<(usize, Entry)> =
            self.entries.iter().copied().enumerate().filter(|(_, e)| written.contains(&e.word)).collect();
        on_written.sort_by_key(|(i, e)| (e.word, *i));
        for group in on_written.chunk_by(|a, b| a.1.word == b.1.word) {
            for (k, &(_, later)) in group.iter().enumerate() {
                if let Some(&(_, earlier)) = group[..k].iter().find(|(_, earlier)| races(earlier, &later)) {
                    return Err(GlobalRace { earlier, later });
                }
            }
        }
        Ok(())
    }
}

/// Whether two accesses of one epoch to one word race.
fn races(a: &Entry, b: &Entry) -> bool {
    a.thread != b.thread
        && a.bytes & b.bytes != 0
        && (a.write || b.write)
        && !(a.atomic && b.atomic)
        && (a.thread / LANES as u32 != b.thread / LANES as u32 || a.generation == b.generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(thread: u32, generation: u32, write: bool) -> Access {
        Access { thread, generation, pc: thread, write, atomic: false }
    }

    #[test]
    fn a_write_and_a_read_of_one_byte_by_two_warps_race_until_a_barrier_separates_them() {
        let mut log = GlobalLog::new(true);
        log.record(0x1000, 4, access(0, 0, true));
        log.close_epoch().unwrap_or_else(|_| panic!("one access alone"));
        log.record(0x1002, 2, access(40, 0, false));
        assert!(log.close_epoch().is_ok(), "the barrier between them orders them");
        log.record(0x1000, 4, access(0, 0, true));
        log.record(0x1002, 2, access(40, 0, false));
        let Err(race) = log.close_epoch() else { panic!("a race") };
        assert_eq!((race.earlier.thread, race.later.thread, race.later.address()), (0, 40, 0x1002));
    }

    #[test]
    fn different_bytes_of_a_word_reads_alone_and_atomics_do_not_race() {
        let mut log = GlobalLog::new(true);
        log.record(0x2000, 2, access(0, 0, true));
        log.record(0x2002, 2, access(1, 0, true));
        log.record(0x3000, 16, access(2, 0, false));
        log.record(0x3000, 16, access(70, 0, false));
        let atomic = |thread| Access { atomic: true, ..access(thread, 0, true) };
        log.record(0x4000, 4, atomic(3));
        log.record(0x4000, 4, atomic(90));
        assert!(log.close_epoch().is_ok());
    }

    #[test]
    fn lanes_of_one_warp_are_ordered_only_across_a_warp_barrier() {
        let mut log = GlobalLog::new(true);
        log.record(0x5000, 4, access(1, 0, true));
        log.record(0x5000, 4, access(2, 1, false));
        assert!(log.close_epoch().is_ok());
        log.record(0x5000, 4, access(1, 4, true));
        log.record(0x5000, 4, access(2, 4, false));
        assert!(log.close_epoch().is_err());
    }
}
