//! Memory calls: device allocations (`crate::memory::DeviceMemory`), pinned host buffers, copies and fills. A copy
//! or fill whose device range is not inside one live allocation is `CUDA_ERROR_INVALID_VALUE`, checked when the
//! call is made. Copies and fills are queued on their stream (`queue`); the synchronous calls, and a download into
//! pageable memory, return once theirs has run.

use super::capture::{check_host_copy, forbid_unsafe_call};
use super::config::Timing;
use super::entry;
use super::error::{CUresult, Result};
use super::state::{DEFAULT_STREAM, Driver, Pinned, live};
use super::work::{Work, submit};
use super::{CUdeviceptr, CUstream};
use crate::memory::MemError;
use std::ffi::c_void;

/// Alignment of pinned host buffers (a page, as the driver's).
const PINNED_ALIGN: usize = 4096;
/// `CU_MEMHOSTALLOC_PORTABLE | DEVICEMAP | WRITECOMBINED`.
const HOST_ALLOC_FLAGS: u32 = 0x7;

fn device_range(d: &Driver, addr: u64, bytes: u64) -> Result {
    d.memory.find(addr, bytes).map(drop).map_err(|_| CUresult::INVALID_VALUE)
}

/// How a copy between host and device meets the host.
#[derive(Clone, Copy)]
enum HostSide {
    /// Not a host copy (a fill, or device to device).
    None,
    /// From pageable memory: the bytes are taken now (the driver stages them before the call returns).
    PageableSource,
    /// Into pageable memory: the call returns once the copy has run, as the driver's does.
    PageableDestination,
    /// From pinned memory: read when the copy runs.
    PinnedSource,
    /// Into pinned memory: written when the copy runs; until then the emulator fills it with NaN bytes.
    PinnedDestination,
}

/// Checks what `work` touches, then enqueues it on `h_stream` (`None`: a synchronous call, on the legacy stream,
/// which returns once the work has run).
fn enqueue(h_stream: Option<CUstream>, work: Work) -> Result {
    let d = live()?;
    let (stream, side) = {
        let mut t = d.tables();
        let stream = match h_stream {
            Some(h) => t.stream(h)?,
            None => {
                forbid_unsafe_call(&mut t)?;
                DEFAULT_STREAM
            }
        };
        let side = match work {
            Work::Memset { dst, width, count, .. } => {
                if dst % width as u64 != 0 {
                    return Err(CUresult::INVALID_VALUE);
                }
                if count == 0 {
                    return Ok(());
                }
                device_range(d, dst, count * width as u64)?;
                HostSide::None
            }
            Work::CopyDtoD { dst, src, bytes } => {
                if bytes == 0 {
                    return Ok(());
                }
                device_range(d, dst, bytes)?;
                device_range(d, src, bytes)?;
                HostSide::None
            }
            Work::CopyHtoD { dst: device, src: host, bytes } | Work::CopyDtoH { dst: host, src: device, bytes } => {
                if bytes == 0 {
                    return Ok(());
                }
                if host == 0 {
                    return Err(CUresult::INVALID_VALUE);
                }
                device_range(d, device, bytes)?;
                check_host_copy(&mut t, stream, host, bytes as usize)?;
                let pinned = t.is_pinned(host, bytes as usize);
                match (matches!(work, Work::CopyHtoD { .. }), pinned) {
                    (true, true) => HostSide::PinnedSource,
                    (true, false) => HostSide::PageableSource,
                    (false, true) => HostSide::PinnedDestination,
                    (false, false) => HostSide::PageableDestination,
                }
            }
            _ => unreachable!("memory calls enqueue copies and fills"),
        };
        (stream, side)
    };
    let work = match (side, work) {
        (HostSide::PageableSource, Work::CopyHtoD { dst, src, bytes }) => {
            if h_stream.is_some() {
                super::state::lock(&d.counters).pageable_async_uploads += 1;
            }
            // SAFETY: the caller vouched for `bytes` readable bytes at `src` for the call.
            let data = unsafe { std::slice::from_raw_parts(src as *const u8, bytes as usize) };
            Work::Upload { dst, data: data.into() }
        }
        (HostSide::PinnedDestination, work @ Work::CopyDtoH { dst, bytes, .. }) => {
            if d.config.options.poison && d.config.timing != Timing::Eager && !d.tables().captures.contains_key(&stream)
            {
                // SAFETY: the caller vouched for `bytes` writable bytes at `dst` until the copy has run.
                unsafe { std::ptr::write_bytes(dst as *mut u8, 0xFF, bytes as usize) };
            }
            work
        }
        (_, work) => work,
    };
    let seq = submit(d, stream, work)?;
    let waits = h_stream.is_none() || matches!(side, HostSide::PageableDestination);
    if waits && seq != 0 { super::queue::run_until(d, stream, seq) } else { Ok(()) }
}

