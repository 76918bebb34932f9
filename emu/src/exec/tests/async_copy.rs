//! `ldmatrix` against the PTX ISA's fragment layout, written out here lane by lane, and `cp.async`: data that lands
//! at the wait, zero fill, groups, and the reports for reading a copy in flight, for reading another thread's copy
//! without a barrier, and for exiting without waiting.

use super::kit::*;
use crate::exec::FaultKind;

/// Shared `tile` filled with 16-bit values equal to their element index (2,048 of them, 16 words per thread of a
/// 64-thread block), then rows gathered by `ldmatrix`: lane `l` points at row `(5 l) % 32` of a tile whose rows are
/// `pitch` bytes apart; each lane stores the 4 registers of `x4` and of `x4.trans`, then those of `x2` and `x1`.
fn ldmatrix_kernel() -> crate::ir::Module {
    ptx("
.visible .entry ldm(.param .u64 out, .param .u32 pitch)
{
\t.reg .b32 %r<40>;
\t.reg .b64 %rd<8>;
\t.reg .pred %p<2>;
\t.shared .align 16 .b8 tile[4096];
\tmov.u32 %r0, %tid.x;
\tmov.u32 %r1, 0;
\tshl.b32 %r2, %r0, 4;
\tmov.u32 %r6, tile;
FILL:
\tadd.u32 %r3, %r2, %r1;
\tmad.lo.u32 %r4, %r3, 131074, 65536;
\tshl.b32 %r5, %r3, 2;
\tadd.u32 %r7, %r6, %r5;
\tst.shared.u32 [%r7], %r4;
\tadd.u32 %r1, %r1, 1;
\tsetp.lt.u32 %p1, %r1, 16;
\t@%p1 bra FILL;
\tbar.sync 0;
\tsetp.ge.u32 %p1, %r0, 32;
\t@%p1 bra DONE;
\tmul.lo.u32 %r8, %r0, 5;
\tand.b32 %r8, %r8, 31;
\tld.param.u32 %r9, [pitch];
\tmad.lo.u32 %r10, %r8, %r9, %r6;
\tldmatrix.sync.aligned.m8n8.x4.shared.b16 {%r11, %r12, %r13, %r14}, [%r10];
\tldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%r15, %r16, %r17, %r18}, [%r10];
\tldmatrix.sync.aligned.m8n8.x2.shared.b16 {%r19, %r20}, [%r10];
\tldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 %r21, [%r10];
\tld.param.u64 %rd1, [out];
\tmul.wide.u32 %rd2, %r0, 48;
\tadd.s64 %rd3, %rd1, %rd2;
\tst.global.v4.u32 [%rd3], {%r11, %r12, %r13, %r14};
\tst.global.v4.u32 [%rd3+16], {%r15, %r16, %r17, %r18};
\tst.global.v4.u32 [%rd3+32], {%r19, %r20, %r21, %r21};
DONE:
\tret;
}
")
}

fn run_ldmatrix(pitch: u32) -> (Vec<u32>, crate::exec::Stats) {
    let d = Device::new();
    let out = d.alloc(32 * 48, false);
    let stats = d
        .launch(&ldmatrix_kernel(), [1, 1, 1], [64, 1, 1], &[out, pitch as u64], &options())
        .unwrap_or_else(|f| panic!("{}", f.report));
    (d.read_u32(out, 32 * 12), stats)
}

#[test]
fn ldmatrix_gives_the_fragment_layout_plain_and_transposed() {
    for pitch in [16u32, 48, 64] {
        let (got, _) = run_ldmatrix(pitch);
        // Row `r` of matrix `j` comes from the address of lane 8 j + r: tile row (5 (8 j + r)) % 32, whose
        // element `c` holds its own index in the tile.
        let elem = |j: usize, r: usize, c: usize| {
            let row = (5 * (8 * j + r)) % 32;
            (row * pitch as usize / 2 + c) as u32
        };
        let pair = |lo: u32, hi: u32| lo | hi << 16;
        for lane in 0..32 {
            let (g, c) = (lane / 4, 2 * (lane % 4));
            for j in 0..4 {
                let plain = pair(elem(j, g, c), elem(j, g, c + 1));
                let trans = pair(elem(j, c, g), elem(j, c + 1, g));
                assert_eq!(got[lane * 12 + j], plain, "pitch {pitch}: x4 matrix {j}, lane {lane}");
                assert_eq!(got[lane * 12 + 4 + j], trans, "pitch {pitch}: x4.trans matrix {j}, lane {lane}");
            }
            for j in 0..2 {
                assert_eq!(got[lane * 12 + 8 + j], pair(elem(j, g, c), elem(j, g, c + 1)), "x2 matrix {j}");
            }
            assert_eq!(got[lane * 12 + 10], pair(elem(0, c, g), elem(0, c + 1, g)), "x1.trans, lane {lane}");
        }
    }
}

