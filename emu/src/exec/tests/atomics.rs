//! Atomics from many blocks on several host threads: every kind the kernels use, counted exactly.

use super::kit::*;

const ATOMICS: &str = "
.visible .entry atomics(.param .u64 counters)
{
\t.reg .pred %p<3>;
\t.reg .b32 %r<10>;
\t.reg .b64 %rd<2>;
\t.shared .align 4 .u32 block_sum;
\tmov.u32 %r1, %tid.x;
\tld.param.u64 %rd1, [counters];
\tatom.global.add.u32 %r2, [%rd1], 1;
\tred.global.add.f32 [%rd1+4], 0f3F800000;
\tsub.s32 %r3, %r1, 64;
\tatom.global.max.s32 %r4, [%rd1+8], %r3;
\tatom.global.inc.u32 %r5, [%rd1+12], 9;
\tatom.global.cas.b32 %r6, [%rd1+16], 0, 1;
\tsetp.eq.u32 %p2, %r6, 0;
\t@%p2 red.global.add.u32 [%rd1+24], 1;
\tsetp.eq.u32 %p1, %r1, 0;
\t@%p1 st.shared.u32 [block_sum], 0;
\tbar.sync 0;
\tatom.shared.add.u32 %r7, [block_sum], 2;
\tbar.sync 0;
\t@%p1 ld.shared.u32 %r8, [block_sum];
\t@%p1 red.global.add.u32 [%rd1+20], %r8;
\tret;
}
";

#[test]
fn atomics_from_many_blocks_on_four_host_threads_count_exactly() {
    let d = Device::new();
    let counters = d.alloc(28, true);
    d.memory.write(counters + 8, &(-1000i32).to_le_bytes()).unwrap();
    let options = crate::exec::Options { threads: 4, ..options() };
    let stats = d
        .launch(&ptx(ATOMICS), [64, 1, 1], [128, 1, 1], &[counters], &options)
        .unwrap_or_else(|f| panic!("{}", f.report));
    let c = d.read_u32(counters, 7);
    let threads = 64 * 128;
    assert_eq!(c[0], threads);
    assert_eq!(f32::from_bits(c[1]), threads as f32);
    assert_eq!(c[2] as i32, 63);
    // inc wraps to 0 after 9: every tenth increment.
    assert_eq!(c[3], threads % 10);
    assert_eq!(c[4], 1);
    assert_eq!(c[5], 64 * 128 * 2);
    // Exactly one thread saw the compare-and-swap succeed.
    assert_eq!(c[6], 1);
    assert_eq!(stats.atomics, 6 * threads as u64 + 64 + 1);
    // Six instructions over 256 warps, the block totals by 64 single lanes, the winner of the swap.
    assert_eq!(stats.atomic_requests, 6 * 256 + 64 + 1);
}
