//! Stream capture and graphs. Between `cuStreamBeginCapture` and `cuStreamEndCapture` the work enqueued on the
//! stream is recorded, not run; the graph it becomes replays that work in order. The capture rules of CUDA: a call
//! that would synchronise (`cuStreamSynchronize`, `cuCtxSynchronize`, `cuEventSynchronize`, synchronous copies,
//! `cuMemAlloc`/`cuMemFree`) is refused with `CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED` on a thread a capture
//! forbids it to (by the capture's mode and the thread's interaction mode, `cuThreadExchangeStreamCaptureMode`),
//! and invalidates that capture; so does an asynchronous copy between the capturing stream and
//! pageable host memory. Work on the legacy default stream while a blocking stream captures is
//! `CUDA_ERROR_STREAM_CAPTURE_IMPLICIT`.

use super::entry;
use super::error::{CUresult, Result};
use super::state::{DEFAULT_STREAM, Tables, live};
use super::work::{Work, submit};
use super::{CUgraph, CUgraphExec, CUstream};
use std::cell::Cell;
use std::sync::Arc;
use std::thread::ThreadId;

/// `CUstreamCaptureMode`.
pub const MODE_GLOBAL: u32 = 0;
pub const MODE_THREAD_LOCAL: u32 = 1;
pub const MODE_RELAXED: u32 = 2;

/// `CUstreamCaptureStatus`.
const STATUS_NONE: u32 = 0;
const STATUS_ACTIVE: u32 = 1;
const STATUS_INVALIDATED: u32 = 2;

pub struct Capture {
    pub mode: u32,
    pub thread: ThreadId,
    /// The capturing stream synchronises with the legacy default stream.
    pub blocking: bool,
    pub nodes: Vec<Work>,
    /// A refused call invalidated it: `cuStreamEndCapture` returns `CUDA_ERROR_STREAM_CAPTURE_INVALIDATED`.
    pub invalidated: bool,
}

thread_local! {
    /// The thread's capture interaction mode (`cuThreadExchangeStreamCaptureMode`), global unless changed.
    static THREAD_MODE: Cell<u32> = const { Cell::new(MODE_GLOBAL) };
}

impl Capture {
    /// Whether this capture forbids potentially unsafe calls on `thread`, whose interaction mode is `thread_mode`:
    /// in global mode, a capture of its own not begun relaxed, or a global capture of another thread; in
    /// thread-local mode, only a capture of its own not begun relaxed; in relaxed mode, none.
    fn forbids(&self, thread: ThreadId, thread_mode: u32) -> bool {
        let own = self.thread == thread && self.mode != MODE_RELAXED;
        match thread_mode {
            MODE_GLOBAL => own || (self.thread != thread && self.mode == MODE_GLOBAL),
            MODE_THREAD_LOCAL => own,
            _ => false,
        }
    }
}

/// A potentially unsafe (synchronising) call on this thread: refused, invalidating the captures that forbid it.
pub fn forbid_unsafe_call(t: &mut Tables) -> Result {
    let me = std::thread::current().id();
    let mode = THREAD_MODE.with(Cell::get);
    let mut refused = false;
    for c in t.captures.values_mut().filter(|c| c.forbids(me, mode)) {
        c.invalidated = true;
        refused = true;
    }
    if refused { Err(CUresult::STREAM_CAPTURE_UNSUPPORTED) } else { Ok(()) }
}

/// A call that would wait for stream `stream` (or query it): refused when the stream is capturing.
pub fn forbid_wait_for(t: &mut Tables, stream: usize) -> Result {
    match t.captures.get_mut(&stream) {
        Some(c) => {
            c.invalidated = true;
            Err(CUresult::STREAM_CAPTURE_UNSUPPORTED)
        }
        None => Ok(()),
    }
}

/// Work enqueued on the legacy default stream would wait for every blocking stream, capturing ones included.
pub fn legacy_stream_used(t: &mut Tables) -> Result {
    let mut refused = false;
    for c in t.captures.values_mut().filter(|c| c.blocking) {
        c.invalidated = true;
        refused = true;
    }
    if refused { Err(CUresult::STREAM_CAPTURE_IMPLICIT) } else { Ok(()) }
}

/// An asynchronous copy between stream `stream` and host memory at `[host, host + bytes)`: pageable memory cannot
/// be captured.
pub fn check_host_copy(t: &mut Tables, stream: usize, host: usize, bytes: usize) -> Result {
    if t.captures.contains_key(&stream) && !t.is_pinned(host, bytes) {
        return forbid_wait_for(t, stream);
    }
    Ok(())
}

/// Swaps the calling thread's capture interaction mode with `*mode` (the push-pop the driver documents).
///
/// # Safety
/// `mode` is null or points to a readable and writable `CUstreamCaptureMode`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuThreadExchangeStreamCaptureMode(mode: *mut u32) -> CUresult {
    entry("cuThreadExchangeStreamCaptureMode", || {
        super::state::driver()?;
        if mode.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        // SAFETY: checked non-null.
        let wanted = unsafe { *mode };
        if wanted > MODE_RELAXED {
            return Err(CUresult::INVALID_VALUE);
        }
        // SAFETY: as above.
        unsafe { *mode = THREAD_MODE.with(|m| m.replace(wanted)) };
        Ok(())
    })
}

