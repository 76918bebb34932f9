//! Barriers, synccheck, deadlocks and racecheck on shared memory.

use super::kit::*;
use crate::exec::FaultKind;
use crate::ir::{Op, Space, Ty};

/// Each thread writes `s[tid] = tid + 1`, optionally waits at `bar.sync 0`, reads `s[(tid + 32) % 64]` and stores
/// it to `out[tid]`. Block of 64 threads.
fn exchange(barrier: bool) -> crate::ir::Module {
    let mut k = Kernel::new("exchange", 1);
    k.shared(64 * 4);
    let tid = k.tid();
    let (off, v, other, off2, w) = (k.reg(), k.reg(), k.reg(), k.reg(), k.reg());
    k.alu(mad_u32, off, &[R(tid), Imm(4), Imm(0)]);
    k.alu(add_u32, v, &[R(tid), Imm(1)]);
    k.st(Space::Shared, Ty::U32, at(off, 0), R(v));
    if barrier {
        k.bar();
    }
    k.alu(add_u32, other, &[R(tid), Imm(32)]);
    k.alu(and_b32, other, &[R(other), Imm(63)]);
    k.alu(mad_u32, off2, &[R(other), Imm(4), Imm(0)]);
    k.ld(Space::Shared, Ty::U32, w, at(off2, 0));
    let addr = k.element(0, tid, 4);
    k.st(Space::Global, Ty::U32, at(addr, 0), R(w));
    k.exit();
    k.module()
}

#[test]
fn a_barrier_orders_shared_memory_between_warps() {
    let d = Device::new();
    let out = d.alloc(64 * 4, false);
    d.launch(&exchange(true), [3, 1, 1], [64, 1, 1], &[out], &options()).unwrap();
    let expected: Vec<u32> = (0..64).map(|t| (t + 32) % 64 + 1).collect();
    assert_eq!(d.read_u32(out, 64), expected);
}

#[test]
fn the_same_exchange_without_the_barrier_is_a_race() {
    let d = Device::new();
    let out = d.alloc(64 * 4, false);
    // Without the barrier warp 0 reads words warp 1 has not written yet: initcheck would stop it first.
    let races_only = crate::exec::Options { initcheck: false, ..options() };
    expect_fault(
        d.launch(&exchange(false), [1, 1, 1], [64, 1, 1], &[out], &races_only),
        FaultKind::Race,
        &[
            "racecheck: write of shared byte 0x80 races with a read by thread (0, 0, 0) at PTX line 8 `ld.shared.u32`",
            "thread (32, 0, 0), PTX line 4 `st.shared.u32`",
        ],
    );
    let relaxed = crate::exec::Options { racecheck: false, ..races_only };
    d.launch(&exchange(false), [1, 1, 1], [64, 1, 1], &[out], &relaxed).unwrap();
}

#[test]
fn lanes_of_one_warp_race_without_a_warp_sync() {
    // Lane l writes s[l], then reads s[l ^ 1]: within one warp, nothing orders the write and the read.
    let mut k = Kernel::new("neighbours", 0);
    k.shared(32 * 4);
    let tid = k.tid();
    let (off, n, off2, v) = (k.reg(), k.reg(), k.reg(), k.reg());
    k.alu(mad_u32, off, &[R(tid), Imm(4), Imm(0)]);
    k.st(Space::Shared, Ty::U32, at(off, 0), R(tid));
    let sync = k.here();
    k.op(Op::WarpSync { mask: Imm(0xFFFF_FFFF) });
    k.alu(add_u32, n, &[R(tid), Imm(0)]);
    k.op(Op::Alu { f: xor1, dst: n, srcs: [R(n), Imm(0), Imm(0), Imm(0)], nsrc: 1, name: "xor.b32" });
    k.alu(mad_u32, off2, &[R(n), Imm(4), Imm(0)]);
    k.ld(Space::Shared, Ty::U32, v, at(off2, 0));
    k.exit();
    let d = Device::new();
    let with_sync = k.module();
    d.launch(&with_sync, [1, 1, 1], [32, 1, 1], &[], &options()).unwrap();
    // The same without `bar.warp.sync`: a fence in its place.
    let mut without = with_sync.clone();
    without.kernels[0].insts[sync as usize].op = Op::Fence;
    expect_fault(
        d.launch(&without, [1, 1, 1], [32, 1, 1], &[], &options()),
        FaultKind::Race,
        &["read of shared byte 0x4 races with a write by thread (1, 0, 0)"],
    );
}

