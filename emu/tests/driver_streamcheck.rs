//! A pinned staging buffer the host writes again before the copy that reads it has run: a streamcheck error at the
//! synchronisation that runs the copy, sticky as a fault. (Its own test binary: the error ends the context.)

mod common;

use common::{ok, setup};
use glov_emu::driver::CUresult;
use glov_emu::driver::mem::*;
use glov_emu::driver::stream::*;
use std::ffi::c_void;
use std::ptr::null_mut;

#[test]
fn a_pinned_source_written_before_its_copy_ran_is_reported() {
    setup();
    let mut s = null_mut();
    ok(unsafe { cuStreamCreate(&mut s, 1) });
    let mut a = 0;
    ok(unsafe { cuMemAlloc_v2(&mut a, 64) });
    let mut p: *mut c_void = null_mut();
    ok(unsafe { cuMemAllocHost_v2(&mut p, 64) });
    let staged = unsafe { std::slice::from_raw_parts_mut(p as *mut u8, 64) };
    staged.fill(1);
    ok(unsafe { cuMemcpyHtoDAsync_v2(a, p, 64, s) });
    staged[63] = 2;
    assert_eq!(cuStreamSynchronize(s), CUresult::LAUNCH_FAILED);
    assert_eq!(cuStreamSynchronize(s), CUresult::LAUNCH_FAILED, "sticky");
}
