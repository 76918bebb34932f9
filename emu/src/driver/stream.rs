//! Streams and events. Work enqueued on a stream waits in its queue (`queue`) until something waits for it:
//! synchronising a stream or an event runs the work it waits for; a query of waiting work says
//! `CUDA_ERROR_NOT_READY`. An event is stamped with the host time at which the work before it ended.

use super::capture::{forbid_unsafe_call, forbid_wait_for};
use super::entry;
use super::error::{CUresult, Result};
use super::queue;
use super::state::{DEFAULT_STREAM, Driver, Event, Stream, live};
use super::work::{Work, submit};
use super::{CUevent, CUstream};

/// `CU_STREAM_NON_BLOCKING`.
const STREAM_NON_BLOCKING: u32 = 0x1;
/// `CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS`.
const EVENT_FLAGS: u32 = 0x7;
const EVENT_DISABLE_TIMING: u32 = 0x2;

/// # Safety
/// `ph_stream` is null or points to room for one handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamCreate(ph_stream: *mut CUstream, flags: u32) -> CUresult {
    entry("cuStreamCreate", || {
        let d = live()?;
        if ph_stream.is_null() || flags & !STREAM_NON_BLOCKING != 0 {
            return Err(CUresult::INVALID_VALUE);
        }
        let mut t = d.tables();
        let handle = t.new_handle();
        t.streams.insert(handle, Stream { blocking: flags & STREAM_NON_BLOCKING == 0 });
        // SAFETY: checked non-null.
        unsafe { *ph_stream = handle as CUstream };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamDestroy_v2(h_stream: CUstream) -> CUresult {
    entry("cuStreamDestroy_v2", || {
        let d = live()?;
        let id = h_stream as usize;
        if !d.tables().streams.contains_key(&id) {
            return Err(CUresult::INVALID_HANDLE);
        }
        // Work still queued runs before the stream goes (the driver lets it finish).
        let finished = queue::run_stream(d, id);
        let mut t = d.tables();
        t.streams.remove(&id);
        t.captures.remove(&id);
        finished
    })
}

fn wait_for_stream(h_stream: CUstream) -> Result {
    let d = live()?;
    let stream = {
        let mut t = d.tables();
        let stream = t.stream(h_stream)?;
        forbid_wait_for(&mut t, stream)?;
        forbid_unsafe_call(&mut t)?;
        stream
    };
    queue::run_stream(d, stream)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamSynchronize(h_stream: CUstream) -> CUresult {
    entry("cuStreamSynchronize", || wait_for_stream(h_stream))
}

/// `CUDA_SUCCESS` when the stream has no work waiting; otherwise `CUDA_ERROR_NOT_READY`, and the work runs now
/// (under the seeded timing, sometimes), so that a later query says done.
#[unsafe(no_mangle)]
pub extern "C" fn cuStreamQuery(h_stream: CUstream) -> CUresult {
    entry("cuStreamQuery", || {
        let d = live()?;
        let stream = {
            let mut t = d.tables();
            let stream = t.stream(h_stream)?;
            forbid_wait_for(&mut t, stream)?;
            if !t.queues.busy(stream) {
                return Ok(());
            }
            stream
        };
        if queue::query_runs(d) {
            queue::run_stream(d, stream)?;
        }
        Err(CUresult::NOT_READY)
    })
}

/// # Safety
/// `ph_event` is null or points to room for one handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventCreate(ph_event: *mut CUevent, flags: u32) -> CUresult {
    entry("cuEventCreate", || {
        let d = live()?;
        if ph_event.is_null() || flags & !EVENT_FLAGS != 0 {
            return Err(CUresult::INVALID_VALUE);
        }
        let mut t = d.tables();
        let handle = t.new_handle();
        t.events.insert(handle, Event { timing: flags & EVENT_DISABLE_TIMING == 0, recorded: None, pending: None });
        // SAFETY: checked non-null.
        unsafe { *ph_event = handle as CUevent };
        Ok(())
    })
}

/// Queues the event's stamp behind the stream's work, or records it as a node of a capture.
#[unsafe(no_mangle)]
pub extern "C" fn cuEventRecord(h_event: CUevent, h_stream: CUstream) -> CUresult {
    entry("cuEventRecord", || {
        let d = live()?;
        let (id, stream) = {
            let t = d.tables();
            let id = h_event as usize;
            if !t.events.contains_key(&id) {
                return Err(CUresult::INVALID_HANDLE);
            }
            (id, t.stream(h_stream)?)
        };
        arm(d, id, stream)
    })
}

/// Submits the record of event `id` on `stream`; while it waits in the queue, the event is pending. (Armed before
/// the submission returns: under the eager timing the record has already run and cleared it.)
fn arm(d: &Driver, id: usize, stream: usize) -> Result {
    let capturing = d.tables().captures.contains_key(&stream);
    if capturing {
        return submit(d, stream, Work::EventRecord(id)).map(drop);
    }
    let seq = {
        let mut t = d.tables();
        if stream == DEFAULT_STREAM {
            super::capture::legacy_stream_used(&mut t)?;
        }
        let seq = queue::push(&mut t, d.config.timing, stream, Work::EventRecord(id));
        if let Some(e) = t.events.get_mut(&id) {
            e.pending = Some((stream, seq));
        }
        seq
    };
    queue::after_push(d, stream, seq)
}

/// The queued record the event waits for, if any.
fn pending(h_event: CUevent) -> Result<Option<(usize, u64)>> {
    let d = live()?;
    d.tables().events.get(&(h_event as usize)).map(|e| e.pending).ok_or(CUresult::INVALID_HANDLE)
}

/// Runs the work before the event's last record.
#[unsafe(no_mangle)]
pub extern "C" fn cuEventSynchronize(h_event: CUevent) -> CUresult {
    entry("cuEventSynchronize", || {
        let d = live()?;
        let waits_for = pending(h_event)?;
        forbid_unsafe_call(&mut d.tables())?;
        match waits_for {
            Some((stream, seq)) => queue::run_until(d, stream, seq),
            None => Ok(()),
        }
    })
}

/// `CUDA_SUCCESS` when the event's last record has run; otherwise `CUDA_ERROR_NOT_READY`, and the work before it
/// runs now (under the seeded timing, sometimes).
#[unsafe(no_mangle)]
pub extern "C" fn cuEventQuery(h_event: CUevent) -> CUresult {
    entry("cuEventQuery", || {
        let d = live()?;
        let Some((stream, seq)) = pending(h_event)? else { return Ok(()) };
        if queue::query_runs(d) {
            queue::run_until(d, stream, seq)?;
        }
        Err(CUresult::NOT_READY)
    })
}

/// Milliseconds of host time between the two records. An event created with `CU_EVENT_DISABLE_TIMING`, or never
/// recorded, is `CUDA_ERROR_INVALID_HANDLE`.
fn elapsed(ms: *mut f32, start: CUevent, end: CUevent) -> Result {
    let d = live()?;
    if ms.is_null() {
        return Err(CUresult::INVALID_VALUE);
    }
    let t = d.tables();
    let stamp = |h: CUevent| -> Result<std::time::Instant> {
        let e = t.events.get(&(h as usize)).ok_or(CUresult::INVALID_HANDLE)?;
        if !e.timing {
            return Err(CUresult::INVALID_HANDLE);
        }
        e.recorded.ok_or(CUresult::INVALID_HANDLE)
    };
    let (a, b) = (stamp(start)?, stamp(end)?);
    let seconds = if b >= a { (b - a).as_secs_f64() } else { -(a - b).as_secs_f64() };
    // SAFETY: checked non-null.
    unsafe { *ms = (seconds * 1e3) as f32 };
    Ok(())
}

/// # Safety
/// `ms` is null or points to a writable `float`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventElapsedTime(ms: *mut f32, start: CUevent, end: CUevent) -> CUresult {
    entry("cuEventElapsedTime", || elapsed(ms, start, end))
}

/// # Safety
/// `ms` is null or points to a writable `float`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventElapsedTime_v2(ms: *mut f32, start: CUevent, end: CUevent) -> CUresult {
    entry("cuEventElapsedTime_v2", || elapsed(ms, start, end))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuEventDestroy_v2(h_event: CUevent) -> CUresult {
    entry("cuEventDestroy_v2", || {
        let d = live()?;
        d.tables().events.remove(&(h_event as usize)).map(drop).ok_or(CUresult::INVALID_HANDLE)
    })
}
