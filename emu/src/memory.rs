//! Device memory: each allocation is its own host buffer at an address of its own, with a guard gap to the next
//! (addresses are never reused, so an access after `free` or between allocations touches nothing and is reported),
//! and a shadow of one bit per byte that says whether the byte was ever written (initcheck). A new allocation holds
//! the memory's birth byte: 0xFF (NaN in f16, bf16, f32 and f64) when poisoned, so that an output a kernel never
//! writes cannot pass for a zero.
//!
//! Bytes are read and written through atomics of the access's width (relaxed), so blocks emulated on different
//! host threads may share memory without undefined behaviour on the host; `atom` instructions are real atomics.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Generic addresses `[SHARED_WINDOW, SHARED_WINDOW + WINDOW_BYTES)` are the block's shared memory.
pub const SHARED_WINDOW: u64 = 0x0000_1000_0000_0000;
/// Generic addresses `[LOCAL_WINDOW, LOCAL_WINDOW + WINDOW_BYTES)` are the thread's local memory.
pub const LOCAL_WINDOW: u64 = 0x0000_2000_0000_0000;
pub const WINDOW_BYTES: u64 = 1 << 32;
/// The first device address handed out.
pub const FIRST_DEVICE_ADDRESS: u64 = 0x0000_7f00_0000_0000;
/// Unmapped bytes left after every allocation (before alignment).
pub const GUARD_GAP: u64 = 64 << 10;
/// Alignment of every allocation (as `cuMemAlloc`'s, at least 256).
pub const ALLOC_ALIGN: u64 = 512;

/// One device allocation.
pub struct Allocation {
    pub base: u64,
    pub bytes: u64,
    data: *mut u8,
    layout: Layout,
    /// One bit per byte: set once the byte has been written.
    init: Box<[AtomicU8]>,
}

// SAFETY: the buffer is only accessed through atomics (or by one thread in `fill`/`write`/`read`, under the same
// rules: every access is an atomic of its width); it lives as long as the `Allocation`.
unsafe impl Send for Allocation {}
unsafe impl Sync for Allocation {}

impl Drop for Allocation {
    fn drop(&mut self) {
        // SAFETY: allocated in `Allocation::new` with this layout.
        unsafe { dealloc(self.data, self.layout) }
    }
}

impl Allocation {
    fn new(base: u64, bytes: u64, born: u8) -> Option<Self> {
        let layout = Layout::from_size_align(bytes.max(1) as usize, 64).ok()?;
        // SAFETY: a non-zero size; zeroed pages of a large allocation are committed lazily by the host.
        let data = unsafe { alloc_zeroed(layout) };
        if data.is_null() {
            return None;
        }
        if born != 0 {
            // SAFETY: the buffer just allocated, `layout.size()` bytes.
            unsafe { std::ptr::write_bytes(data, born, layout.size()) };
        }
        let init = (0..bytes.div_ceil(8)).map(|_| AtomicU8::new(0)).collect();
        Some(Self { base, bytes, data, layout, init })
    }

