//! The device's measured memory bandwidth, the ceiling of memory-bound work such as LLM decoding: a
//! device-to-device copy of a 1 GiB buffer, timed with events, counted as bytes read plus bytes written (the
//! convention of the usual bandwidth tests and of `scripts/ceilings.py`, so the figures compare).

use super::runtime::Gpu;
use anyhow::{Result, ensure};
use cudarc::driver::{result, sys};

/// Bytes of the copied buffer: far past any L2 cache, as large as `scripts/ceilings.py` copies.
pub const COPY_BYTES: usize = 1 << 30;
/// Untimed copies before the timed ones.
const WARMUP: usize = 2;
/// Timed copies, back to back between two events.
const COPIES: usize = 10;

/// The stream and events of one measurement, destroyed when it ends (however it ends).
struct Timing {
    stream: sys::CUstream,
    events: Vec<sys::CUevent>,
}

impl Drop for Timing {
    fn drop(&mut self) {
        // SAFETY: the stream and events were created by the driver for this measurement; the stream is drained
        // before anything is destroyed, so no queued copy outlives its blocks.
        unsafe {
            let _ = result::stream::synchronize(self.stream);
            for &e in &self.events {
                let _ = result::event::destroy(e);
            }
            let _ = result::stream::destroy(self.stream);
        }
    }
}

fn driver<T>(what: &str, r: std::result::Result<T, result::DriverError>) -> Result<T> {
    r.map_err(|e| anyhow::anyhow!("copy bandwidth: {what}: {e:?}"))
}

/// Bytes per second, read plus written, of `cuMemcpyDtoDAsync` copies of [`COPY_BYTES`] between two arena blocks:
/// `2 * COPY_BYTES * copies / seconds` between events around the timed copies. The copies run on a stream of
/// their own, after the GPU's stream has finished its work, so nothing else shares the memory while they run.
pub fn copy_bandwidth(gpu: &Gpu) -> Result<f64> {
    gpu.synchronize()?;
    let src = gpu.arena().alloc(COPY_BYTES, "the copy-bandwidth source")?;
    let dst = gpu.arena().alloc(COPY_BYTES, "the copy-bandwidth destination")?;
    let stream = driver("cuStreamCreate", result::stream::create(result::stream::StreamKind::NonBlocking))?;
    let mut timing = Timing { stream, events: Vec::new() };
    for _ in 0..2 {
        timing.events.push(driver("cuEventCreate", result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT))?);
    }
    let (start, end) = (timing.events[0], timing.events[1]);
    // SAFETY: both blocks hold COPY_BYTES and live until `timing` (declared after them, so dropped first) has
    // drained the stream; the events and the stream belong to the current context.
    let ms = unsafe {
        for _ in 0..WARMUP {
            driver("cuMemcpyDtoDAsync", result::memcpy_dtod_async(dst.ptr, src.ptr, COPY_BYTES, stream))?;
        }
        driver("cuEventRecord", result::event::record(start, stream))?;
        for _ in 0..COPIES {
            driver("cuMemcpyDtoDAsync", result::memcpy_dtod_async(dst.ptr, src.ptr, COPY_BYTES, stream))?;
        }
        driver("cuEventRecord", result::event::record(end, stream))?;
        driver("cuEventSynchronize", result::event::synchronize(end))?;
        driver("cuEventElapsedTime", result::event::elapsed(start, end))?
    };
    drop(timing);
    ensure!(ms > 0.0, "copy bandwidth: the timed copies took {ms} ms");
    Ok((2 * COPY_BYTES * COPIES) as f64 / (ms as f64 / 1000.0))
}
