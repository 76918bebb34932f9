//! Work on a stream: what a call enqueues, run at once (streams execute eagerly, in order) or recorded into a
//! capture and replayed by a graph.

use super::error::{CUresult, Result};
use super::module::LoadedModule;
use super::state::{DEFAULT_STREAM, Driver, lock};
use crate::exec::{self, FaultKind, Launch};
use crate::memory::MemError;
use std::sync::Arc;
use std::time::Instant;

/// Host bytes moved per step by copies and fills, so that a large one needs no buffer of its size.
const CHUNK: usize = 8 << 20;

#[derive(Clone)]
pub enum Work {
    Kernel(KernelWork),
    /// `count` copies of the low `width` bytes of `value` from `dst`.
    Memset {
        dst: u64,
        value: u32,
        width: u8,
        count: u64,
    },
    CopyDtoD {
        dst: u64,
        src: u64,
        bytes: u64,
    },
    /// From host memory, read when the work runs (pinned memory, when replayed from a graph).
    CopyHtoD {
        dst: u64,
        src: usize,
        bytes: u64,
    },
    CopyDtoH {
        dst: usize,
        src: u64,
        bytes: u64,
    },
    /// Stamps event `id` with the time the work before it finished.
    EventRecord(usize),
}

/// One kernel launch, with its parameters copied at the time it was enqueued (as CUDA copies them).
#[derive(Clone)]
pub struct KernelWork {
    pub module: Arc<LoadedModule>,
    pub kernel: usize,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_shared: u32,
    pub params: Vec<u8>,
}

/// Enqueues `work` on stream `stream`: records it when the stream is capturing, runs it otherwise.
pub fn submit(d: &Driver, stream: usize, work: Work) -> Result {
    {
        let mut t = d.tables();
        if let Some(capture) = t.captures.get_mut(&stream) {
            if capture.invalidated {
                return Err(CUresult::STREAM_CAPTURE_INVALIDATED);
            }
            capture.nodes.push(work);
            return Ok(());
        }
        if stream == DEFAULT_STREAM {
            super::capture::legacy_stream_used(&mut t)?;
        }
    }
    run(d, &work)
}

/// Runs one piece of work now. A kernel fault becomes the context's sticky error.
pub fn run(d: &Driver, work: &Work) -> Result {
    let _device = lock(&d.device);
    let m = &d.memory;
    match work {
        Work::Kernel(k) => launch(d, k),
        &Work::Memset { dst, value, width, count } => {
            let bytes = count * width as u64;
            let a = m.find(dst, bytes).map_err(mem_error)?;
            let pattern = &value.to_le_bytes()[..width as usize];
            let chunk: Vec<u8> = pattern.iter().copied().cycle().take(CHUNK.min(bytes as usize)).collect();
            let mut done = 0;
            while done < bytes {
                let n = chunk.len().min((bytes - done) as usize);
                a.write(dst + done, &chunk[..n]);
                done += n as u64;
            }
            Ok(())
        }
        &Work::CopyDtoD { dst, src, bytes } => {
            let (to, from) = (m.find(dst, bytes).map_err(mem_error)?, m.find(src, bytes).map_err(mem_error)?);
            // Overlapping ranges copy as `memmove`: front to back when the destination is below the source.
            let mut buf = vec![0u8; CHUNK.min(bytes as usize)];
            let mut offsets: Vec<u64> = (0..bytes).step_by(CHUNK).collect();
            if dst > src {
                offsets.reverse();
            }
            for off in offsets {
                let n = (bytes - off).min(CHUNK as u64) as usize;
                from.read(src + off, &mut buf[..n]);
                to.write(dst + off, &buf[..n]);
            }
            Ok(())
        }
        &Work::CopyHtoD { dst, src, bytes } => {
            // SAFETY: the caller of the copy vouched for `bytes` readable bytes at `src` while the copy runs.
            let host = unsafe { std::slice::from_raw_parts(src as *const u8, bytes as usize) };
            m.write(dst, host).map_err(mem_error)
        }
        &Work::CopyDtoH { dst, src, bytes } => {
            // SAFETY: the caller of the copy vouched for `bytes` writable bytes at `dst` while the copy runs.
            let host = unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, bytes as usize) };
            m.read(src, host).map_err(mem_error)
        }
        &Work::EventRecord(id) => {
            if let Some(e) = d.tables().events.get_mut(&id) {
                e.recorded = Some(Instant::now());
            }
            Ok(())
        }
    }
}

/// A copy or fill outside every allocation: the range was checked when the work was enqueued, so the memory was
/// freed since.
fn mem_error(e: MemError) -> CUresult {
    match e {
        MemError::OutOfMemory { .. } => CUresult::OUT_OF_MEMORY,
        MemError::Invalid { .. } => CUresult::INVALID_VALUE,
    }
}

fn launch(d: &Driver, k: &KernelWork) -> Result {
    let geometry = Launch { grid: k.grid, block: k.block, dynamic_shared: k.dynamic_shared, params: &k.params };
    let outcome = exec::launch(&k.module.module, k.kernel, &k.module.globals, &geometry, &d.memory, &d.config.options);
    let name = &k.module.module.kernels[k.kernel].name;
    match outcome {
        Ok(stats) => {
            if let Some(path) = &d.config.launch_log {
                super::counters::log_launch(path, name, k.grid, k.block, &stats);
            }
            lock(&d.counters).add(name, &stats);
            Ok(())
        }
        Err(fault) => {
            eprintln!("glov-emu: kernel {name} (grid {:?}, block {:?}) failed: {}", k.grid, k.block, fault.report);
            let code = match fault.kind {
                FaultKind::IllegalAddress => CUresult::ILLEGAL_ADDRESS,
                FaultKind::Misaligned => CUresult::MISALIGNED_ADDRESS,
                FaultKind::Race | FaultKind::Sync | FaultKind::Uninitialized | FaultKind::Undefined => {
                    CUresult::LAUNCH_FAILED
                }
            };
            d.set_sticky(code);
            Err(code)
        }
    }
}