    pub fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.base && addr.checked_add(len).is_some_and(|end| end <= self.base + self.bytes)
    }

    /// Loads `len` (1, 2, 4 or 8) bytes at `addr`, which must lie inside and be aligned to `len`; returns the value
    /// (zero-extended) and whether every byte had been written.
    pub fn load(&self, addr: u64, len: u32) -> (u64, bool) {
        let off = (addr - self.base) as usize;
        // SAFETY: the caller checked bounds and alignment; the pointer is inside the buffer, aligned for the width.
        let value = unsafe {
            let p = self.data.add(off);
            match len {
                1 => AtomicU8::from_ptr(p).load(Ordering::Relaxed) as u64,
                2 => AtomicU16::from_ptr(p as *mut u16).load(Ordering::Relaxed) as u64,
                4 => AtomicU32::from_ptr(p as *mut u32).load(Ordering::Relaxed) as u64,
                _ => AtomicU64::from_ptr(p as *mut u64).load(Ordering::Relaxed),
            }
        };
        (value, self.initialized(off, len as usize))
    }

    /// Stores the low `len` bytes of `value` at `addr` (inside, aligned) and marks them written.
    pub fn store(&self, addr: u64, len: u32, value: u64) {
        let off = (addr - self.base) as usize;
        // SAFETY: as in `load`.
        unsafe {
            let p = self.data.add(off);
            match len {
                1 => AtomicU8::from_ptr(p).store(value as u8, Ordering::Relaxed),
                2 => AtomicU16::from_ptr(p as *mut u16).store(value as u16, Ordering::Relaxed),
                4 => AtomicU32::from_ptr(p as *mut u32).store(value as u32, Ordering::Relaxed),
                _ => AtomicU64::from_ptr(p as *mut u64).store(value, Ordering::Relaxed),
            }
        }
        self.mark(off, len as usize);
    }

    /// The 4-byte atomic at `addr` (inside, aligned); marks it written.
    pub fn atomic_u32(&self, addr: u64) -> &AtomicU32 {
        let off = (addr - self.base) as usize;
        self.mark(off, 4);
        // SAFETY: as in `load`; the reference lives no longer than `self`.
        unsafe { AtomicU32::from_ptr(self.data.add(off) as *mut u32) }
    }

    /// The 8-byte atomic at `addr` (inside, aligned); marks it written.
    pub fn atomic_u64(&self, addr: u64) -> &AtomicU64 {
        let off = (addr - self.base) as usize;
        self.mark(off, 8);
        // SAFETY: as in `load`.
        unsafe { AtomicU64::from_ptr(self.data.add(off) as *mut u64) }
    }

    fn initialized(&self, off: usize, len: usize) -> bool {
        // An aligned access of up to 8 bytes lies in one shadow byte: one load.
        if off % 8 + len <= 8 {
            let bits = Self::bits(off, len);
            return self.init[off / 8].load(Ordering::Relaxed) & bits == bits;
        }
        (off..off + len).all(|b| self.init[b / 8].load(Ordering::Relaxed) & (1 << (b % 8)) != 0)
    }

    /// The shadow bits of bytes `[off, off + len)` within one shadow byte.
    fn bits(off: usize, len: usize) -> u8 {
        (((1u16 << len) - 1) << (off % 8)) as u8
    }

    fn mark(&self, off: usize, len: usize) {
        if off % 8 + len <= 8 {
            let bits = Self::bits(off, len);
            let word = &self.init[off / 8];
            if word.load(Ordering::Relaxed) & bits != bits {
                word.fetch_or(bits, Ordering::Relaxed);
            }
            return;
        }
        for b in off..off + len {
            let bit = 1u8 << (b % 8);
            let word = &self.init[b / 8];
            if word.load(Ordering::Relaxed) & bit == 0 {
                word.fetch_or(bit, Ordering::Relaxed);
            }
        }
    }

    /// Host-side copy in (marks the bytes written). Host copies run while no kernel does (the driver executes
    /// stream work in order), so they copy in bulk.
    pub fn write(&self, addr: u64, src: &[u8]) {
        let off = (addr - self.base) as usize;
        // SAFETY: the caller checked that the range is inside; no kernel accesses the buffer meanwhile.
        unsafe { std::ptr::copy(src.as_ptr(), self.data.add(off), src.len()) };
        self.mark_range(off, src.len());
    }

    /// Host-side copy out (does not check initialisation: a copy of unwritten bytes is not a read by a kernel).
    pub fn read(&self, addr: u64, dst: &mut [u8]) {
        let off = (addr - self.base) as usize;
        // SAFETY: as in `write`.
        unsafe { std::ptr::copy(self.data.add(off), dst.as_mut_ptr(), dst.len()) };
    }

    fn mark_range(&self, off: usize, len: usize) {
        let end = off + len;
        let mut b = off;
        while b < end && !b.is_multiple_of(8) {
            self.mark(b, 1);
            b += 1;
        }
        while b + 8 <= end {
            self.init[b / 8].store(0xFF, Ordering::Relaxed);
            b += 8;
        }
        if b < end {
            self.mark(b, end - b);
        }
    }

    /// Whether every byte of `[addr, addr + len)` (inside) was written.
    pub fn is_initialized(&self, addr: u64, len: u64) -> bool {
        self.initialized((addr - self.base) as usize, len as usize)
    }

    /// The address of the first byte of `[addr, addr + len)` (inside) never written.
    pub fn first_unwritten(&self, addr: u64, len: u64) -> Option<u64> {
        let off = (addr - self.base) as usize;
        let mut b = off;
        let end = off + len as usize;
        while b < end {
            let shadow = self.init[b / 8].load(Ordering::Relaxed);
            if b.is_multiple_of(8) && end - b >= 8 && shadow == 0xFF {
                b += 8;
                continue;
            }
            if shadow & (1 << (b % 8)) == 0 {
                return Some(self.base + b as u64);
            }
            b += 1;
        }
        None
    }

    /// How many bytes of `[addr, addr + len)` (inside) were never written.
    pub fn unwritten_bytes(&self, addr: u64, len: u64) -> u64 {
        let off = (addr - self.base) as usize;
        (off..off + len as usize).filter(|&b| self.init[b / 8].load(Ordering::Relaxed) & (1 << (b % 8)) == 0).count()
            as u64
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemError {
    /// No room under the memory budget.
    OutOfMemory { requested: u64, free: u64 },
    /// `[addr, addr + len)` is not inside one live allocation.
    Invalid { addr: u64, len: u64 },
}

/// The device's memory: live allocations by base address, under a byte budget.
pub struct DeviceMemory {
    capacity: u64,
    /// What every byte of a new allocation holds.
    born: u8,
    state: RwLock<State>,
}

struct State {
    live: BTreeMap<u64, Arc<Allocation>>,
    used: u64,
    next: u64,
}

impl DeviceMemory {
    /// Memory whose new allocations hold zeros.
    pub fn new(capacity: u64) -> Self {
        Self::born_as(capacity, 0)
    }

    /// Memory whose new allocations hold 0xFF bytes: NaN in every float width.
    pub fn poisoned(capacity: u64) -> Self {
        Self::born_as(capacity, 0xFF)
    }

    fn born_as(capacity: u64, born: u8) -> Self {
        let state = RwLock::new(State { live: BTreeMap::new(), used: 0, next: FIRST_DEVICE_ADDRESS });
        Self { capacity, born, state }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn used(&self) -> u64 {
        self.state.read().expect("the memory lock").used
    }

    pub fn alloc(&self, bytes: u64) -> Result<u64, MemError> {
        let mut s = self.state.write().expect("the memory lock");
        let rounded = bytes.max(1).next_multiple_of(ALLOC_ALIGN);
        if s.used + rounded > self.capacity {
            return Err(MemError::OutOfMemory { requested: bytes, free: self.capacity - s.used });
        }
        let base = s.next;
        let a = Allocation::new(base, bytes, self.born)
            .ok_or(MemError::OutOfMemory { requested: bytes, free: self.capacity - s.used })?;
        s.next = (base + rounded + GUARD_GAP).next_multiple_of(ALLOC_ALIGN);
        s.used += rounded;
        s.live.insert(base, Arc::new(a));
        Ok(base)
    }

    /// Frees the allocation that starts at `base`.
    pub fn free(&self, base: u64) -> Result<(), MemError> {
        let mut s = self.state.write().expect("the memory lock");
        let a = s.live.remove(&base).ok_or(MemError::Invalid { addr: base, len: 0 })?;
        s.used -= a.bytes.max(1).next_multiple_of(ALLOC_ALIGN);
        Ok(())
    }

    /// The live allocation holding all of `[addr, addr + len)`.
    pub fn find(&self, addr: u64, len: u64) -> Result<Arc<Allocation>, MemError> {
        let s = self.state.read().expect("the memory lock");
        s.live
            .range(..=addr)
            .next_back()
            .filter(|(_, a)| a.contains(addr, len))
            .map(|(_, a)| a.clone())
            .ok_or(MemError::Invalid { addr, len })
    }

    /// The live allocations, by base address: what a launch sees (none is freed while a kernel runs).
    pub fn snapshot(&self) -> Vec<Arc<Allocation>> {
        self.state.read().expect("the memory lock").live.values().cloned().collect()
    }

    pub fn write(&self, addr: u64, src: &[u8]) -> Result<(), MemError> {
        self.find(addr, src.len() as u64)?.write(addr, src);
        Ok(())
    }

    pub fn read(&self, addr: u64, dst: &mut [u8]) -> Result<(), MemError> {
        self.find(addr, dst.len() as u64)?.read(addr, dst);
        Ok(())
    }

    /// `count` copies of `pattern` (1, 2 or 4 bytes) from `addr`, written a chunk of at most 1 MiB at a time (a
    /// memset of a whole arena needs no second arena on the host).
    pub fn fill(&self, addr: u64, pattern: &[u8], count: u64) -> Result<(), MemError> {
        let len = pattern.len() as u64;
        let a = self.find(addr, count * len)?;
        let chunk: Vec<u8> =
            pattern.iter().copied().cycle().take(((1 << 20) / len * len).min(count * len) as usize).collect();
        let mut at = addr;
        let end = addr + count * len;
        while at < end {
            let n = (end - at).min(chunk.len() as u64);
            a.write(at, &chunk[..n as usize]);
            at += n;
        }
        Ok(())
    }

    /// Device to device (the ranges may be in different allocations; overlap copies as `memmove`).
    pub fn copy(&self, dst: u64, src: u64, bytes: u64) -> Result<(), MemError> {
        let mut buf = vec![0u8; bytes as usize];
        self.read(src, &mut buf)?;
        self.write(dst, &buf)
    }
}

/// The live allocations of one launch, for fast lookup by address.
pub struct View {
    allocs: Vec<Arc<Allocation>>,
}

impl View {
    pub fn new(allocs: Vec<Arc<Allocation>>) -> Self {
        Self { allocs }
    }

    /// The allocation holding `[addr, addr + len)`.
    pub fn find(&self, addr: u64, len: u64) -> Option<&Allocation> {
        let i = self.allocs.partition_point(|a| a.base <= addr);
        let a = self.allocs.get(i.checked_sub(1)?)?;
        a.contains(addr, len).then_some(&**a)
    }

    /// The allocation nearest to `addr` (for reports): its base, size, and how far `addr` lies from it.
    pub fn nearest(&self, addr: u64) -> Option<(u64, u64, i128)> {
        self.allocs
            .iter()
            .map(|a| {
                let d = if addr < a.base {
                    addr as i128 - a.base as i128
                } else {
                    addr as i128 - (a.base + a.bytes) as i128
                };
                (a.base, a.bytes, d)
            })
            .min_by_key(|&(_, _, d)| d.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_longer_than_its_chunk_repeats_the_pattern_to_the_end_and_no_further() {
        let memory = DeviceMemory::new(8 << 20);
        let words = (1u64 << 20) / 4 * 2 + 3;
        let base = memory.alloc(words * 4 + 4).unwrap();
        memory.fill(base, &[1, 2, 3, 4], words).unwrap();
        let mut bytes = vec![0u8; (words * 4 + 4) as usize];
        memory.read(base, &mut bytes).unwrap();
        assert!(bytes[..(words * 4) as usize].chunks(4).all(|w| w == [1, 2, 3, 4]));
        assert_eq!(&bytes[(words * 4) as usize..], &[0, 0, 0, 0]);
        let a = memory.find(base, 1).unwrap();
        assert!(a.is_initialized(base, words * 4));
        assert!(!a.is_initialized(base + words * 4, 4));
        assert_eq!(a.first_unwritten(base, words * 4 + 4), Some(base + words * 4));
        assert_eq!(a.unwritten_bytes(base + 4, words * 4), 4);
    }

    #[test]
    fn poisoned_memory_is_born_nan_in_every_float_width() {
        let memory = DeviceMemory::poisoned(1 << 20);
        let base = memory.alloc(24).unwrap();
        let mut bytes = [0u8; 24];
        memory.read(base, &mut bytes).unwrap();
        assert!(f64::from_le_bytes(bytes[..8].try_into().unwrap()).is_nan());
        assert!(f32::from_le_bytes(bytes[8..12].try_into().unwrap()).is_nan());
        assert_eq!(u16::from_le_bytes(bytes[12..14].try_into().unwrap()) & 0x7c00, 0x7c00, "an f16 NaN exponent");
        assert_eq!(u16::from_le_bytes(bytes[14..16].try_into().unwrap()) & 0x7f80, 0x7f80, "a bf16 NaN exponent");
        let a = memory.find(base, 24).unwrap();
        assert_eq!(a.first_unwritten(base, 24), Some(base));
        assert_eq!(a.unwritten_bytes(base, 24), 24);
    }
}
