//! A download of device bytes no kernel, copy or fill wrote: an initcheck error naming the allocation and offset.
//! (Its own test binary: the error ends the context.)

mod common;

use common::{ok, setup};
use glov_emu::driver::CUresult;
use glov_emu::driver::mem::*;
use std::ffi::c_void;

#[test]
fn a_download_of_bytes_never_written_is_reported() {
    setup();
    let mut a = 0;
    ok(unsafe { cuMemAlloc_v2(&mut a, 64) });
    ok(cuMemsetD8_v2(a, 0, 60));
    let mut out = vec![0u8; 64];
    ok(unsafe { cuMemcpyDtoH_v2(out.as_mut_ptr() as *mut c_void, a, 60) });
    assert_eq!(unsafe { cuMemcpyDtoH_v2(out.as_mut_ptr() as *mut c_void, a, 64) }, CUresult::LAUNCH_FAILED);
}