#[test]
fn ldmatrix_counts_bank_conflicts_of_its_rows() {
    // 16-byte rows: the 8 rows of a phase start in 8 different groups of 4 banks. 64-byte rows: only 2 groups, 4
    // rows on each. Two x4 loads take 4 phases each, one x2 2 and one x1 1: 11 phases, 3 more wavefronts each at
    // a pitch of 64 bytes.
    let (_, dense) = run_ldmatrix(16);
    let (_, strided) = run_ldmatrix(64);
    assert_eq!(dense.shared_phases, strided.shared_phases);
    assert_eq!(strided.shared_wavefronts - dense.shared_wavefronts, 11 * 3);
    // The fill's stores (lanes 64 bytes apart: 2 banks, 16 wavefronts) take all of the dense run's conflicts: 2
    // warps x 16 stores x 15.
    assert_eq!(dense.shared_wavefronts - dense.shared_phases, 2 * 16 * 15, "dense rows conflict nowhere");
}

#[test]
fn ldmatrix_outside_shared_memory_is_a_memcheck_error() {
    let d = Device::new();
    let out = d.alloc(32 * 48, false);
    // Lane 31 points at row 27 (5 x 31 % 32): 27 x 160 + 16 bytes run past the 4,096-byte tile.
    expect_fault(
        d.launch(&ldmatrix_kernel(), [1, 1, 1], [64, 1, 1], &[out, 160], &options()),
        FaultKind::IllegalAddress,
        &["invalid shared read of 16 bytes", "ldmatrix.sync.aligned.m8n8.x4.shared.b16"],
    );
}

/// 64 threads copy 16 bytes each from `src` into `buf` with `cp.async`; `body` follows (it may read `%r2`, the
/// thread's shared address, `%r3`, its right neighbour's, and must store 16 bytes per thread at `%rd3`).
fn copy_kernel(body: &str) -> crate::ir::Module {
    ptx(&format!(
        "
.visible .entry cpa(.param .u64 src, .param .u64 out)
{{
\t.reg .b32 %r<20>;
\t.reg .b64 %rd<8>;
\t.shared .align 16 .b8 buf[2048];
\tmov.u32 %r0, %tid.x;
\tmov.u32 %r1, buf;
\tshl.b32 %r4, %r0, 4;
\tadd.u32 %r2, %r1, %r4;
\tadd.u32 %r5, %r0, 1;
\tand.b32 %r5, %r5, 63;
\tshl.b32 %r5, %r5, 4;
\tadd.u32 %r3, %r1, %r5;
\tld.param.u64 %rd1, [src];
\tmul.wide.u32 %rd2, %r0, 16;
\tadd.s64 %rd4, %rd1, %rd2;
\tld.param.u64 %rd5, [out];
\tadd.s64 %rd3, %rd5, %rd2;
{body}
\tret;
}}
"
    ))
}

fn run_copy(body: &str) -> (Result<crate::exec::Stats, crate::exec::Fault>, Device, u64) {
    let d = Device::new();
    let src = d.alloc(64 * 16, false);
    let bytes: Vec<u8> = (0..64 * 16).map(|i| (i * 7 % 251) as u8).collect();
    d.memory.write(src, &bytes).unwrap();
    let out = d.alloc(64 * 16, false);
    let result = d.launch(&copy_kernel(body), [1, 1, 1], [64, 1, 1], &[src, out], &options());
    (result, d, out)
}

fn source_word(i: usize) -> u32 {
    u32::from_le_bytes([0, 1, 2, 3].map(|b| ((4 * i + b) * 7 % 251) as u8))
}

#[test]
fn cp_async_lands_at_the_wait_and_a_barrier_shares_it() {
    let (result, d, out) = run_copy(
        "\tcp.async.cg.shared.global [%r2], [%rd4], 16;
\tcp.async.commit_group;
\tcp.async.wait_group 0;
\tbar.sync 0;
\tld.shared.v4.u32 {%r10, %r11, %r12, %r13}, [%r3];
\tst.global.v4.u32 [%rd3], {%r10, %r11, %r12, %r13};",
    );
    let stats = result.unwrap_or_else(|f| panic!("{}", f.report));
    let got = d.read_u32(out, 64 * 4);
    for t in 0..64 {
        for k in 0..4 {
            assert_eq!(got[t * 4 + k], source_word(((t + 1) % 64) * 4 + k), "thread {t} word {k}");
        }
    }
    // The copies' global reads are counted as loads: 64 x 16 bytes in 16 sectors per warp. Each thread had its
    // 16 bytes in flight.
    assert_eq!(stats.global_load_bytes, 64 * 16);
    assert_eq!(stats.global_load_sectors, 32);
    assert_eq!((stats.async_bytes, stats.async_peak_bytes), (64 * 16, 64 * 16));
}