fn xor1(v: &[u64; 4], _: &mut bool) -> u64 {
    v[0] ^ 1
}

#[test]
fn two_lanes_of_one_store_to_the_same_word_race() {
    let mut k = Kernel::new("same_word", 0);
    k.shared(16);
    let tid = k.tid();
    let off = k.reg();
    k.alu(and_b32, off, &[R(tid), Imm(4)]);
    k.st(Space::Shared, Ty::U32, at(off, 0), R(tid));
    k.exit();
    let d = Device::new();
    expect_fault(
        d.launch(&k.module(), [1, 1, 1], [32, 1, 1], &[], &options()),
        FaultKind::Race,
        &["write of shared byte 0x0 races with a write by thread (0, 0, 0)", "thread (1, 0, 0)"],
    );
}

#[test]
fn threads_writing_different_halves_of_a_word_do_not_race() {
    // 16-bit elements: lane l writes bytes 2l..2l+1, then reads them back.
    let mut k = Kernel::new("halves", 0);
    k.shared(64);
    let tid = k.tid();
    let (off, v) = (k.reg(), k.reg());
    k.alu(mad_u32, off, &[R(tid), Imm(2), Imm(0)]);
    k.st(Space::Shared, Ty::U16, at(off, 0), R(tid));
    k.ld(Space::Shared, Ty::U16, v, at(off, 0));
    k.st(Space::Shared, Ty::U16, at(off, 0), R(v));
    k.exit();
    let d = Device::new();
    d.launch(&k.module(), [2, 1, 1], [32, 1, 1], &[], &options()).unwrap();
}

#[test]
fn a_thread_that_exited_before_syncthreads_is_a_synccheck_error() {
    let mut k = Kernel::new("early_exit", 0);
    let tid = k.tid();
    let p = k.reg();
    k.setp(ge_u32, p, R(tid), Imm(40));
    k.when(p, false, Op::Exit);
    k.bar();
    k.exit();
    let d = Device::new();
    let m = k.module();
    expect_fault(
        d.launch(&m, [1, 1, 1], [64, 1, 1], &[], &options()),
        FaultKind::Sync,
        &["24 threads of the block exited while others wait at barrier 0", "warp 1 lanes 8-31: exited"],
    );
    let relaxed = crate::exec::Options { synccheck: false, ..options() };
    d.launch(&m, [1, 1, 1], [64, 1, 1], &[], &relaxed).unwrap();
}

#[test]
fn warps_at_different_barriers_deadlock_with_a_report_of_each_warp() {
    // Warp 0 waits at barrier 1, warp 1 at barrier 0; each barrier waits for the whole block.
    let mut k = Kernel::new("crossed", 0);
    let tid = k.tid();
    let p = k.reg();
    k.setp(ge_u32, p, R(tid), Imm(32));
    let to_other = k.when(p, false, Op::Bra { target: 0 });
    k.op(Op::Bar { id: Imm(1), count: None, wait: true, aligned: true });
    k.exit();
    let other = k.here();
    k.patch(to_other, other);
    k.bar();
    k.exit();
    let d = Device::new();
    expect_fault(
        d.launch(&k.module(), [1, 1, 1], [64, 1, 1], &[], &options()),
        FaultKind::Sync,
        &[
            "deadlock",
            "warp 0 lanes 0-31: at PTX line 4 `bar.sync`, waiting at barrier 1 for all threads of the block",
            "warp 1 lanes 0-31: at PTX line 6 `bar.sync`, waiting at barrier 0 for all threads of the block",
        ],
    );
}

