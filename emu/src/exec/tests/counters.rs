//! The profiler's counters: global sectors per request for coalesced and strided stores, shared-memory bank
//! conflicts for strided, wide and broadcast accesses.

use super::kit::*;

/// One warp: thread t stores to `out[t * stride]` and to word `t * stride` of shared memory (4-byte accesses),
/// then 8- and 16-byte shared stores at `t * 8` and `t * 16`, and a load every lane makes from word 0.
const STRIDED: &str = "
.visible .entry strided(.param .u64 out, .param .u64 stride)
{
\t.reg .b32 %r<12>;
\t.reg .b64 %rd<6>;
\t.shared .align 16 .b8 buf[4096];
\tmov.u32 %r1, %tid.x;
\tld.param.u64 %rd1, [out];
\tld.param.u64 %rd2, [stride];
\tcvt.u32.u64 %r2, %rd2;
\tmul.lo.u32 %r3, %r1, %r2;
\tmul.wide.u32 %rd3, %r3, 4;
\tadd.s64 %rd4, %rd1, %rd3;
\tst.global.u32 [%rd4], %r1;
\tmov.u32 %r4, buf;
\tmad.lo.u32 %r5, %r3, 4, %r4;
\tst.shared.u32 [%r5], %r1;
\tbar.sync 0;
\tmad.lo.u32 %r6, %r1, 8, %r4;
\tst.shared.v2.u32 [%r6], {%r1, %r1};
\tbar.sync 0;
\tmad.lo.u32 %r7, %r1, 16, %r4;
\tst.shared.v4.u32 [%r7], {%r1, %r1, %r1, %r1};
\tbar.sync 0;
\tld.shared.u32 %r8, [buf];
\tret;
}
";

fn run(stride: u64) -> crate::exec::Stats {
    let d = Device::new();
    let out = d.alloc(32 * 32 * 4, false);
    d.launch(&ptx(STRIDED), [1, 1, 1], [32, 1, 1], &[out, stride], &options())
        .unwrap_or_else(|f| panic!("{}", f.report))
}

#[test]
fn coalesced_and_strided_stores_touch_four_and_thirty_two_sectors() {
    let mut coalesced = run(1);
    assert_eq!(
        (coalesced.global_store_requests, coalesced.global_store_bytes, coalesced.global_store_sectors),
        (1, 128, 4)
    );
    // The launch's footprint: the four sectors stored, none loaded (for the L2 model).
    let out = coalesced.footprint.stores.sorted().to_vec();
    assert_eq!(out.len(), 4);
    assert!(out.windows(2).all(|w| w[1] == w[0] + 1) && coalesced.footprint.loads.sorted().is_empty());
    let by_two = run(2);
    assert_eq!(by_two.global_store_sectors, 8);
    let strided = run(8);
    assert_eq!((strided.global_store_requests, strided.global_store_bytes, strided.global_store_sectors), (1, 128, 32));
    assert!(
        coalesced.to_json().contains("\"sectors_per_request\": 4.000, \"efficiency\": 1.000"),
        "{}",
        coalesced.to_json()
    );
    assert!(
        strided.to_json().contains("\"sectors_per_request\": 32.000, \"efficiency\": 0.125"),
        "{}",
        strided.to_json()
    );
}

#[test]
fn bank_conflicts_of_strided_wide_and_broadcast_shared_accesses() {
    // Stride 1: the 4-byte store takes one wavefront; the 8-byte store two phases of one; the 16-byte store four
    // phases of one; the broadcast load one. No conflicts.
    let s = run(1);
    assert_eq!((s.shared_store_requests, s.shared_load_requests), (3, 1));
    assert_eq!((s.shared_phases, s.shared_wavefronts, s.bank_conflicts()), (1 + 2 + 4 + 1, 1 + 2 + 4 + 1, 0));
    // Stride 2: two words per bank for the 4-byte store (one extra wavefront).
    assert_eq!(run(2).bank_conflicts(), 1);
    // Stride 32: every lane in bank 0, 32 wavefronts.
    let s = run(32);
    assert_eq!((s.shared_wavefronts, s.bank_conflicts()), (32 + 2 + 4 + 1, 31));
    assert!(s.to_json().contains("\"bank_conflicts\": 31"), "{}", s.to_json());
}