/// # Safety
/// `dptr` is null or points to a writable `CUdeviceptr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, bytesize: usize) -> CUresult {
    entry("cuMemAlloc_v2", || {
        let d = live()?;
        if dptr.is_null() || bytesize == 0 {
            return Err(CUresult::INVALID_VALUE);
        }
        forbid_unsafe_call(&mut d.tables())?;
        alloc(d, dptr, bytesize)
    })
}

fn alloc(d: &Driver, dptr: *mut CUdeviceptr, bytesize: usize) -> Result {
    let addr = d.memory.alloc(bytesize as u64).map_err(|_| CUresult::OUT_OF_MEMORY)?;
    // SAFETY: the callers checked it non-null.
    unsafe { *dptr = addr };
    Ok(())
}

fn free(d: &Driver, dptr: CUdeviceptr) -> Result {
    match d.memory.free(dptr) {
        Ok(()) => Ok(()),
        Err(MemError::Invalid { .. } | MemError::OutOfMemory { .. }) => Err(CUresult::INVALID_VALUE),
    }
}

/// Waits for the work queued on every stream (the driver's `cuMemFree` synchronises), then frees.
#[unsafe(no_mangle)]
pub extern "C" fn cuMemFree_v2(dptr: CUdeviceptr) -> CUresult {
    entry("cuMemFree_v2", || {
        let d = live()?;
        forbid_unsafe_call(&mut d.tables())?;
        if dptr == 0 {
            return Ok(());
        }
        super::queue::run_all(d)?;
        free(d, dptr)
    })
}

/// Stream-ordered allocation: the allocation is made at once, the free is queued on the stream. Inside a capture
/// either would be a memory node, which the emulator does not record.
fn refuse_in_capture(d: &Driver, h_stream: CUstream, call: &str) -> Result {
    let t = d.tables();
    let stream = t.stream(h_stream)?;
    if t.captures.contains_key(&stream) {
        eprintln!("glov-emu: {call} on a capturing stream: the emulator does not record memory nodes");
        return Err(CUresult::STREAM_CAPTURE_UNSUPPORTED);
    }
    Ok(())
}

/// # Safety
/// `dptr` is null or points to a writable `CUdeviceptr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocAsync(dptr: *mut CUdeviceptr, bytesize: usize, h_stream: CUstream) -> CUresult {
    entry("cuMemAllocAsync", || {
        let d = live()?;
        if dptr.is_null() || bytesize == 0 {
            return Err(CUresult::INVALID_VALUE);
        }
        refuse_in_capture(d, h_stream, "cuMemAllocAsync")?;
        alloc(d, dptr, bytesize)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemFreeAsync(dptr: CUdeviceptr, h_stream: CUstream) -> CUresult {
    entry("cuMemFreeAsync", || {
        let d = live()?;
        refuse_in_capture(d, h_stream, "cuMemFreeAsync")?;
        if d.memory.find(dptr, 1).map_or(true, |a| a.base != dptr) {
            return Err(CUresult::INVALID_VALUE);
        }
        let stream = d.tables().stream(h_stream)?;
        submit(d, stream, Work::Free(dptr)).map(drop)
    })
}

fn host_alloc(pp: *mut *mut c_void, bytesize: usize, flags: u32) -> Result {
    let d = live()?;
    if pp.is_null() || bytesize == 0 || flags & !HOST_ALLOC_FLAGS != 0 {
        return Err(CUresult::INVALID_VALUE);
    }
    let layout = std::alloc::Layout::from_size_align(bytesize, PINNED_ALIGN).map_err(|_| CUresult::INVALID_VALUE)?;
    // SAFETY: a non-zero size.
    let ptr = unsafe { std::alloc::alloc(layout) };
    if ptr.is_null() {
        return Err(CUresult::OUT_OF_MEMORY);
    }
    d.tables().pinned.insert(ptr as usize, Pinned { bytes: bytesize, layout });
    // SAFETY: checked non-null.
    unsafe { *pp = ptr as *mut c_void };
    Ok(())
}

/// # Safety
/// `pp` is null or points to room for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocHost_v2(pp: *mut *mut c_void, bytesize: usize) -> CUresult {
    entry("cuMemAllocHost_v2", || host_alloc(pp, bytesize, 0))
}

/// # Safety
/// `pp` is null or points to room for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostAlloc(pp: *mut *mut c_void, bytesize: usize, flags: u32) -> CUresult {
    entry("cuMemHostAlloc", || host_alloc(pp, bytesize, flags))
}

