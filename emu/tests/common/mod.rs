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

/// `out[i] = a[i] + b[i]` for `i < n`, at most 256 threads a block; `read_counter` stores the module variable
/// `counter` (initially 7) to `out[0]`.
#[allow(dead_code)] // not every test file launches it
pub const VADD_PTX: &str = r#"
//
// Hand-written in the form nvcc emits.
//
.version 8.0
.target sm_80
.address_size 64

.global .align 4 .u32 counter = 7;

.visible .entry vadd(
    .param .u64 vadd_param_0,
    .param .u64 vadd_param_1,
    .param .u64 vadd_param_2,
    .param .u32 vadd_param_3
)
.maxntid 256, 1, 1
{
    .reg .pred %p<2>;
    .reg .b32 %r<6>;
    .reg .f32 %f<4>;
    .reg .b64 %rd<11>;

    ld.param.u64 %rd1, [vadd_param_0];
    ld.param.u64 %rd2, [vadd_param_1];
    ld.param.u64 %rd3, [vadd_param_2];
    ld.param.u32 %r2, [vadd_param_3];
    mov.u32 %r3, %ctaid.x;
    mov.u32 %r4, %ntid.x;
    mov.u32 %r5, %tid.x;
    mad.lo.s32 %r1, %r3, %r4, %r5;
    setp.ge.s32 %p1, %r1, %r2;
    @%p1 bra $L__BB0_2;
    cvta.to.global.u64 %rd4, %rd1;
    mul.wide.s32 %rd5, %r1, 4;
    add.s64 %rd6, %rd4, %rd5;
    cvta.to.global.u64 %rd7, %rd2;
    add.s64 %rd8, %rd7, %rd5;
    ld.global.f32 %f1, [%rd6];
    ld.global.f32 %f2, [%rd8];
    add.f32 %f3, %f1, %f2;
    cvta.to.global.u64 %rd9, %rd3;
    add.s64 %rd10, %rd9, %rd5;
    st.global.f32 [%rd10], %f3;
$L__BB0_2:
    ret;
}

.visible .entry read_counter(
    .param .u64 read_counter_param_0
)
{
    .reg .b32 %r<2>;
    .reg .b64 %rd<3>;

    ld.param.u64 %rd1, [read_counter_param_0];
    cvta.to.global.u64 %rd2, %rd1;
    ld.global.u32 %r1, [counter];
    st.global.u32 [%rd2], %r1;
    ret;
}
"#;
