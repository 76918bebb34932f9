//! The distinct 32-byte sectors a launch read and wrote in global memory: what a cache model needs of a launch
//! (`driver::l2` decides which of them came from DRAM). Sector ids are collected as requests make them and
//! deduplicated now and then, so that memory stays near the launch's footprint rather than its request count.

/// Sector ids kept before a deduplication.
const DEDUP_AT: usize = 1 << 20;

/// A set of sector ids, sorted and distinct once [`Sectors::settle`] ran.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SectorSet {
    ids: Vec<u64>,
    /// How many of `ids` (a prefix) are sorted and distinct.
    settled: usize,
}

impl SectorSet {
    #[inline(always)]
    pub fn add(&mut self, sector: u64) {
        self.ids.push(sector);
        if self.ids.len() - self.settled >= DEDUP_AT.max(self.settled) {
            self.settle();
        }
    }

    /// Sorts and deduplicates.
    pub fn settle(&mut self) {
        if self.settled != self.ids.len() {
            self.ids.sort_unstable();
            self.ids.dedup();
            self.settled = self.ids.len();
        }
    }

    pub fn union(&mut self, other: &SectorSet) {
        self.ids.extend_from_slice(&other.ids);
        self.settle();
    }

    /// The distinct sectors, in order.
    pub fn sorted(&mut self) -> &[u64] {
        self.settle();
        &self.ids
    }

    pub fn clear(&mut self) {
        self.ids = Vec::new();
        self.settled = 0;
    }
}

/// The sectors a launch loaded from and stored to global memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Footprint {
    pub loads: SectorSet,
    pub stores: SectorSet,
}

impl Footprint {
    pub fn union(&mut self, other: &Footprint) {
        self.loads.union(&other.loads);
        self.stores.union(&other.stores);
    }

    pub fn clear(&mut self) {
        self.loads.clear();
        self.stores.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_keeps_each_sector_once_in_order() {
        let mut a = SectorSet::default();
        for s in [5, 3, 5, 9, 3] {
            a.add(s);
        }
        let mut b = SectorSet::default();
        b.add(4);
        b.add(9);
        a.union(&b);
        assert_eq!(a.sorted(), &[3, 4, 5, 9]);
        a.clear();
        assert!(a.sorted().is_empty());
    }
}