/// Refuses to free a buffer that queued work still reads or writes (streamcheck): the driver does not promise to
/// wait for it.
///
/// # Safety
/// `p` came from `cuMemAllocHost` / `cuMemHostAlloc` (anything else is `CUDA_ERROR_INVALID_VALUE`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFreeHost(p: *mut c_void) -> CUresult {
    entry("cuMemFreeHost", || {
        let d = live()?;
        let mut t = d.tables();
        let bytes = t.pinned.get(&(p as usize)).ok_or(CUresult::INVALID_VALUE)?.bytes;
        if t.queues.uses_host(p as usize, bytes) {
            eprintln!(
                "glov-emu: streamcheck: cuMemFreeHost of the pinned buffer at {p:?} ({bytes} bytes) while a queued copy \
                 still uses it: wait for the copy (its event, or a synchronisation of its stream) first"
            );
            return Err(CUresult::INVALID_VALUE);
        }
        let pinned = t.pinned.remove(&(p as usize)).expect("the buffer just found");
        // SAFETY: allocated by `host_alloc` with this layout, removed from the table so freed once.
        unsafe { std::alloc::dealloc(p as *mut u8, pinned.layout) };
        Ok(())
    })
}

/// # Safety
/// `free` and `total` are null or point to writable `size_t`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
    entry("cuMemGetInfo_v2", || {
        let d = live()?;
        if free.is_null() || total.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        let capacity = d.memory.capacity();
        // SAFETY: checked non-null.
        unsafe {
            *free = (capacity - d.memory.used()) as usize;
            *total = capacity as usize;
        }
        Ok(())
    })
}

/// # Safety
/// `src_host` holds `byte_count` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(dst: CUdeviceptr, src_host: *const c_void, byte_count: usize) -> CUresult {
    entry("cuMemcpyHtoD_v2", || enqueue(None, Work::CopyHtoD { dst, src: src_host as usize, bytes: byte_count as u64 }))
}

/// # Safety
/// `src_host` holds `byte_count` readable bytes until the copy has run (pinned memory: when the stream reaches it,
/// or at each replay of a graph that captured it; pageable memory: for the call).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: CUdeviceptr,
    src_host: *const c_void,
    byte_count: usize,
    h_stream: CUstream,
) -> CUresult {
    entry("cuMemcpyHtoDAsync_v2", || {
        enqueue(Some(h_stream), Work::CopyHtoD { dst, src: src_host as usize, bytes: byte_count as u64 })
    })
}

/// # Safety
/// `dst_host` holds `byte_count` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(dst_host: *mut c_void, src: CUdeviceptr, byte_count: usize) -> CUresult {
    entry("cuMemcpyDtoH_v2", || enqueue(None, Work::CopyDtoH { dst: dst_host as usize, src, bytes: byte_count as u64 }))
}

/// # Safety
/// `dst_host` holds `byte_count` writable bytes until the copy has run.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(
    dst_host: *mut c_void,
    src: CUdeviceptr,
    byte_count: usize,
    h_stream: CUstream,
) -> CUresult {
    entry("cuMemcpyDtoHAsync_v2", || {
        enqueue(Some(h_stream), Work::CopyDtoH { dst: dst_host as usize, src, bytes: byte_count as u64 })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemcpyDtoD_v2(dst: CUdeviceptr, src: CUdeviceptr, byte_count: usize) -> CUresult {
    entry("cuMemcpyDtoD_v2", || enqueue(None, Work::CopyDtoD { dst, src, bytes: byte_count as u64 }))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemcpyDtoDAsync_v2(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    byte_count: usize,
    h_stream: CUstream,
) -> CUresult {
    entry("cuMemcpyDtoDAsync_v2", || enqueue(Some(h_stream), Work::CopyDtoD { dst, src, bytes: byte_count as u64 }))
}

fn memset(h_stream: Option<CUstream>, dst: CUdeviceptr, value: u32, width: u8, count: usize) -> Result {
    enqueue(h_stream, Work::Memset { dst, value, width, count: count as u64 })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemsetD8_v2(dst: CUdeviceptr, uc: u8, n: usize) -> CUresult {
    entry("cuMemsetD8_v2", || memset(None, dst, uc as u32, 1, n))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemsetD16_v2(dst: CUdeviceptr, us: u16, n: usize) -> CUresult {
    entry("cuMemsetD16_v2", || memset(None, dst, us as u32, 2, n))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemsetD32_v2(dst: CUdeviceptr, ui: u32, n: usize) -> CUresult {
    entry("cuMemsetD32_v2", || memset(None, dst, ui, 4, n))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemsetD8Async(dst: CUdeviceptr, uc: u8, n: usize, h_stream: CUstream) -> CUresult {
    entry("cuMemsetD8Async", || memset(Some(h_stream), dst, uc as u32, 1, n))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemsetD16Async(dst: CUdeviceptr, us: u16, n: usize, h_stream: CUstream) -> CUresult {
    entry("cuMemsetD16Async", || memset(Some(h_stream), dst, us as u32, 2, n))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemsetD32Async(dst: CUdeviceptr, ui: u32, n: usize, h_stream: CUstream) -> CUresult {
    entry("cuMemsetD32Async", || memset(Some(h_stream), dst, ui, 4, n))
}
