//! Device memory from one arena: a single allocation made when the backend opens, handed out in aligned blocks
//! by first fit and returned when a tensor is dropped (neighbouring free blocks merge). All work runs on one
//! stream, so a block freed on the host and handed out again is only touched by later work on that stream.
//!
//! The bookkeeping is plain offsets ([`Blocks`]), independent of the device, and tested without a GPU. The debug
//! mode (`GLOV_CUDA_DEBUG_ALLOC=1`, `device_arena`) keeps the same books, so that the same work fits or fails the
//! same way, but gives each block a driver allocation of its own.

use std::collections::BTreeMap;

/// Every block starts on this boundary (enough for 16-byte vector loads and the tensor-core tiles).
pub const ALIGN: usize = 256;

/// Free and used ranges of an arena of `capacity` bytes.
#[derive(Debug)]
pub struct Blocks {
    capacity: usize,
    /// Free ranges: offset -> length, never adjacent (merged on free).
    free: BTreeMap<usize, usize>,
    /// Used ranges: offset -> length.
    used: BTreeMap<usize, usize>,
    peak: usize,
    /// While recording device work for replay, blocks freed are parked here instead of returned: the recorded
    /// work will write them again at every replay, so nothing else may have them until the recording is dropped.
    parked: Option<Vec<usize>>,
}

/// What [`Blocks::free`] did with a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freed {
    /// Back in the free ranges.
    Returned,
    /// Kept in use for the recording in progress.
    Parked,
}

/// Why an allocation failed: the request and the state of the arena, for the error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory {
    pub requested: usize,
    pub free: usize,
    pub largest_free: usize,
    pub capacity: usize,
}

impl Blocks {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity / ALIGN * ALIGN;
        let free = if capacity > 0 { BTreeMap::from([(0, capacity)]) } else { BTreeMap::new() };
        Self { capacity, free, used: BTreeMap::new(), peak: 0, parked: None }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn in_use(&self) -> usize {
        self.used.values().sum()
    }

    /// The most bytes in use at once so far.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// The offset of a new block of at least `bytes` (rounded up to [`ALIGN`]; zero bytes take one unit).
    pub fn alloc(&mut self, bytes: usize) -> Result<usize, OutOfMemory> {
        let size = bytes.max(1).div_ceil(ALIGN) * ALIGN;
        let Some((&offset, &length)) = self.free.iter().find(|(_, length)| **length >= size) else {
            return Err(OutOfMemory {
                requested: bytes,
                free: self.free.values().sum(),
                largest_free: self.free.values().copied().max().unwrap_or(0),
                capacity: self.capacity,
            });
        };
        self.free.remove(&offset);
        if length > size {
            self.free.insert(offset + size, length - size);
        }
        self.used.insert(offset, size);
        self.peak = self.peak.max(self.in_use());
        Ok(offset)
    }

    /// From now on, freed blocks are parked instead of returned, until [`Blocks::stop_parking`].
    pub fn start_parking(&mut self) {
        assert!(self.parked.is_none(), "arena: parking started twice");
        self.parked = Some(Vec::new());
    }

    /// The blocks parked since [`Blocks::start_parking`]; they stay in use until each is passed to
    /// [`Blocks::free`] again (after parking stopped).
    pub fn stop_parking(&mut self) -> Vec<usize> {
        self.parked.take().unwrap_or_default()
    }

    /// Whether freed blocks are parked now (a recording is in progress).
    pub fn is_parking(&self) -> bool {
        self.parked.is_some()
    }

    /// Returns the block at `offset` (which `alloc` gave and was not yet freed), or parks it while parking.
    pub fn free(&mut self, offset: usize) -> Freed {
        if let Some(parked) = &mut self.parked
            && self.used.contains_key(&offset)
        {
            parked.push(offset);
            return Freed::Parked;
        }
        self.release(offset);
        Freed::Returned
    }

