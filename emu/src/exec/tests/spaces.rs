//! State spaces through PTX: local memory and calls (whose parameters live there), generic addresses of shared
//! and local memory, vector accesses, sign extension, `.const` variables, the parameter space's read-only rule,
//! and the randomised schedule.

use super::kit::*;
use crate::exec::{FaultKind, Options};

/// `out[t] = twice(t) + 1` through a `.func` whose argument and result pass through local memory, plus a
/// local array written through a generic address and read back through `.local`.
const CALLS: &str = "
.func (.param .b32 ret) twice(.param .b32 x)
{
\t.reg .b32 %r<3>;
\tld.param.b32 %r1, [x];
\tshl.b32 %r2, %r1, 1;
\tst.param.b32 [ret], %r2;
\tret;
}
.visible .entry calls(.param .u64 out)
{
\t.local .align 16 .b8 depot[32];
\t.reg .b32 %r<12>;
\t.reg .b64 %rd<8>;
\tmov.u32 %r1, %tid.x;
\t{
\t.param .b32 param0;
\tst.param.b32 [param0], %r1;
\t.param .b32 retval0;
\tcall.uni (retval0), twice, (param0);
\tld.param.b32 %r2, [retval0];
\t}
\tadd.s32 %r3, %r2, 1;
\tmov.u64 %rd1, depot;
\tcvta.local.u64 %rd2, %rd1;
\tst.v4.u32 [%rd2+16], {%r3, %r1, %r1, %r1};
\tld.local.v2.u32 {%r4, %r5}, [%rd1+16];
\tld.param.u64 %rd3, [out];
\tmul.wide.u32 %rd4, %r1, 4;
\tadd.s64 %rd5, %rd3, %rd4;
\tst.global.u32 [%rd5], %r4;
\tret;
}
";

#[test]
fn calls_and_local_memory_through_generic_addresses() {
    let d = Device::new();
    let out = d.alloc(64 * 4, false);
    let stats =
        d.launch(&ptx(CALLS), [2, 1, 1], [64, 1, 1], &[out], &options()).unwrap_or_else(|f| panic!("{}", f.report));
    let expected: Vec<u32> = (0..64).map(|t| 2 * t + 1).collect();
    assert_eq!(d.read_u32(out, 64), expected);
    assert!(stats.local_bytes >= 2 * 64 * (16 + 8), "{}", stats.to_json());
}

/// Shared memory through a generic address, a signed byte sign-extended, and a `.const` table.
const GENERIC: &str = "
.const .align 4 .b32 table[4] = {10, 20, 30, 40};
.visible .entry generic(.param .u64 out, .param .u64 bytes)
{
\t.reg .b16 %rs<3>;
\t.reg .b32 %r<12>;
\t.reg .b64 %rd<12>;
\t.shared .align 4 .b32 cell[32];
\tmov.u32 %r1, %tid.x;
\tmov.u64 %rd1, cell;
\tcvta.shared.u64 %rd2, %rd1;
\tmul.wide.u32 %rd3, %r1, 4;
\tadd.s64 %rd4, %rd2, %rd3;
\tst.u32 [%rd4], %r1;
\tld.shared.u32 %r2, [cell+8];
\tbar.sync 0;
\tld.param.u64 %rd5, [bytes];
\tcvt.u64.u32 %rd6, %r1;
\tadd.s64 %rd7, %rd5, %rd6;
\tld.global.s8 %rs1, [%rd7];
\tcvt.s32.s16 %r3, %rs1;
\tand.b32 %r4, %r1, 3;
\tmul.wide.u32 %rd8, %r4, 4;
\tmov.u64 %rd9, table;
\tadd.s64 %rd10, %rd9, %rd8;
\tld.const.u32 %r5, [%rd10];
\tadd.s32 %r6, %r3, %r5;
\tld.param.u64 %rd11, [out];
\tadd.s64 %rd11, %rd11, %rd3;
\tst.global.u32 [%rd11], %r6;
\tret;
}
";

#[test]
fn generic_shared_signed_bytes_and_const_variables() {
    let d = Device::new();
    let out = d.alloc(32 * 4, false);
    let bytes: Vec<u8> = (0..32).map(|i| (i as i8 - 16) as u8).collect();
    let b = d.alloc(32, false);
    d.memory.write(b, &bytes).unwrap();
    let options = Options { racecheck: false, ..options() };
    d.launch(&ptx(GENERIC), [1, 1, 1], [32, 1, 1], &[out, b], &options).unwrap_or_else(|f| panic!("{}", f.report));
    let expected: Vec<u32> = (0..32).map(|t| ((t - 16) + 10 * (t % 4 + 1)) as u32).collect();
    assert_eq!(d.read_u32(out, 32), expected);
}

#[test]
fn a_shared_read_before_the_barrier_that_orders_it_is_a_race() {
    // GENERIC reads cell[2] before `bar.sync`: lane 2's write and the other lanes' reads race.
    let d = Device::new();
    let out = d.alloc(32 * 4, false);
    let b = d.alloc(32, true);
    expect_fault(
        d.launch(&ptx(GENERIC), [1, 1, 1], [32, 1, 1], &[out, b], &options()),
        FaultKind::Race,
        &["shared byte 0x8", "st.u32"],
    );
}

#[test]
fn a_store_to_the_parameter_space_is_a_fault() {
    let text = "
.visible .entry poke(.param .u64 p)
{
\t.reg .b64 %rd<2>;
\tmov.u64 %rd1, 7;
\tst.param.u64 [p], %rd1;
\tret;
}
";
    let d = Device::new();
    expect_fault(
        d.launch(&ptx(text), [1, 1, 1], [1, 1, 1], &[0], &options()),
        FaultKind::IllegalAddress,
        &["read-only param space"],
    );
}