/// # Safety
/// `h_stream` is a stream handle (validated).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamBeginCapture_v2(h_stream: CUstream, mode: u32) -> CUresult {
    entry("cuStreamBeginCapture_v2", || {
        let d = live()?;
        let mut t = d.tables();
        let stream = t.stream(h_stream)?;
        if mode > MODE_RELAXED {
            return Err(CUresult::INVALID_VALUE);
        }
        if stream == DEFAULT_STREAM {
            return Err(CUresult::STREAM_CAPTURE_UNSUPPORTED);
        }
        if t.captures.contains_key(&stream) {
            return Err(CUresult::ILLEGAL_STATE);
        }
        let blocking = t.streams[&stream].blocking;
        let thread = std::thread::current().id();
        t.captures.insert(stream, Capture { mode, thread, blocking, nodes: Vec::new(), invalidated: false });
        Ok(())
    })
}

/// # Safety
/// `ph_graph` is null or points to room for one handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamEndCapture(h_stream: CUstream, ph_graph: *mut CUgraph) -> CUresult {
    entry("cuStreamEndCapture", || {
        let d = live()?;
        if ph_graph.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        let mut t = d.tables();
        let stream = t.stream(h_stream)?;
        let Some(capture) = t.captures.get(&stream) else { return Err(CUresult::ILLEGAL_STATE) };
        if capture.mode != MODE_RELAXED && capture.thread != std::thread::current().id() {
            return Err(CUresult::STREAM_CAPTURE_WRONG_THREAD);
        }
        let capture = t.captures.remove(&stream).expect("the capture just found");
        if capture.invalidated {
            // SAFETY: checked non-null.
            unsafe { *ph_graph = std::ptr::null_mut() };
            return Err(CUresult::STREAM_CAPTURE_INVALIDATED);
        }
        let handle = t.new_handle();
        t.graphs.insert(handle, Arc::new(capture.nodes));
        // SAFETY: checked non-null.
        unsafe { *ph_graph = handle as CUgraph };
        Ok(())
    })
}

/// # Safety
/// `capture_status` is null or points to room for one `CUstreamCaptureStatus`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamIsCapturing(h_stream: CUstream, capture_status: *mut u32) -> CUresult {
    entry("cuStreamIsCapturing", || {
        let d = live()?;
        if capture_status.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        let t = d.tables();
        let status = match t.captures.get(&t.stream(h_stream)?) {
            None => STATUS_NONE,
            Some(c) if c.invalidated => STATUS_INVALIDATED,
            Some(_) => STATUS_ACTIVE,
        };
        // SAFETY: checked non-null.
        unsafe { *capture_status = status };
        Ok(())
    })
}

/// # Safety
/// `ph_graph_exec` is null or points to room for one handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGraphInstantiateWithFlags(
    ph_graph_exec: *mut CUgraphExec,
    h_graph: CUgraph,
    _flags: u64,
) -> CUresult {
    entry("cuGraphInstantiateWithFlags", || {
        let d = live()?;
        if ph_graph_exec.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        let mut t = d.tables();
        let nodes = t.graphs.get(&(h_graph as usize)).ok_or(CUresult::INVALID_HANDLE)?.clone();
        let handle = t.new_handle();
        t.execs.insert(handle, nodes);
        // SAFETY: checked non-null.
        unsafe { *ph_graph_exec = handle as CUgraphExec };
        Ok(())
    })
}

/// Queues the graph's work on the stream, to run in order as one piece (recorded, when that stream is
/// capturing).
///
/// # Safety
/// Host memory the graph's copies name must still be valid when it runs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGraphLaunch(h_graph_exec: CUgraphExec, h_stream: CUstream) -> CUresult {
    entry("cuGraphLaunch", || {
        let d = live()?;
        let (stream, nodes) = {
            let t = d.tables();
            let nodes = t.execs.get(&(h_graph_exec as usize)).ok_or(CUresult::INVALID_HANDLE)?.clone();
            (t.stream(h_stream)?, nodes)
        };
        submit(d, stream, Work::Graph(nodes)).map(drop)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphDestroy(h_graph: CUgraph) -> CUresult {
    entry("cuGraphDestroy", || {
        let d = live()?;
        d.tables().graphs.remove(&(h_graph as usize)).map(drop).ok_or(CUresult::INVALID_HANDLE)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphExecDestroy(h_graph_exec: CUgraphExec) -> CUresult {
    entry("cuGraphExecDestroy", || {
        let d = live()?;
        d.tables().execs.remove(&(h_graph_exec as usize)).map(drop).ok_or(CUresult::INVALID_HANDLE)
    })
}
