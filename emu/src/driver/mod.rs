//! The exported CUDA driver API (`cu*` functions) that cudarc loads from `libcuda.so`.
//!
//! **Model.** One device (ordinal 0) and one context (the primary one), current per thread. Work enqueued on a
//! stream waits in the stream's queue and runs in stream order when something waits for it (`queue`): a
//! synchronisation, an event wait, a synchronous copy, a download into pageable memory, or a query, which says
//! `CUDA_ERROR_NOT_READY` while work waits. The legacy default stream orders with the blocking streams. A kernel
//! fault is printed (prefix `glov-emu:`) when the kernel runs and becomes the context's sticky error
//! (`CUDA_ERROR_ILLEGAL_ADDRESS`, `CUDA_ERROR_MISALIGNED_ADDRESS`, or `CUDA_ERROR_LAUNCH_FAILED` for races,
//! synchronisation errors, reads of unwritten memory, undefined behaviour and the stream checks), returned by the
//! call that ran it and every later call on the context. Between `cuStreamBeginCapture` and `cuStreamEndCapture`
//! work is recorded, with CUDA's capture rules (`capture`).
//! Every entry checks its pointers (`CUDA_ERROR_INVALID_VALUE`) and handles (`CUDA_ERROR_INVALID_HANDLE`) and
//! catches panics (`CUDA_ERROR_UNKNOWN`, with a message), so no call can bring the host process down.
//!
//! **Exported**, by concern:
//! - errors (`error`): `cuGetErrorName`, `cuGetErrorString`;
//! - device (`device`): `cuInit`, `cuDriverGetVersion`, `cuDeviceGetCount`, `cuDeviceGet`, `cuDeviceGetAttribute`,
//!   `cuDeviceGetName`, `cuDeviceTotalMem_v2`;
//! - context (`context`): `cuDevicePrimaryCtxRetain`, `cuDevicePrimaryCtxRelease`, `cuDevicePrimaryCtxRelease_v2`,
//!   `cuCtxSetCurrent`, `cuCtxGetCurrent`, `cuCtxSynchronize`;
//! - memory (`mem`): `cuMemAlloc_v2`, `cuMemFree_v2`, `cuMemAllocAsync`, `cuMemFreeAsync`, `cuMemAllocHost_v2`,
//!   `cuMemHostAlloc`, `cuMemFreeHost`, `cuMemGetInfo_v2`, `cuMemcpyHtoD_v2`, `cuMemcpyDtoH_v2`, `cuMemcpyDtoD_v2`,
//!   `cuMemcpyHtoDAsync_v2`, `cuMemcpyDtoHAsync_v2`, `cuMemcpyDtoDAsync_v2`, `cuMemsetD8_v2`, `cuMemsetD16_v2`,
//!   `cuMemsetD32_v2`, `cuMemsetD8Async`, `cuMemsetD16Async`, `cuMemsetD32Async`;
//! - streams and events (`stream`): `cuStreamCreate`, `cuStreamDestroy_v2`, `cuStreamSynchronize`, `cuStreamQuery`,
//!   `cuEventCreate`, `cuEventRecord`, `cuEventSynchronize`, `cuEventQuery`, `cuEventElapsedTime`,
//!   `cuEventElapsedTime_v2` (what cudarc calls for CUDA 13), `cuEventDestroy_v2`;
//! - capture and graphs (`capture`): `cuStreamBeginCapture_v2`, `cuStreamEndCapture`, `cuStreamIsCapturing`,
//!   `cuThreadExchangeStreamCaptureMode`, `cuGraphInstantiateWithFlags`, `cuGraphLaunch`, `cuGraphDestroy`, `cuGraphExecDestroy`;
//! - modules and launches (`module`, `launch`): `cuModuleLoadData`, `cuModuleUnload`, `cuModuleGetFunction`,
//!   `cuFuncGetAttribute`, `cuFuncSetAttribute`, `cuLaunchKernel`.
//!
//! **Configuration**, read once (at `cuInit`, or `cuDriverGetVersion` if called first); an invalid value is
//! reported on stderr and `cuInit` returns `CUDA_ERROR_INVALID_VALUE`:
//! - `GLOV_EMU_CC`: the compute capability posed as, `9.0` (default, an H100 SXM) or `8.0` (an A100 SXM);
//! - `GLOV_EMU_MEMORY`: device memory in GiB (default 4; fractions allowed);
//! - `GLOV_EMU_DRIVER_VERSION`: the driver version reported (default 13000); it decides the newest PTX ISA
//!   accepted (13000: 9.0, 12090: 8.8, 12080: 8.7, 12060 and 12050: 8.5, 12040: 8.4, ..., 12000: 8.0);
//! - `GLOV_EMU_SM_COUNT`: multiprocessors (default 132 for 9.0, 108 for 8.0);
//! - `GLOV_EMU_THREADS`: host threads that run blocks (default: the available parallelism);
//! - `GLOV_EMU_CHECKS`: `memcheck,racecheck,synccheck,initcheck` (default: all four), a subset, `all` or `none`;
//! - `GLOV_EMU_SCHEDULE_SEED`: unset, lanes and warps run lowest program counter first; a number varies the order
//!   from that seed, and (unless `GLOV_EMU_STREAMS` says otherwise) when queued stream work runs;
//! - `GLOV_EMU_STREAMS`: when queued stream work runs: `late` (default: only when waited for), `eager` (when
//!   enqueued) or `seeded` (chosen from the schedule seed at each enqueue);
//! - `GLOV_EMU_POISON`: `1` (default) fills new device memory, registers and local memory with 0xFF bytes (NaN in
//!   every float width); `0` leaves them zero;
//! - `GLOV_EMU_COUNTERS`: a file that receives, at exit, `{"device": ..., "kernels": {name: counters},
//!   "totals": ...}` as JSON (written atomically);
//! - `GLOV_EMU_SUMMARY=1`: one line of totals on stderr at exit;
//! - `GLOV_EMU_LAUNCH_LOG`: a file that gets one JSON line per launch (kernel, grid, block, counters);
//! - `GLOV_EMU_PTX_OVERRIDE`: a folder of `.ptx` files; a module being loaded is replaced by the file that declares
//!   the same kernels (the mutation check plants defects this way).

pub mod capture;
mod config;
pub mod context;
mod counters;
pub mod device;
pub mod error;
mod l2;
pub mod launch;
pub mod mem;
pub mod module;
mod ptx_override;
mod queue;
mod state;
pub mod stream;
mod work;

pub use config::{Capability, Config, Timing};
pub use error::CUresult;

use std::ffi::{c_int, c_void};

pub type CUdevice = c_int;
pub type CUdeviceptr = u64;
pub type CUcontext = *mut c_void;
pub type CUstream = *mut c_void;
pub type CUevent = *mut c_void;
pub type CUmodule = *mut c_void;
pub type CUfunction = *mut c_void;
pub type CUgraph = *mut c_void;
pub type CUgraphExec = *mut c_void;

/// Runs one exported call: its `Err` becomes the returned code, and a panic becomes `CUDA_ERROR_UNKNOWN` with a
/// message instead of unwinding into the caller.
fn entry(call: &str, f: impl FnOnce() -> error::Result) -> CUresult {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => CUresult::SUCCESS,
        Ok(Err(code)) => code,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            eprintln!("glov-emu: {call} failed inside the emulator: {message}");
            CUresult::UNKNOWN
        }
    }
}
