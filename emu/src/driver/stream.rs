//! Streams and events. Work runs when it is enqueued, so a stream is always idle by the time a call returns:
//! synchronising waits for nothing, and an event is stamped with the host time at which the work before it ended.

use super::capture::{forbid_unsafe_call, forbid_wait_for};
use super::entry;
use super::error::{CUresult, Result};
use super::state::{Event, Stream, live};
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
        let mut t = d.tables();
        let id = h_stream as usize;
        t.streams.remove(&id).ok_or(CUresult::INVALID_HANDLE)?;
        t.captures.remove(&id);
        Ok(())
    })
}

fn wait_for_stream(h_stream: CUstream) -> Result {
    let d = live()?;
    let mut t = d.tables();
    let stream = t.stream(h_stream)?;
    forbid_wait_for(&mut t, stream)?;
    forbid_unsafe_call(&mut t)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamSynchronize(h_stream: CUstream) -> CUresult {
    entry("cuStreamSynchronize", || wait_for_stream(h_stream))
}

/// Every stream is idle between calls: `CUDA_SUCCESS`.
#[unsafe(no_mangle)]
pub extern "C" fn cuStreamQuery(h_stream: CUstream) -> CUresult {
    entry("cuStreamQuery", || {
        let d = live()?;
        let mut t = d.tables();
        let stream = t.stream(h_stream)?;
        forbid_wait_for(&mut t, stream)
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
        t.events.insert(handle, Event { timing: flags & EVENT_DISABLE_TIMING == 0, recorded: None });
        // SAFETY: checked non-null.
        unsafe { *ph_event = handle as CUevent };
        Ok(())
    })
}

/// Stamps the event now (the work before it has run), or records the stamp as a node of a capture.
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
        submit(d, stream, Work::EventRecord(id))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuEventSynchronize(h_event: CUevent) -> CUresult {
    entry("cuEventSynchronize", || {
        let d = live()?;
        let mut t = d.tables();
        if !t.events.contains_key(&(h_event as usize)) {
            return Err(CUresult::INVALID_HANDLE);
        }
        forbid_unsafe_call(&mut t)
    })
}

/// The event's work has always completed: `CUDA_SUCCESS`.
#[unsafe(no_mangle)]
pub extern "C" fn cuEventQuery(h_event: CUevent) -> CUresult {
    entry("cuEventQuery", || {
        let d = live()?;
        d.tables().events.get(&(h_event as usize)).map(drop).ok_or(CUresult::INVALID_HANDLE)
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