#[test]
fn lanes_of_one_warp_at_different_barriers_are_a_synccheck_error() {
    let mut k = Kernel::new("split_warp", 0);
    let tid = k.tid();
    let p = k.reg();
    k.setp(ge_u32, p, R(tid), Imm(16));
    let to_other = k.when(p, false, Op::Bra { target: 0 });
    k.bar();
    k.exit();
    let other = k.here();
    k.patch(to_other, other);
    k.bar();
    k.exit();
    let d = Device::new();
    // Both groups wait at barrier 0 at different instructions: undefined for `bar.sync` (aligned: the whole warp
    // executes one instruction), allowed for `barrier.sync` without `.aligned`.
    let m = k.module();
    expect_fault(
        d.launch(&m, [1, 1, 1], [32, 1, 1], &[], &options()),
        FaultKind::Sync,
        &["warp 0's lanes wait at barrier 0 at different instructions", "an aligned barrier"],
    );
    let mut unaligned = m.clone();
    for pc in [3, 5] {
        unaligned.kernels[0].insts[pc].op = Op::Bar { id: Imm(0), count: None, wait: true, aligned: false };
    }
    d.launch(&unaligned, [1, 1, 1], [32, 1, 1], &[], &options()).unwrap();
    let mut k2 = m.clone();
    k2.kernels[0].insts[3].op = Op::Bar { id: Imm(2), count: None, wait: true, aligned: true };
    expect_fault(
        d.launch(&k2, [1, 1, 1], [32, 1, 1], &[], &options()),
        FaultKind::Sync,
        &["warp 0's lanes wait at different barriers"],
    );
}

#[test]
fn a_barrier_with_a_thread_count_completes_for_that_many() {
    // Warps 0 and 1 meet at `bar.sync 1, 64`; warp 2 does not take part.
    let mut k = Kernel::new("counted", 0);
    let tid = k.tid();
    let p = k.reg();
    k.setp(ge_u32, p, R(tid), Imm(64));
    k.when(p, false, Op::Exit);
    k.op(Op::Bar { id: Imm(1), count: Some(Imm(64)), wait: true, aligned: true });
    k.exit();
    let d = Device::new();
    d.launch(&k.module(), [1, 1, 1], [96, 1, 1], &[], &options()).unwrap();
}

#[test]
fn a_shuffle_waiting_for_lanes_held_at_a_barrier_is_reported() {
    // Lanes 0-15 reach `bar.sync`, lanes 16-31 a full-warp `shfl`: neither can complete.
    let mut k = Kernel::new("shfl_vs_bar", 0);
    let tid = k.tid();
    let (p, v) = (k.reg(), k.reg());
    k.setp(ge_u32, p, R(tid), Imm(16));
    let to_shfl = k.when(p, false, Op::Bra { target: 0 });
    k.bar();
    k.exit();
    let shfl = k.here();
    k.patch(to_shfl, shfl);
    let mode = crate::ir::ShflMode::Idx;
    k.op(Op::Shfl { mode, dst: v, dst_pred: None, a: R(tid), b: Imm(0), c: Imm(0x1f), mask: Imm(0xFFFF_FFFF) });
    k.exit();
    let d = Device::new();
    let m = k.module();
    expect_fault(
        d.launch(&m, [1, 1, 1], [32, 1, 1], &[], &options()),
        FaultKind::Sync,
        &[
            "lanes 0-15 of warp 0 wait at a barrier but lanes 16-31 of it do not",
            "lanes 16-31: at PTX line 6 `shfl.sync.idx.b32`, waiting for the lanes its member mask names",
        ],
    );
    let relaxed = crate::exec::Options { synccheck: false, ..options() };
    expect_fault(
        d.launch(&m, [1, 1, 1], [32, 1, 1], &[], &relaxed),
        FaultKind::Sync,
        &["deadlock", "lanes 0-15: at PTX line 4 `bar.sync`"],
    );
}
