//! Work on a stream: what a call enqueues, queued (`queue`) and run in stream order, or recorded into a capture
//! and replayed by a graph.

use super::error::{CUresult, Result};
use super::module::LoadedModule;
use super::queue;
use super::state::{DEFAULT_STREAM, Driver, lock};
use crate::exec::{self, FaultKind, Launch};
use crate::memory::{Allocation, MemError};
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
    /// From pinned host memory, read when the work runs.
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
    /// From pageable host memory, copied when enqueued (as the driver stages it before the call returns).
    Upload {
        dst: u64,
        data: Arc<[u8]>,
    },
    /// Stamps event `id` with the time the work before it finished.
    EventRecord(usize),
    /// `cuMemFreeAsync`: frees the allocation at this address in stream order.
    Free(u64),
    /// A graph's work, replayed in order.
    Graph(Arc<Vec<Work>>),
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

/// Enqueues `work` on stream `stream`: records it when the stream is capturing, queues it otherwise (and runs what
/// the timing says runs now). Returns the queued work's number (0 when recorded).
pub fn submit(d: &Driver, stream: usize, work: Work) -> Result<u64> {
    let seq = {
        let mut t = d.tables();
        if let Some(capture) = t.captures.get_mut(&stream) {
            if capture.invalidated {
                return Err(CUresult::STREAM_CAPTURE_INVALIDATED);
            }
            match work {
                Work::Graph(nodes) => capture.nodes.extend(nodes.iter().cloned()),
                work => capture.nodes.push(work),
            }
            return Ok(0);
        }
        if stream == DEFAULT_STREAM {
            super::capture::legacy_stream_used(&mut t)?;
        }
        queue::push(&mut t, d.config.timing, stream, work)
    };
    queue::after_push(d, stream, seq)?;
    Ok(seq)
}

/// Runs one piece of queued work (number `seq`), with the device held (`queue`). A kernel fault becomes the
/// context's sticky error.
pub fn run(d: &Driver, work: &Work, seq: u64) -> Result {
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
            copy_initcheck(d, &from, src, bytes, "device-to-device")?;
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
        Work::Upload { dst, data } => m.write(*dst, data).map_err(mem_error),
        &Work::CopyDtoH { dst, src, bytes } => {
            let from = m.find(src, bytes).map_err(mem_error)?;
            copy_initcheck(d, &from, src, bytes, "device-to-host")?;
            // SAFETY: the caller of the copy vouched for `bytes` writable bytes at `dst` while the copy runs.
            let host = unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, bytes as usize) };
            from.read(src, host);
            Ok(())
        }
        &Work::EventRecord(id) => {
            if let Some(e) = d.tables().events.get_mut(&id) {
                e.recorded = Some(Instant::now());
                if e.pending.is_some_and(|(_, at)| at == seq) {
                    e.pending = None;
                }
            }
            Ok(())
        }
        &Work::Free(addr) => m.free(addr).map_err(mem_error),
        Work::Graph(nodes) => {
            lock(&d.counters).graph_launch(nodes.len());
            nodes.iter().try_for_each(|node| run(d, node, seq))
        }
    }
}

/// Initcheck of a copy's device source: every byte must have been written (by a kernel, a copy or a fill). A copy
/// of bytes never written hands back what the allocation was born with (NaN bytes, when poisoned).
fn copy_initcheck(d: &Driver, from: &Allocation, src: u64, bytes: u64, what: &str) -> Result {
    if !d.config.options.initcheck {
        return Ok(());
    }
    let Some(first) = from.first_unwritten(src, bytes) else { return Ok(()) };
    let unwritten = from.unwritten_bytes(src, bytes);
    eprintln!(
        "glov-emu: initcheck: a {what} copy reads bytes never written: {unwritten} of its {bytes} bytes (from offset \
         {} of the allocation at {:#x} of {} bytes), the first at offset {}",
        src - from.base,
        from.base,
        from.bytes,
        first - from.base
    );
    Err(CUresult::LAUNCH_FAILED)
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
        Ok(mut stats) => {
            let footprint = &mut stats.footprint;
            let dram = lock(&d.l2).launch(footprint.loads.sorted(), footprint.stores.sorted());
            footprint.clear();
            (stats.dram_read_bytes, stats.dram_write_bytes) = (dram.read, dram.write);
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
