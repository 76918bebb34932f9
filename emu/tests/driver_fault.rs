//! A kernel that stores outside every allocation: the launch fails with `CUDA_ERROR_ILLEGAL_ADDRESS`, which stays
//! the context's error for every later call that works in it (a process of its own: the context is poisoned).

mod common;

use common::{ok, setup};
use glov_emu::driver::CUresult;
use glov_emu::driver::device::cuDeviceGetAttribute;
use glov_emu::driver::error::cuGetErrorName;
use glov_emu::driver::launch::cuLaunchKernel;
use glov_emu::driver::mem::cuMemAlloc_v2;
use glov_emu::driver::module::{cuModuleGetFunction, cuModuleLoadData};
use glov_emu::driver::stream::cuStreamSynchronize;
use std::ffi::{CString, c_void};
use std::ptr::null_mut;

const PTX: &str = r#"
.version 8.0
.target sm_80
.address_size 64

.visible .entry store(
    .param .u64 store_param_0
)
{
    .reg .b32 %r<2>;
    .reg .b64 %rd<2>;

    ld.param.u64 %rd1, [store_param_0];
    mov.u32 %r1, 1;
    st.global.u32 [%rd1], %r1;
    ret;
}
"#;

#[test]
fn an_illegal_address_poisons_the_context() {
    setup();
    let text = CString::new(PTX).unwrap();
    let mut module = null_mut();
    ok(unsafe { cuModuleLoadData(&mut module, text.as_ptr() as *const c_void) });
    let mut f = null_mut();
    let name = CString::new("store").unwrap();
    ok(unsafe { cuModuleGetFunction(&mut f, module, name.as_ptr()) });
    let mut nowhere = 0x10u64;
    let mut params = [&mut nowhere as *mut u64 as *mut c_void];
    // The launch is queued: its fault surfaces at the synchronisation that runs it, then sticks.
    ok(unsafe { cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, null_mut(), params.as_mut_ptr(), null_mut()) });
    let synchronised = cuStreamSynchronize(null_mut());
    assert_eq!(synchronised, CUresult::ILLEGAL_ADDRESS);
    assert_eq!(cuStreamSynchronize(null_mut()), CUresult::ILLEGAL_ADDRESS);
    let mut p = 0;
    assert_eq!(unsafe { cuMemAlloc_v2(&mut p, 16) }, CUresult::ILLEGAL_ADDRESS);
    let mut major = 0;
    ok(unsafe { cuDeviceGetAttribute(&mut major, 75, 0) });
    let mut s = std::ptr::null();
    ok(unsafe { cuGetErrorName(synchronised, &mut s) });
}
