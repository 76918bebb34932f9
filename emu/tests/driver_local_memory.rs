//! Local memory is set aside at the first launch that needs it, for every thread the device holds at once: when
//! that much is not free the launch fails with `CUDA_ERROR_OUT_OF_MEMORY`, and once it is set aside it shows as
//! used (a process of its own: the test fills the device's memory).

mod common;

use common::{ok, setup};
use glov_emu::driver::CUresult;
use glov_emu::driver::device::cuDeviceGetAttribute;
use glov_emu::driver::launch::cuLaunchKernel;
use glov_emu::driver::mem::{cuMemAlloc_v2, cuMemFree_v2, cuMemGetInfo_v2};
use glov_emu::driver::module::{cuModuleGetFunction, cuModuleLoadData};
use glov_emu::driver::stream::cuStreamSynchronize;
use std::ffi::{CString, c_void};
use std::ptr::null_mut;

/// A kernel with 1 KiB of local memory per thread (an array it indexes at run time).
const PTX: &str = r#"
.version 8.0
.target sm_80
.address_size 64

.visible .entry scratch(
    .param .u64 scratch_param_0
)
{
    .local .align 4 .b8 depot[1024];
    .reg .b32 %r<3>;
    .reg .b64 %rd<4>;

    mov.u64 %rd1, depot;
    mov.u32 %r1, 7;
    st.local.u32 [%rd1+512], %r1;
    ld.local.u32 %r2, [%rd1+512];
    ld.param.u64 %rd2, [scratch_param_0];
    cvta.to.global.u64 %rd3, %rd2;
    st.global.u32 [%rd3], %r2;
    ret;
}
"#;

#[test]
fn local_memory_comes_out_of_free_memory_at_the_first_launch() {
    // SAFETY: the only test of this process, before any thread reads the environment.
    unsafe { std::env::set_var("GLOV_EMU_MEMORY", "0.5") };
    setup();
    let text = CString::new(PTX).unwrap();
    let mut module = null_mut();
    ok(unsafe { cuModuleLoadData(&mut module, text.as_ptr() as *const c_void) });
    let mut f = null_mut();
    let name = CString::new("scratch").unwrap();
    ok(unsafe { cuModuleGetFunction(&mut f, module, name.as_ptr()) });
    let (mut sms, mut per_sm) = (0, 0);
    ok(unsafe { cuDeviceGetAttribute(&mut sms, 16, 0) });
    ok(unsafe { cuDeviceGetAttribute(&mut per_sm, 39, 0) });
    let needed = 1024 * sms as usize * per_sm as usize;

    // Everything but half of what the kernel's local memory needs is taken: its launch cannot start.
    let (mut free, mut total) = (0usize, 0usize);
    ok(unsafe { cuMemGetInfo_v2(&mut free, &mut total) });
    let mut hog = 0u64;
    ok(unsafe { cuMemAlloc_v2(&mut hog, free - needed / 2) });
    let mut out = 0u64;
    ok(unsafe { cuMemAlloc_v2(&mut out, 4) });
    let mut params = [&mut out as *mut u64 as *mut c_void];
    let launch = |params: &mut [*mut c_void; 1]| unsafe {
        cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, null_mut(), params.as_mut_ptr(), null_mut())
    };
    assert_eq!(launch(&mut params), CUresult::OUT_OF_MEMORY);

    // With the memory given back the launch runs, and the local memory stays set aside.
    ok(cuMemFree_v2(hog));
    let mut before = 0usize;
    ok(unsafe { cuMemGetInfo_v2(&mut before, &mut total) });
    ok(launch(&mut params));
    ok(cuStreamSynchronize(null_mut()));
    let mut after = 0usize;
    ok(unsafe { cuMemGetInfo_v2(&mut after, &mut total) });
    assert!(before - after >= needed, "{needed} bytes of local memory set aside: free went from {before} to {after}");
    ok(launch(&mut params));
    let mut again = 0usize;
    ok(unsafe { cuMemGetInfo_v2(&mut again, &mut total) });
    assert_eq!(again, after, "a second launch sets nothing more aside");
}
