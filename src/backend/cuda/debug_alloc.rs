//! The debug allocation mode, `GLOV_CUDA_DEBUG_ALLOC=1`: every arena block is a driver allocation of its own
//! (`cuMemAlloc`), so that memory checkers (compute-sanitizer, the emulator with its guard gaps) see each tensor's
//! bounds, which inside one arena allocation they cannot. This module reads the switch and makes the driver calls;
//! `device_arena` keeps the books.

use super::device_arena::BlockAllocator;
use anyhow::{Result, bail};
use cudarc::driver::{result, sys};
use std::ffi::OsStr;

/// The environment variable that switches the mode on.
pub const VARIABLE: &str = "GLOV_CUDA_DEBUG_ALLOC";

/// Whether the debug allocation mode is on: `GLOV_CUDA_DEBUG_ALLOC` unset or `0` is off, `1` is on, anything
/// else an error.
pub fn from_env() -> Result<bool> {
    parse(std::env::var_os(VARIABLE).as_deref())
}

fn parse(value: Option<&OsStr>) -> Result<bool> {
    match value.map(|v| v.to_str()) {
        None | Some(Some("0")) => Ok(false),
        Some(Some("1")) => Ok(true),
        Some(other) => bail!("{VARIABLE} must be 0 or 1, not {:?}", other.unwrap_or("(not UTF-8)")),
    }
}

/// Driver allocations for the blocks of one stream's arena.
pub struct DriverBlocks {
    stream: sys::CUstream,
}

// SAFETY: the stream is a plain driver handle, valid for the context's lifetime; the driver calls are made on
// threads where the context is current, as every other call of the backend.
unsafe impl Send for DriverBlocks {}

impl DriverBlocks {
    /// Blocks whose work runs on `stream`.
    pub fn new(stream: sys::CUstream) -> Self {
        Self { stream }
    }
}

impl BlockAllocator for DriverBlocks {
    fn allocate(&self, bytes: usize, recording: bool) -> Result<sys::CUdeviceptr> {
        // cuMemAlloc is a call that a stream capture refuses (and is invalidated by) unless the thread's interaction
        // mode is relaxed. The decode step allocates its activations while it is recorded, so there the call is
        // made in relaxed mode; that is safe because the recording's blocks are never freed before its graph is
        // dropped (they are parked), and the graph only holds their addresses.
        let _relaxed = if recording { Some(RelaxedCaptureMode::enter()?) } else { None };
        // SAFETY: a fresh allocation of the current context, owned by the block it is made for.
        unsafe { result::malloc_sync(bytes) }.map_err(|e| anyhow::anyhow!("cuMemAlloc of {bytes} bytes: {e:?}"))
    }

    fn free(&self, ptr: sys::CUdeviceptr) {
        let _span = tracing::debug_span!("freeing a block", ptr).entered();
        // SAFETY: the stream belongs to the current context; `ptr` came from `allocate` and is freed once, after the
        // work queued before (which may still read or write it) has finished. The arena never frees while a
        // recording is in progress, when both calls would be refused.
        unsafe {
            if let Err(e) = result::stream::synchronize(self.stream) {
                tracing::debug!("waiting for the GPU before cuMemFree: {e:?}");
            }
            if let Err(e) = result::free_sync(ptr) {
                tracing::debug!("cuMemFree: {e:?}");
            }
        }
    }
}

/// `cuThreadExchangeStreamCaptureMode`.
type ExchangeCaptureMode = unsafe extern "C" fn(*mut sys::CUstreamCaptureMode) -> sys::CUresult;

/// The calling thread's stream-capture interaction mode set to relaxed until dropped, when the previous mode is
/// restored (the push-pop use the driver documents for `cuThreadExchangeStreamCaptureMode`).
struct RelaxedCaptureMode {
    exchange: ExchangeCaptureMode,
    previous: sys::CUstreamCaptureMode,
}

impl RelaxedCaptureMode {
    fn enter() -> Result<Self> {
        // Looked up here rather than called through cudarc, which panics where the driver library lacks it.
        // SAFETY: the driver library is loaded (cuInit ran); the entry point has the driver API's signature.
        let exchange = *unsafe { sys::culib().get::<ExchangeCaptureMode>(b"cuThreadExchangeStreamCaptureMode") }
            .map_err(|e| {
                anyhow::anyhow!(
                    "the CUDA driver has no cuThreadExchangeStreamCaptureMode ({e}), which {VARIABLE}=1 needs to \
                     allocate while the decode step is recorded (--no-cuda-graphs runs without recording)"
                )
            })?;
        let mut mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED;
        // SAFETY: the out-pointer is valid; the call changes only this thread's mode.
        unsafe { exchange(&mut mode) }
            .result()
            .map_err(|e| anyhow::anyhow!("cuThreadExchangeStreamCaptureMode: {e:?}"))?;
        Ok(Self { exchange, previous: mode })
    }
}

impl Drop for RelaxedCaptureMode {
    fn drop(&mut self) {
        let mut mode = self.previous;
        // SAFETY: as in `enter`; it puts back the mode `enter` found.
        if let Err(e) = unsafe { (self.exchange)(&mut mode) }.result() {
            tracing::debug!("restoring the stream-capture interaction mode: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn unset_and_0_are_off_1_is_on() {
        assert!(!parse(None).unwrap());
        assert!(!parse(Some(OsStr::new("0"))).unwrap());
        assert!(parse(Some(OsStr::new("1"))).unwrap());
    }

    #[test]
    fn any_other_value_is_an_error_naming_the_variable() {
        for value in ["", "2", "true", "yes", " 1", "01"] {
            let message = parse(Some(OsStr::new(value))).unwrap_err().to_string();
            assert_eq!(message, format!("GLOV_CUDA_DEBUG_ALLOC must be 0 or 1, not {value:?}"));
        }
        let message = parse(Some(OsStr::from_bytes(b"\xff"))).unwrap_err().to_string();
        assert_eq!(message, "GLOV_CUDA_DEBUG_ALLOC must be 0 or 1, not \"(not UTF-8)\"");
    }
}
