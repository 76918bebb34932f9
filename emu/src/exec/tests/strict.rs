//! The checks that make the emulator as unforgiving as a GPU: global-memory races inside a block, accesses that
//! leave the shared array or the tensor their address comes from, and registers that start undefined.

use super::kit::{Device, expect_fault, options, ptx};
use crate::exec::FaultKind;

/// Thread `t` writes `scratch[t]`, then (after the barrier, unless it is removed) reads its neighbour's
/// `scratch[t ^ 1]` and stores it to `out[t]`.
const EXCHANGE: &str = r#"
.visible .entry exchange(.param .u64 scratch, .param .u64 out)
{
    .reg .b32 %r<5>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [scratch];
    ld.param.u64 %rd2, [out];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd4, %rd1, %rd3;
    st.global.u32 [%rd4], %r1;
    BARRIER
    xor.b32 %r2, %r1, 1;
    mul.wide.u32 %rd5, %r2, 4;
    add.s64 %rd6, %rd1, %rd5;
    ld.global.u32 %r3, [%rd6];
    add.s64 %rd7, %rd2, %rd3;
    st.global.u32 [%rd7], %r3;
    ret;
}
"#;

#[test]
fn threads_passing_data_through_global_scratch_need_a_barrier() {
    let d = Device::new();
    let (scratch, out) = (d.alloc(256, false), d.alloc(256, false));
    let with = ptx(&EXCHANGE.replace("BARRIER", "bar.sync 0;"));
    d.launch(&with, [1, 1, 1], [64, 1, 1], &[scratch, out], &options()).unwrap_or_else(|f| panic!("{}", f.report));
    assert_eq!(d.read_u32(out, 4), [1, 0, 3, 2]);
    // Without it, lanes of one warp exchange through memory with nothing ordering them.
    let without = ptx(&EXCHANGE.replace("BARRIER", ""));
    expect_fault(
        d.launch(&without, [1, 1, 1], [64, 1, 1], &[scratch, out], &options()),
        FaultKind::Race,
        &["racecheck: read of global byte", "races with a write by thread", "in kernel `exchange`"],
    );
    // A __syncwarp orders the lanes of a warp; a shuffle does not.
    let synced = ptx(&EXCHANGE.replace("BARRIER", "bar.warp.sync -1;"));
    d.launch(&synced, [1, 1, 1], [64, 1, 1], &[scratch, out], &options()).unwrap_or_else(|f| panic!("{}", f.report));
    let shuffled = ptx(&EXCHANGE.replace("BARRIER", "shfl.sync.idx.b32 %r4, %r1, 0, 31, -1;"));
    expect_fault(
        d.launch(&shuffled, [1, 1, 1], [64, 1, 1], &[scratch, out], &options()),
        FaultKind::Race,
        &["racecheck: read of global byte"],
    );
}

/// Two shared arrays side by side; thread `t` writes `a[t + SHIFT]` (16 words in `a`, 16 in `b`).
const NEIGHBOURS: &str = r#"
.visible .entry neighbours(.param .u64 out)
{
    .shared .align 4 .b8 a[64];
    .shared .align 4 .b8 b[64];
    .reg .b32 %r<6>;
    .reg .b64 %rd<4>;
    mov.u32 %r1, %tid.x;
    add.u32 %r2, %r1, SHIFT;
    shl.b32 %r3, %r2, 2;
    mov.u32 %r4, a;
    add.u32 %r5, %r4, %r3;
    st.shared.u32 [%r5], %r1;
    ret;
}
"#;

#[test]
fn an_index_that_overruns_one_shared_array_into_the_next_is_a_memcheck_error() {
    let d = Device::new();
    let out = d.alloc(4, false);
    d.launch(&ptx(&NEIGHBOURS.replace("SHIFT", "0")), [1, 1, 1], [16, 1, 1], &[out], &options())
        .unwrap_or_else(|f| panic!("{}", f.report));
    expect_fault(
        d.launch(&ptx(&NEIGHBOURS.replace("SHIFT", "1")), [1, 1, 1], [16, 1, 1], &[out], &options()),
        FaultKind::IllegalAddress,
        &["memcheck: invalid shared write of 4 bytes at offset 0x40", "outside the shared array", "64 bytes"],
    );
}

/// Thread `t` stores to `x[t + STRIDE]`.
const WALK: &str = r#"
.visible .entry walk(.param .u64 x)
{
    .reg .b32 %r<3>;
    .reg .b64 %rd<5>;
    ld.param.u64 %rd1, [x];
    cvta.to.global.u64 %rd2, %rd1;
    mov.u32 %r1, %tid.x;
    add.u32 %r2, %r1, STRIDE;
    mul.wide.u32 %rd3, %r2, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r1;
    ret;
}
"#;

#[test]
fn an_access_through_a_pointer_parameter_that_lands_in_another_tensor_is_a_memcheck_error() {
    let d = Device::new();
    let x = d.alloc(64, false);
    let neighbour = d.alloc(1 << 20, false);
    let words_away = (neighbour - x) / 4;
    d.launch(&ptx(&WALK.replace("STRIDE", "0")), [1, 1, 1], [16, 1, 1], &[x], &options())
        .unwrap_or_else(|f| panic!("{}", f.report));
    expect_fault(
        d.launch(&ptx(&WALK.replace("STRIDE", &words_away.to_string())), [1, 1, 1], [16, 1, 1], &[x], &options()),
        FaultKind::IllegalAddress,
        &["its address comes from the pointer parameter `x`", "but lands in another allocation, at offset 0"],
    );
}

#[test]
fn registers_start_as_nan_bytes_unless_poison_is_off() {
    const READ_UNSET: &str = r#"
.visible .entry unset(.param .u64 out)
{
    .reg .b32 %r<2>;
    .reg .b64 %rd<3>;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    st.global.u32 [%rd2], %r1;
    ret;
}
"#;
    let d = Device::new();
    let out = d.alloc(4, false);
    let m = ptx(READ_UNSET);
    d.launch(&m, [1, 1, 1], [1, 1, 1], &[out], &options()).unwrap();
    assert_eq!(d.read_u32(out, 1), [u32::MAX]);
    let zeroed = crate::exec::Options { poison: false, ..options() };
    d.launch(&m, [1, 1, 1], [1, 1, 1], &[out], &zeroed).unwrap();
    assert_eq!(d.read_u32(out, 1), [0]);
}
