//! Pinned host memory through which every upload goes to the device. A copy from pinned memory is truly
//! asynchronous: the host returns at once and prepares the next batch while the copy and earlier kernels run. So
//! the staged bytes must stay untouched until the copy has read them: each staged range carries the event recorded
//! after its copy, and a range is written again only once that event has fired. (A copy straight from the
//! caller's pageable memory would tie the source's lifetime to the driver's internal staging, and cannot be
//! recorded into a CUDA graph.)
//!
//! Small uploads (token ids, row records, a step's offsets) take consecutive ranges of one ring buffer; large ones
//! (weights) alternate between two buffers that grow to the largest upload. Where pinned memory cannot be had, the
//! copy is synchronous: slower, never unsafe.

use anyhow::{Context, Result};
use cudarc::driver::{result, sys};
use std::collections::VecDeque;
use std::ffi::c_void;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Uploads of at least this many bytes use the large buffers.
const LARGE_UPLOAD: usize = 1 << 20;

/// The ring of the small uploads.
const RING_BYTES: usize = 4 << 20;

/// Ranges of the ring start at multiples of this (which bounds the copies in flight to RING_BYTES / RING_ALIGN).
const RING_ALIGN: usize = 1 << 10;

/// Page-locked host memory from the driver.
struct PinnedBytes {
    ptr: *mut u8,
    bytes: usize,
}

impl PinnedBytes {
    fn new(bytes: usize) -> Result<Self, result::DriverError> {
        // SAFETY: a fresh allocation, owned (and freed) by the value.
        unsafe { result::malloc_host(bytes, 0) }.map(|ptr| Self { ptr: ptr as *mut u8, bytes })
    }
}

impl Drop for PinnedBytes {
    fn drop(&mut self) {
        // SAFETY: allocated by `malloc_host`; the owners wait for every copy that reads it before dropping it.
        unsafe { result::free_host(self.ptr as *mut c_void).ok() };
    }
}

fn new_event() -> Result<sys::CUevent> {
    result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
        .map_err(|e| anyhow::anyhow!("creating an upload event: {e:?}"))
}

fn wait(event: sys::CUevent) -> Result<()> {
    // SAFETY: an event created by this module, recorded after a copy on the backend's stream.
    unsafe { result::event::synchronize(event) }.map_err(|e| anyhow::anyhow!("waiting for an upload: {e:?}"))
}

/// Copies `src` (`bytes.len()` bytes of pinned memory at `src`) to `dst` on `stream` and records `event` after it.
///
/// # Safety
/// `src` stays valid and unwritten until `event` fires; `dst` holds the bytes.
unsafe fn copy_and_record(dst: sys::CUdeviceptr, src: &[u8], stream: sys::CUstream, event: sys::CUevent) -> Result<()> {
    // SAFETY: as the caller guarantees.
    unsafe {
        result::memcpy_htod_async(dst, src, stream).map_err(|e| anyhow::anyhow!("copy to the device: {e:?}"))?;
        result::event::record(event, stream).map_err(|e| anyhow::anyhow!("recording an upload: {e:?}"))
    }
}

/// A large buffer and the event recorded after the last copy that read it.
struct Large {
    memory: PinnedBytes,
    copied: sys::CUevent,
}

/// The ring: staged ranges in the order they were taken, each with the event after its copy.
struct Ring {
    memory: PinnedBytes,
    head: usize,
    in_flight: VecDeque<(Range<usize>, sys::CUevent)>,
    spare_events: Vec<sys::CUevent>,
}

impl Ring {
    /// A range of `n` bytes that no copy in flight reads any more: the next one after the last taken, or the start
    /// of the ring when it does not fit before the end. Waits for the copies that read the bytes it overlaps.
    fn take(&mut self, n: usize) -> Result<Range<usize>> {
        let start = if self.head + n <= self.memory.bytes { self.head } else { 0 };
        let range = start..start + n;
        let mut kept = VecDeque::with_capacity(self.in_flight.len());
        for (staged, event) in self.in_flight.drain(..) {
            if staged.start < range.end && range.start < staged.end {
                wait(event)?;
                self.spare_events.push(event);
            } else {
                kept.push_back((staged, event));
            }
        }
        self.in_flight = kept;
        self.head = range.end.next_multiple_of(RING_ALIGN);
        Ok(range)
    }
}

/// The pinned buffers of one device's uploads.
pub struct Staging {
    ring: Mutex<Option<Ring>>,
    large: [Mutex<Option<Large>>; 2],
    next_large: AtomicUsize,
}