#[test]
fn the_randomised_schedule_gives_the_same_results() {
    // Calls, and a ballot in divergent code, complete alike under any order of lane groups and warps.
    let d = Device::new();
    let out = d.alloc(64 * 4, false);
    let (calls, ballot) = (ptx(CALLS), ptx(super::collectives::ODD_BALLOT));
    for seed in 0..8 {
        let options = Options { schedule_seed: Some(seed), threads: 3, ..options() };
        d.launch(&calls, [3, 1, 1], [64, 1, 1], &[out], &options).unwrap_or_else(|f| panic!("{}", f.report));
        let expected: Vec<u32> = (0..64).map(|t| 2 * t + 1).collect();
        assert_eq!(d.read_u32(out, 64), expected);
        d.launch(&ballot, [1, 1, 1], [32, 1, 1], &[out], &options).unwrap_or_else(|f| panic!("{}", f.report));
        let expected: Vec<u32> = (0..32).map(|l| if l % 2 == 1 { 0x000A_AAAA } else { 0 }).collect();
        assert_eq!(d.read_u32(out, 32), expected);
    }
}

/// Thread t writes word t of the dynamic shared area (after 16 bytes of static shared memory), then reads word
/// `t + offset` after the barrier into `out[t]`.
const DYNAMIC: &str = "
.extern .shared .align 16 .b8 dyn[];
.visible .entry dynamic(.param .u64 out, .param .u64 offset)
{
\t.reg .b32 %r<8>;
\t.reg .b64 %rd<6>;
\t.shared .align 16 .b8 fixed[16];
\tmov.u32 %r1, %tid.x;
\tmov.u32 %r2, dyn;
\tmad.lo.u32 %r3, %r1, 4, %r2;
\tst.shared.u32 [%r3], %r1;
\tst.shared.u32 [fixed], 0;
\tbar.sync 0;
\tld.param.u64 %rd1, [offset];
\tcvt.u32.u64 %r4, %rd1;
\tadd.u32 %r5, %r1, %r4;
\tmad.lo.u32 %r6, %r5, 4, %r2;
\tld.shared.u32 %r7, [%r6];
\tld.param.u64 %rd2, [out];
\tmul.wide.u32 %rd3, %r1, 4;
\tadd.s64 %rd4, %rd2, %rd3;
\tst.global.u32 [%rd4], %r7;
\tret;
}
";

#[test]
fn dynamic_shared_memory_follows_the_static_and_is_bounded() {
    let d = Device::new();
    let out = d.alloc(64 * 4, false);
    let m = ptx(DYNAMIC);
    // Words 64 to 79 are never written: reading them is what this test is about, not an initcheck finding.
    let relaxed = Options { racecheck: false, initcheck: false, ..options() };
    // 64 threads, 80 words of dynamic shared memory: reading 16 ahead stays inside.
    d.launch_shared(&m, [1, 1, 1], [64, 1, 1], 80 * 4, &[out, 16], &relaxed).unwrap_or_else(|f| panic!("{}", f.report));
    let got = d.read_u32(out, 64);
    assert_eq!(got[..48], (16..64).collect::<Vec<u32>>()[..]);
    // 17 ahead: thread 63 reads word 80, the first byte past the block's 16 + 320 bytes.
    expect_fault(
        d.launch_shared(&m, [1, 1, 1], [64, 1, 1], 80 * 4, &[out, 17], &relaxed),
        FaultKind::IllegalAddress,
        &[
            "invalid shared read of 4 bytes at offset 0x150: the block has 336 bytes of shared memory",
            "thread (63, 0, 0)",
        ],
    );
}

#[test]
fn a_local_access_past_the_thread_s_local_memory_is_a_fault() {
    let text = "
.visible .entry past()
{
\t.local .align 4 .b8 depot[8];
\t.reg .b32 %r<2>;
\t.reg .b64 %rd<2>;
\tmov.u64 %rd1, depot;
\tst.local.u32 [%rd1+8], 1;
\tret;
}
";
    let d = Device::new();
    expect_fault(
        d.launch(&ptx(text), [1, 1, 1], [32, 1, 1], &[], &options()),
        FaultKind::IllegalAddress,
        &["invalid local access of 4 bytes at offset 0x8: the thread has 8 bytes of local memory", "st.local.u32"],
    );
}

/// `ld.param.s32` into a 64-bit register, as nvcc writes an `int` parameter used in 64-bit address arithmetic.
const WIDENING: &str = "
.visible .entry widening(.param .u64 out, .param .s32 delta)
{
\t.reg .b64 %rd<4>;
\tld.param.u64 %rd1, [out];
\tld.param.s32 %rd2, [delta];
\tst.global.u64 [%rd1], %rd2;
\tret;
}
";

#[test]
fn a_signed_load_into_a_wider_register_is_sign_extended() {
    let d = Device::new();
    let out = d.alloc(8, false);
    // The parameter buffer holds the s32 in the first 4 bytes of the second 8-byte slot.
    let delta = (-3i32) as u32 as u64;
    d.launch(&ptx(WIDENING), [1, 1, 1], [1, 1, 1], &[out, delta], &options())
        .unwrap_or_else(|f| panic!("{}", f.report));
    let mut got = [0u8; 8];
    d.memory.read(out, &mut got).unwrap();
    assert_eq!(i64::from_le_bytes(got), -3);
}
