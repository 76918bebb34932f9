//! An estimate of DRAM traffic: an L2 cache of the posed card's size (H100 SXM 50 MiB, A100 SXM 40 MiB), sector
//! granular, least recently used across launches, in the order the launches run.
//!
//! A launch reads its footprint's load sectors: those the L2 holds (from earlier launches, or written by this one)
//! are hits, the others come from DRAM once. Every sector it stores is written back once. Its sectors then become
//! the most recently used, and the least recently used ones are evicted down to the capacity (within one launch,
//! lowest address first). What the model does not see, and so where a GPU does worse or better:
//! - reuse inside a launch is free: a launch whose own footprint exceeds the L2 (or whose blocks reuse data at a
//!   distance larger than it) re-reads from DRAM on a GPU, here not;
//! - a sector stored by several launches is written back by each (a GPU merges dirty lines still resident);
//! - H100's L2 is two partitions, and data in the far one costs more than a hit in the near one; no set
//!   associativity, no prefetching, no compression;
//! - copies (host to device, device to device, fills) and atomics neither fill the L2 nor count as DRAM bytes, and
//!   a freed and reallocated range may look resident.

use std::collections::{HashMap, VecDeque};

pub const SECTOR_BYTES: u64 = 32;

/// The DRAM bytes of one launch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DramBytes {
    pub read: u64,
    pub write: u64,
}

/// Resident sectors and when each was last used.
pub struct L2 {
    capacity_sectors: usize,
    /// Sector id -> the launch that used it last.
    resident: HashMap<u64, u64>,
    /// Each launch's sectors in address order, oldest launch first (entries since used again are skipped).
    generations: VecDeque<(u64, Vec<u64>)>,
    launches: u64,
}

impl L2 {
    pub fn new(capacity_bytes: u64) -> Self {
        let capacity_sectors = (capacity_bytes / SECTOR_BYTES) as usize;
        L2 { capacity_sectors, resident: HashMap::new(), generations: VecDeque::new(), launches: 0 }
    }

    /// Counts a launch that read `loads` and wrote `stores` (each sorted and distinct), and makes them resident.
    pub fn launch(&mut self, loads: &[u64], stores: &[u64]) -> DramBytes {
        let missed =
            loads.iter().filter(|s| !self.resident.contains_key(s) && stores.binary_search(s).is_err()).count() as u64;
        self.launches += 1;
        let now = self.launches;
        let mut used: Vec<u64> = loads.iter().chain(stores).copied().collect();
        used.sort_unstable();
        used.dedup();
        for &s in &used {
            self.resident.insert(s, now);
        }
        self.generations.push_back((now, used));
        self.evict();
        DramBytes { read: missed * SECTOR_BYTES, write: stores.len() as u64 * SECTOR_BYTES }
    }

    /// Drops the least recently used sectors until the rest fit.
    fn evict(&mut self) {
        while self.resident.len() > self.capacity_sectors {
            let Some((stamp, sectors)) = self.generations.front_mut() else { break };
            let stamp = *stamp;
            let mut kept = 0;
            for (i, &s) in sectors.iter().enumerate() {
                if self.resident.len() <= self.capacity_sectors {
                    kept = i;
                    break;
                }
                if self.resident.get(&s) == Some(&stamp) {
                    self.resident.remove(&s);
                }
                kept = i + 1;
            }
            if kept == sectors.len() {
                self.generations.pop_front();
            } else {
                sectors.drain(..kept);
            }
        }
        // Generations whose every sector was used again since are dropped too.
        while let Some((stamp, sectors)) = self.generations.front() {
            if sectors.iter().any(|s| self.resident.get(s) == Some(stamp)) {
                break;
            }
            self.generations.pop_front();
        }
    }

    #[cfg(test)]
    pub fn resident_bytes(&self) -> u64 {
        self.resident.len() as u64 * SECTOR_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(first: u64, count: u64) -> Vec<u64> {
        (first..first + count).collect()
    }

    #[test]
    fn a_second_read_of_what_fits_is_free_and_what_does_not_fit_is_read_again() {
        let mut l2 = L2::new(100 * SECTOR_BYTES);
        let a = range(0, 60);
        assert_eq!(l2.launch(&a, &[]), DramBytes { read: 60 * 32, write: 0 }, "cold");
        assert_eq!(l2.launch(&a, &[]).read, 0, "resident");
        // 60 more: 120 > 100, so the 20 least recently used of `a` (lowest addresses first) go.
        let b = range(1000, 60);
        assert_eq!(l2.launch(&b, &[]).read, 60 * 32);
        assert_eq!(l2.resident_bytes(), 100 * 32);
        assert_eq!(l2.launch(&a, &[]).read, 20 * 32, "a's first 20 sectors were evicted");
        // A footprint larger than the L2 streams: nothing of it survives the next pass that is not re-used.
        let big = range(5000, 300);
        assert_eq!(l2.launch(&big, &[]).read, 300 * 32);
        assert_eq!(l2.launch(&big, &[]).read, 200 * 32, "only the last 100 of a 300-sector stream stay");
    }

    #[test]
    fn stores_are_written_back_and_read_back_from_the_l2() {
        let mut l2 = L2::new(1 << 20);
        let out = range(0, 10);
        assert_eq!(l2.launch(&[], &out), DramBytes { read: 0, write: 320 });
        assert_eq!(l2.launch(&out, &[]).read, 0, "the next launch reads what the last wrote from the L2");
        // A launch that reads what it writes itself does not go to DRAM for it.
        let own = range(100, 4);
        assert_eq!(l2.launch(&own, &own), DramBytes { read: 0, write: 128 });
    }

    #[test]
    fn recently_used_sectors_outlive_older_ones() {
        let mut l2 = L2::new(10 * SECTOR_BYTES);
        l2.launch(&range(0, 5), &[]);
        l2.launch(&range(100, 5), &[]);
        // Touch the first five again: the second five are now the least recently used.
        l2.launch(&range(0, 5), &[]);
        l2.launch(&range(200, 5), &[]);
        assert_eq!(l2.launch(&range(0, 5), &[]).read, 0);
        assert_eq!(l2.launch(&range(100, 5), &[]).read, 5 * 32);
    }
}
