//! The primary context: retained and released by count, made current per thread. Every call that works in the
//! context needs it current on the calling thread (`CUDA_ERROR_INVALID_CONTEXT` otherwise), as on a real driver.

use super::capture::forbid_unsafe_call;
use super::entry;
use super::error::{CUresult, Result};
use super::state::{self, PRIMARY_CONTEXT, driver, live};
use super::{CUcontext, CUdevice};

fn check_device(dev: CUdevice) -> Result {
    if dev == 0 { Ok(()) } else { Err(CUresult::INVALID_DEVICE) }
}

/// # Safety
/// `pctx` is null or points to room for one handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(pctx: *mut CUcontext, dev: CUdevice) -> CUresult {
    entry("cuDevicePrimaryCtxRetain", || {
        let d = driver()?;
        if pctx.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        check_device(dev)?;
        d.tables().primary_refs += 1;
        // SAFETY: checked non-null.
        unsafe { *pctx = PRIMARY_CONTEXT as CUcontext };
        Ok(())
    })
}

fn release(dev: CUdevice) -> Result {
    let d = driver()?;
    check_device(dev)?;
    let mut t = d.tables();
    t.primary_refs = t.primary_refs.checked_sub(1).ok_or(CUresult::INVALID_CONTEXT)?;
    Ok(())
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) -> CUresult {
    entry("cuDevicePrimaryCtxRelease_v2", || release(dev))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDevicePrimaryCtxRelease(dev: CUdevice) -> CUresult {
    entry("cuDevicePrimaryCtxRelease", || release(dev))
}

/// Binds the primary context to this thread (`NULL` unbinds).
#[unsafe(no_mangle)]
pub extern "C" fn cuCtxSetCurrent(ctx: CUcontext) -> CUresult {
    entry("cuCtxSetCurrent", || {
        driver()?;
        match ctx as usize {
            0 => state::set_current(false),
            PRIMARY_CONTEXT => state::set_current(true),
            _ => return Err(CUresult::INVALID_CONTEXT),
        }
        Ok(())
    })
}

/// # Safety
/// `pctx` is null or points to room for one handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetCurrent(pctx: *mut CUcontext) -> CUresult {
    entry("cuCtxGetCurrent", || {
        driver()?;
        if pctx.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        let ctx = if state::is_current() { PRIMARY_CONTEXT } else { 0 };
        // SAFETY: checked non-null.
        unsafe { *pctx = ctx as CUcontext };
        Ok(())
    })
}

/// Waits for the device: runs the work waiting on every stream.
#[unsafe(no_mangle)]
pub extern "C" fn cuCtxSynchronize() -> CUresult {
    entry("cuCtxSynchronize", || {
        let d = live()?;
        forbid_unsafe_call(&mut d.tables())?;
        super::queue::run_all(d)
    })
}
