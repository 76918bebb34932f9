//! The arena on the device: the books of [`Blocks`] and the memory behind them. Normally one driver allocation,
//! poisoned when the backend opens, of which a block is the range at its offset. In the debug mode
//! (`GLOV_CUDA_DEBUG_ALLOC=1`) every block is a driver allocation of its own, of exactly the bytes asked for and not
//! poisoned (so that initcheck sees reads of never-written memory), while the books stay those of the normal mode:
//! the capacity, in-use and peak bytes and the out-of-memory errors are the same, and so the same work fits or fails
//! the same way. A block's allocation is freed when its offset is returned to the books: a block freed while device
//! work is recorded is parked instead, and keeps its allocation (which the recording's replays use) until the
//! recording is dropped, so nothing is freed during a recording.

use super::arena::{Blocks, Freed, OutOfMemory};
use anyhow::{Context, Result, bail};
use cudarc::driver::sys;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The driver allocations behind the blocks of the debug mode (a trait, so that the books are tested without a
/// GPU).
pub trait BlockAllocator: Send {
    /// A new allocation of `bytes` (at least 1). `recording`: device work on the stream may be being recorded.
    fn allocate(&self, bytes: usize, recording: bool) -> Result<sys::CUdeviceptr>;
    /// Frees an allocation once the work queued before it has finished; never called during a recording.
    fn free(&self, ptr: sys::CUdeviceptr);
}

/// Where the blocks' bytes are.
enum Memory {
    /// One allocation at `base`; a block is the range at its offset.
    Carved { base: sys::CUdeviceptr },
    /// Each block an allocation of its own, by the block's offset in the books.
    PerBlock { allocator: Box<dyn BlockAllocator>, allocations: HashMap<usize, sys::CUdeviceptr> },
}

/// The books and the memory, under one lock.
struct Books {
    blocks: Blocks,
    memory: Memory,
}

impl Books {
    /// Frees the block at `offset`; its allocation goes too, unless the block was parked.
    fn free(&mut self, offset: usize) {
        if self.blocks.free(offset) == Freed::Parked {
            return;
        }
        if let Memory::PerBlock { allocator, allocations } = &mut self.memory {
            let ptr = allocations.remove(&offset).expect("every block of the debug mode has its allocation");
            allocator.free(ptr);
        }
    }
}

/// Device memory handed out in blocks.
pub struct Arena {
    books: Arc<Mutex<Books>>,
}

/// A block of the arena; returned to it when dropped.
pub struct DeviceBlock {
    pub ptr: sys::CUdeviceptr,
    pub bytes: usize,
    offset: usize,
    books: Arc<Mutex<Books>>,
}

impl Drop for DeviceBlock {
    fn drop(&mut self) {
        if let Ok(mut books) = self.books.lock() {
            books.free(self.offset);
        }
    }
}

/// The blocks freed while device work was recorded: they stay in use, with their memory, until this is dropped
/// (the recording's replays write them).
pub struct ParkedBlocks {
    offsets: Vec<usize>,
    books: Arc<Mutex<Books>>,
}

impl Drop for ParkedBlocks {
    fn drop(&mut self) {
        if let Ok(mut books) = self.books.lock() {
            for offset in self.offsets.drain(..) {
                books.free(offset);
            }
        }
    }
}

pub(super) fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

impl Arena {
    /// Blocks carved from the allocation of `capacity` bytes at `base`.
    pub fn carved(base: sys::CUdeviceptr, capacity: usize) -> Self {
        Self::new(capacity, Memory::Carved { base })
    }

    /// Blocks of `capacity` bytes in all, each an allocation of `allocator`'s (the debug mode).
    pub fn per_block(capacity: usize, allocator: Box<dyn BlockAllocator>) -> Self {
        Self::new(capacity, Memory::PerBlock { allocator, allocations: HashMap::new() })
    }

    fn new(capacity: usize, memory: Memory) -> Self {
        Self { books: Arc::new(Mutex::new(Books { blocks: Blocks::new(capacity), memory })) }
    }

    pub fn alloc(&self, bytes: usize, what: &str) -> Result<DeviceBlock> {
        let mut books = self.books.lock().expect("the arena lock");
        let Books { blocks, memory } = &mut *books;
        let offset = match blocks.alloc(bytes) {
            Ok(offset) => offset,
            Err(OutOfMemory { requested, free, largest_free, capacity }) => bail!(
                "out of device memory: {what} needs {} but the arena of {} has {} free (largest block {}); use a \
                 smaller batch (--image-batch, --text-batch)",
                mib(requested),
                mib(capacity),
                mib(free),
                mib(largest_free)
            ),
        };
        let ptr = match memory {
            Memory::Carved { base } => *base + offset as u64,
            Memory::PerBlock { allocator, allocations } => {
                // cuMemAlloc refuses zero bytes; an empty tensor gets one.
                match allocator.allocate(bytes.max(1), blocks.is_parking()) {
                    Ok(ptr) => {
                        allocations.insert(offset, ptr);
                        ptr
                    }
                    Err(e) => {
                        blocks.release(offset);
                        return Err(e).with_context(|| {
                            format!("allocating {what} ({}) on its own (GLOV_CUDA_DEBUG_ALLOC=1)", mib(bytes))
                        });
                    }
                }
            }
        };
        Ok(DeviceBlock { ptr, bytes, offset, books: self.books.clone() })
    }

    /// The most bytes in use at once so far.
    pub fn peak(&self) -> usize {
        self.books.lock().expect("the arena lock").blocks.peak()
    }

    /// Bytes in use now.
    pub fn in_use(&self) -> usize {
        self.books.lock().expect("the arena lock").blocks.in_use()
    }

    /// Bytes of the whole arena.
    pub fn capacity(&self) -> usize {
        self.books.lock().expect("the arena lock").blocks.capacity()
    }

    /// From now on blocks freed are parked, with their memory, until [`Arena::stop_parking`].
    pub fn start_parking(&self) {
        self.books.lock().expect("the arena lock").blocks.start_parking();
    }

    /// Whether freed blocks are being parked: a CUDA graph is being recorded.
    pub fn is_parking(&self) -> bool {
        self.books.lock().expect("the arena lock").blocks.is_parking()
    }

    /// The blocks parked since [`Arena::start_parking`], kept until the returned value is dropped.
    pub fn stop_parking(&self) -> ParkedBlocks {
        let offsets = self.books.lock().expect("the arena lock").blocks.stop_parking();
        ParkedBlocks { offsets, books: self.books.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cuda::arena::ALIGN;

    /// What the fake driver was asked: allocations as (address, bytes, recording), and the addresses freed.
    #[derive(Default)]
    struct Calls {
        allocated: Vec<(u64, usize, bool)>,
        freed: Vec<u64>,
        refuse_next: bool,
    }

    /// Addresses far apart, one per allocation, never reused.
    struct FakeDriver(Arc<Mutex<Calls>>);

    impl BlockAllocator for FakeDriver {
        fn allocate(&self, bytes: usize, recording: bool) -> Result<sys::CUdeviceptr> {
            let mut calls = self.0.lock().unwrap();
            if std::mem::take(&mut calls.refuse_next) {
                bail!("cuMemAlloc of {bytes} bytes: CUDA_ERROR_OUT_OF_MEMORY");
            }
            let ptr = (calls.allocated.len() as u64 + 1) << 32;
            calls.allocated.push((ptr, bytes, recording));
            Ok(ptr)
        }

        fn free(&self, ptr: sys::CUdeviceptr) {
            self.0.lock().unwrap().freed.push(ptr);
        }
    }

    fn debug_arena(capacity: usize) -> (Arena, Arc<Mutex<Calls>>) {
        let calls = Arc::new(Mutex::new(Calls::default()));
        (Arena::per_block(capacity, Box::new(FakeDriver(calls.clone()))), calls)
    }

    #[test]
    fn each_block_is_an_allocation_of_exactly_its_bytes_freed_with_it() {
        let (arena, calls) = debug_arena(16 * ALIGN);
        let blocks: Vec<DeviceBlock> = [10, 0, 3 * ALIGN + 1].iter().map(|&n| arena.alloc(n, "t").unwrap()).collect();
        let allocated = calls.lock().unwrap().allocated.clone();
        assert_eq!(allocated.iter().map(|a| a.1).collect::<Vec<_>>(), [10, 1, 3 * ALIGN + 1]);
        assert_eq!(blocks.iter().map(|b| b.ptr).collect::<Vec<_>>(), allocated.iter().map(|a| a.0).collect::<Vec<_>>());
        assert!(allocated.iter().all(|a| !a.2), "no recording in progress");
        assert_eq!(arena.in_use(), 6 * ALIGN, "the books round as in the normal mode");
        let second = blocks[1].ptr;
        drop(blocks);
        let freed = calls.lock().unwrap().freed.clone();
        assert_eq!(freed.len(), 3);
        assert!(freed.contains(&second));
        assert_eq!(arena.in_use(), 0);
    }

    #[test]
    fn the_books_are_those_of_the_normal_mode() {
        let (debug, _) = debug_arena(10 * ALIGN + 17);
        let carved = Arena::carved(1 << 40, 10 * ALIGN + 17);
        for arena in [&carved, &debug] {
            let a = arena.alloc(3 * ALIGN, "a").unwrap();
            let b = arena.alloc(ALIGN + 1, "b").unwrap();
            let c = arena.alloc(4 * ALIGN, "c").unwrap();
            drop(b);
            let e = arena.alloc(3 * ALIGN, "the fourth tensor").err().expect("no room").to_string();
            let expected = format!(
                "out of device memory: the fourth tensor needs {} but the arena of {} has {} free (largest block \
                 {}); use a smaller batch (--image-batch, --text-batch)",
                mib(3 * ALIGN),
                mib(10 * ALIGN),
                mib(3 * ALIGN),
                mib(2 * ALIGN)
            );
            assert_eq!(e, expected);
            assert_eq!((arena.in_use(), arena.peak(), arena.capacity()), (7 * ALIGN, 9 * ALIGN, 10 * ALIGN));
            drop((a, c));
            assert_eq!(arena.in_use(), 0);
        }
        let block = carved.alloc(1, "x").unwrap();
        assert_eq!(block.ptr, 1 << 40, "a carved block is its offset in the one allocation");
    }

    #[test]
    fn blocks_freed_while_recording_keep_their_allocations_until_the_recording_goes() {
        let (arena, calls) = debug_arena(16 * ALIGN);
        let before = arena.alloc(ALIGN, "before").unwrap();
        arena.start_parking();
        let during = arena.alloc(ALIGN, "during").unwrap();
        assert_eq!(calls.lock().unwrap().allocated.iter().map(|a| a.2).collect::<Vec<_>>(), [false, true]);
        let addresses = [before.ptr, during.ptr];
        drop((before, during));
        let recording = arena.stop_parking();
        assert!(calls.lock().unwrap().freed.is_empty(), "nothing is freed during a recording");
        assert_eq!(arena.in_use(), 2 * ALIGN);
        let after = arena.alloc(ALIGN, "after").unwrap();
        assert!(!calls.lock().unwrap().allocated[2].2);
        drop(after);
        assert_eq!(calls.lock().unwrap().freed.len(), 1, "blocks freed after the recording go at once");
        drop(recording);
        assert_eq!(calls.lock().unwrap().freed[1..], addresses);
        assert_eq!(arena.in_use(), 0);
    }

    #[test]
    fn a_recording_dropped_during_another_keeps_its_blocks_for_that_one() {
        let (arena, calls) = debug_arena(16 * ALIGN);
        arena.start_parking();
        drop(arena.alloc(ALIGN, "first recording's").unwrap());
        let first = arena.stop_parking();
        arena.start_parking();
        drop(first);
        let second = arena.stop_parking();
        assert!(calls.lock().unwrap().freed.is_empty());
        assert_eq!(arena.in_use(), ALIGN);
        drop(second);
        assert_eq!(calls.lock().unwrap().freed.len(), 1);
        assert_eq!(arena.in_use(), 0);
    }

    #[test]
    fn a_refused_allocation_leaves_the_books_as_they_were() {
        let (arena, calls) = debug_arena(4 * ALIGN);
        arena.start_parking();
        calls.lock().unwrap().refuse_next = true;
        let e = arena.alloc(2 * ALIGN, "the KV cache").err().expect("a refused allocation");
        assert_eq!(
            format!("{e:#}"),
            format!(
                "allocating the KV cache ({}) on its own (GLOV_CUDA_DEBUG_ALLOC=1): cuMemAlloc of {} bytes: \
                 CUDA_ERROR_OUT_OF_MEMORY",
                mib(2 * ALIGN),
                2 * ALIGN
            )
        );
        assert_eq!(arena.in_use(), 0);
        drop(arena.stop_parking());
        assert!(calls.lock().unwrap().freed.is_empty());
        assert!(arena.alloc(4 * ALIGN, "all of it").is_ok());
    }
}