    /// Returns the block at `offset` now, parking or not: for a block that nothing has used (its memory could not
    /// be had).
    pub fn release(&mut self, offset: usize) {
        let Some(mut size) = self.used.remove(&offset) else {
            panic!("arena: freeing offset {offset}, which is not an allocated block");
        };
        let mut start = offset;
        if let Some((&before, &length)) = self.free.range(..offset).next_back()
            && before + length == offset
        {
            self.free.remove(&before);
            start = before;
            size += length;
        }
        if let Some(length) = self.free.remove(&(start + size)) {
            size += length;
        }
        self.free.insert(start, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_blocks_stay_in_use_until_freed_again() {
        let mut blocks = Blocks::new(4 * ALIGN);
        let before = blocks.alloc(ALIGN).unwrap();
        blocks.start_parking();
        let during = blocks.alloc(ALIGN).unwrap();
        assert!(blocks.is_parking());
        assert_eq!(blocks.free(during), Freed::Parked);
        assert_eq!(blocks.free(before), Freed::Parked);
        assert_eq!(blocks.in_use(), 2 * ALIGN);
        let parked = blocks.stop_parking();
        assert!(!blocks.is_parking());
        assert_eq!(parked, vec![during, before]);
        // Neither block is handed out again while parked.
        let other = blocks.alloc(2 * ALIGN).unwrap();
        assert!(other != during && other != before);
        for offset in parked {
            assert_eq!(blocks.free(offset), Freed::Returned);
        }
        assert_eq!(blocks.in_use(), 2 * ALIGN);
        blocks.free(other);
        assert_eq!(blocks.in_use(), 0);
        assert!(blocks.alloc(4 * ALIGN).is_ok());
    }

    #[test]
    fn a_released_block_is_returned_even_while_parking() {
        let mut blocks = Blocks::new(2 * ALIGN);
        blocks.start_parking();
        let offset = blocks.alloc(2 * ALIGN).unwrap();
        blocks.release(offset);
        assert_eq!(blocks.in_use(), 0);
        assert!(blocks.stop_parking().is_empty());
        assert_eq!(blocks.alloc(2 * ALIGN).unwrap(), offset);
    }

    #[test]
    fn blocks_are_aligned_reused_and_merged() {
        let mut blocks = Blocks::new(10 * ALIGN + 17);
        assert_eq!(blocks.capacity(), 10 * ALIGN);
        let a = blocks.alloc(1).unwrap();
        let b = blocks.alloc(ALIGN + 1).unwrap();
        let c = blocks.alloc(3 * ALIGN).unwrap();
        assert_eq!((a, b, c), (0, ALIGN, 3 * ALIGN));
        assert_eq!(blocks.in_use(), 6 * ALIGN);
        // Freeing b leaves a hole of 2 units that a 2-unit request takes; a 3-unit one goes after c.
        blocks.free(b);
        assert_eq!(blocks.alloc(4 * ALIGN).unwrap(), 6 * ALIGN);
        assert_eq!(blocks.alloc(2 * ALIGN).unwrap(), ALIGN);
        let err = blocks.alloc(ALIGN).unwrap_err();
        assert_eq!(err, OutOfMemory { requested: ALIGN, free: 0, largest_free: 0, capacity: 10 * ALIGN });
        assert_eq!(blocks.peak(), 10 * ALIGN);
        // Free everything in a scattered order: the arena is one free block again.
        for offset in [3 * ALIGN, 0, 6 * ALIGN, ALIGN] {
            blocks.free(offset);
        }
        assert_eq!(blocks.in_use(), 0);
        assert_eq!(blocks.alloc(10 * ALIGN).unwrap(), 0, "all blocks merged back into one");
    }

    #[test]
    fn out_of_memory_reports_fragmentation() {
        let mut blocks = Blocks::new(4 * ALIGN);
        let offsets: Vec<usize> = (0..4).map(|_| blocks.alloc(ALIGN).unwrap()).collect();
        blocks.free(offsets[0]);
        blocks.free(offsets[2]);
        let err = blocks.alloc(2 * ALIGN).unwrap_err();
        assert_eq!((err.free, err.largest_free), (2 * ALIGN, ALIGN));
    }

    #[test]
    fn random_alloc_free_keeps_the_books_consistent() {
        let mut blocks = Blocks::new(64 * ALIGN);
        let mut live: Vec<(usize, usize)> = Vec::new();
        let mut state = 12345u64;
        for _ in 0..5000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let r = (state >> 33) as usize;
            if r.is_multiple_of(3) && !live.is_empty() {
                let (offset, _) = live.swap_remove(r % live.len());
                blocks.free(offset);
            } else if let Ok(offset) = blocks.alloc(1 + r % (5 * ALIGN)) {
                live.push((offset, (1 + r % (5 * ALIGN)).div_ceil(ALIGN) * ALIGN));
            }
            // No two live blocks overlap, and the free and used lengths add up to the capacity.
            let mut sorted = live.clone();
            sorted.sort();
            assert!(sorted.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0));
            assert_eq!(blocks.in_use() + blocks.free.values().sum::<usize>(), blocks.capacity());
            assert!(blocks.free.iter().zip(blocks.free.iter().skip(1)).all(|((o, l), (n, _))| o + l < *n));
        }
    }
}