#[test]
fn cp_async_with_a_short_source_fills_zeros() {
    let (result, d, out) = run_copy(
        "\tmov.u32 %r6, 6;
\tcp.async.ca.shared.global [%r2], [%rd4], 16, %r6;
\tcp.async.wait_all;
\tld.shared.v4.u32 {%r10, %r11, %r12, %r13}, [%r2];
\tst.global.v4.u32 [%rd3], {%r10, %r11, %r12, %r13};",
    );
    let stats = result.unwrap_or_else(|f| panic!("{}", f.report));
    let got = d.read_u32(out, 64 * 4);
    for t in 0..64 {
        assert_eq!(got[t * 4], source_word(t * 4), "thread {t}");
        assert_eq!(got[t * 4 + 1], source_word(t * 4 + 1) & 0xFFFF, "thread {t}: bytes 4, 5 copied, 6, 7 zero");
        assert_eq!(&got[t * 4 + 2..t * 4 + 4], &[0, 0], "thread {t}");
    }
    assert_eq!(stats.async_bytes, 64 * 6, "only the source bytes are read");
}

#[test]
fn reading_a_copy_in_flight_is_a_race() {
    let (result, _, _) = run_copy(
        "\tcp.async.cg.shared.global [%r2], [%rd4], 16;
\tcp.async.commit_group;
\tld.shared.v4.u32 {%r10, %r11, %r12, %r13}, [%r2];
\tcp.async.wait_group 0;
\tst.global.v4.u32 [%rd3], {%r10, %r11, %r12, %r13};",
    );
    expect_fault(result, FaultKind::Race, &["which a cp.async of thread (0, 0, 0) still in flight writes"]);
}

#[test]
fn a_wait_for_older_groups_leaves_the_newest_in_flight() {
    let body = |read: &str| {
        format!(
            "\tcp.async.cg.shared.global [%r2], [%rd4], 16;
\tcp.async.commit_group;
\tadd.u32 %r7, %r2, 1024;
\tcp.async.cg.shared.global [%r7], [%rd4], 16;
\tcp.async.commit_group;
\tcp.async.wait_group 1;
\tld.shared.v4.u32 {{%r10, %r11, %r12, %r13}}, [{read}];
\tcp.async.wait_group 0;
\tst.global.v4.u32 [%rd3], {{%r10, %r11, %r12, %r13}};"
        )
    };
    let (result, d, out) = run_copy(&body("%r2"));
    let stats = result.unwrap_or_else(|f| panic!("{}", f.report));
    assert_eq!(stats.async_peak_bytes, 2 * 64 * 16, "both groups of every thread were in flight");
    assert_eq!(d.read_u32(out, 4), (0..4).map(source_word).collect::<Vec<_>>());
    expect_fault(run_copy(&body("%r7")).0, FaultKind::Race, &["still in flight"]);
}

#[test]
fn reading_another_threads_copy_without_a_barrier_is_a_race() {
    let (result, _, _) = run_copy(
        "\tcp.async.cg.shared.global [%r2], [%rd4], 16;
\tcp.async.wait_all;
\tld.shared.v4.u32 {%r10, %r11, %r12, %r13}, [%r3];
\tst.global.v4.u32 [%rd3], {%r10, %r11, %r12, %r13};",
    );
    // Thread 0 reads thread 1's copy, which landed at thread 1's wait: nothing orders the two lanes.
    expect_fault(result, FaultKind::Race, &["races with a write by thread"]);
}

#[test]
fn exiting_with_a_copy_never_waited_for_is_a_report() {
    let (result, _, _) = run_copy("\tcp.async.cg.shared.global [%r2], [%rd4], 16;\n\tcp.async.commit_group;");
    expect_fault(result, FaultKind::Sync, &["exited with 1 cp.async copy it never waited for"]);
}

#[test]
fn a_copy_from_unwritten_memory_is_an_initcheck_error() {
    let d = Device::new();
    let src = d.alloc(64 * 16, false);
    let out = d.alloc(64 * 16, false);
    let kernel = copy_kernel("\tcp.async.cg.shared.global [%r2], [%rd4], 16;\n\tcp.async.wait_all;");
    expect_fault(
        d.launch(&kernel, [1, 1, 1], [64, 1, 1], &[src, out], &options()),
        FaultKind::Uninitialized,
        &["never written", "cp.async"],
    );
}

#[test]
fn malformed_copies_are_refused_at_load() {
    let load = |inst: &str| {
        let text = format!(
            ".version 8.0\n.target sm_80\n.address_size 64\n.visible .entry k(.param .u64 p)\n{{\n\t.reg .b32 %r<4>;\n\t\
             .reg .b64 %rd<4>;\n\t{inst};\n\tret;\n}}\n"
        );
        crate::ptx::load(&text).err().map(|e| e.to_string()).unwrap_or_default()
    };
    assert!(load("cp.async.cg.shared.global [%r1], [%rd1], 8").contains("`cp.async.cg` copies 16 bytes"));
    assert!(load("cp.async.ca.shared.global [%r1], [%rd1], 12").contains("copies 4, 8 or 16 bytes"));
    assert!(load("cp.async.wait_group %r1").contains("immediate count"));
    assert!(load("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%r1, %r2}, [%r3]").contains("takes 4 destination"));
    assert!(load("ldmatrix.sync.aligned.m16n16.x4.shared.b16 {%r1, %r2}, [%r3]").contains("unsupported instruction"));
}
