//! What every driver test starts with.

use glov_emu::driver::CUresult;
use glov_emu::driver::context::{cuCtxSetCurrent, cuDevicePrimaryCtxRetain};
use glov_emu::driver::device::cuInit;

#[track_caller]
pub fn ok(r: CUresult) {
    assert_eq!(r, CUresult::SUCCESS);
}

/// Initialises the driver and makes the primary context current on this thread.
pub fn setup() {
    ok(cuInit(0));
    let mut ctx = std::ptr::null_mut();
    ok(unsafe { cuDevicePrimaryCtxRetain(&mut ctx, 0) });
    ok(cuCtxSetCurrent(ctx));
}