// SAFETY: the pinned pointers and events are plain driver handles, each used under its mutex.
unsafe impl Send for Staging {}
unsafe impl Sync for Staging {}

impl Staging {
    pub fn new() -> Self {
        Self { ring: Mutex::new(None), large: [Mutex::new(None), Mutex::new(None)], next_large: AtomicUsize::new(0) }
    }

    /// Copies `src` to the device address `dst` (which holds at least its bytes), ordered on `stream`; returns once
    /// `src` may be dropped.
    pub fn upload(&self, dst: sys::CUdeviceptr, src: &[u8], stream: sys::CUstream) -> Result<()> {
        if src.is_empty() {
            return Ok(());
        }
        let staged = if src.len() >= LARGE_UPLOAD {
            self.stage_large(dst, src, stream)
        } else {
            self.stage_small(dst, src, stream)
        };
        if staged? {
            return Ok(());
        }
        // SAFETY: `dst` holds the bytes; a synchronous copy has read `src` when it returns.
        unsafe { result::memcpy_htod_sync(dst, src) }.map_err(|e| anyhow::anyhow!("copy to the device: {e:?}"))
    }

    /// Through the ring; `false` when no pinned memory could be had.
    fn stage_small(&self, dst: sys::CUdeviceptr, src: &[u8], stream: sys::CUstream) -> Result<bool> {
        let mut slot = self.ring.lock().expect("the upload ring lock");
        if slot.is_none() {
            match PinnedBytes::new(RING_BYTES) {
                Ok(memory) => {
                    *slot = Some(Ring { memory, head: 0, in_flight: VecDeque::new(), spare_events: Vec::new() })
                }
                Err(e) => {
                    tracing::debug!("no pinned upload ring ({e:?}): synchronous uploads");
                    return Ok(false);
                }
            }
        }
        let ring = slot.as_mut().expect("made above");
        let range = ring.take(src.len())?;
        let event = match ring.spare_events.pop() {
            Some(event) => event,
            None => new_event()?,
        };
        // SAFETY: `take` returned a range inside the ring that no copy in flight reads; it stays unwritten until
        // `event` fires (a later `take` waits for it).
        unsafe {
            let staged = std::slice::from_raw_parts_mut(ring.memory.ptr.add(range.start), src.len());
            staged.copy_from_slice(src);
            ring.in_flight.push_back((range, event));
            copy_and_record(dst, staged, stream, event)?;
        }
        Ok(true)
    }

    /// Through one of the two large buffers, taken in turn; `false` when no pinned memory could be had.
    fn stage_large(&self, dst: sys::CUdeviceptr, src: &[u8], stream: sys::CUstream) -> Result<bool> {
        let turn = self.next_large.fetch_add(1, Ordering::Relaxed) % 2;
        let mut slot = self.large[turn].lock().expect("the staging lock");
        if let Some(large) = slot.as_ref() {
            wait(large.copied)?;
        }
        if slot.as_ref().is_none_or(|l| l.memory.bytes < src.len()) {
            *slot = None;
            match PinnedBytes::new(src.len()) {
                Ok(memory) => *slot = Some(Large { memory, copied: new_event().context("a staging buffer")? }),
                Err(e) => {
                    tracing::debug!("no pinned staging buffer of {} bytes ({e:?}): a synchronous upload", src.len());
                    return Ok(false);
                }
            }
        }
        let large = slot.as_ref().expect("made above");
        // SAFETY: the buffer holds at least `src.len()` bytes and no copy reads it (its last copy was waited for
        // above); it stays unwritten until `copied` fires (the next use of this buffer waits for it).
        unsafe {
            let staged = std::slice::from_raw_parts_mut(large.memory.ptr, src.len());
            staged.copy_from_slice(src);
            copy_and_record(dst, staged, stream, large.copied)?;
        }
        Ok(true)
    }
}

impl Drop for Large {
    fn drop(&mut self) {
        // The memory goes only once the copy reading it has ended.
        wait(self.copied).ok();
        // SAFETY: created by this module, destroyed once.
        unsafe { result::event::destroy(self.copied).ok() };
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        for (_, event) in self.in_flight.drain(..) {
            wait(event).ok();
            self.spare_events.push(event);
        }
        for event in self.spare_events.drain(..) {
            // SAFETY: created by this module, destroyed once.
            unsafe { result::event::destroy(event).ok() };
        }
    }
}
