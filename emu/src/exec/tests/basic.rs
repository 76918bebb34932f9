//! Straight-line code, branches, divergence and re-convergence, and the memcheck / initcheck faults of global
//! memory.

use super::kit::*;
use crate::exec::FaultKind;
use crate::ir::{Class, Space, Ty};

/// `out[g] = g * 3 + 1` for every thread `g` of the grid.
fn affine() -> crate::ir::Module {
    let mut k = Kernel::new("affine", 1);
    let g = k.global_index();
    let addr = k.element(0, g, 4);
    let v = k.reg();
    k.alu(mad_u32, v, &[R(g), Imm(3), Imm(1)]);
    k.st(Space::Global, Ty::U32, at(addr, 0), R(v));
    k.exit();
    k.module()
}

#[test]
fn every_thread_of_a_grid_with_a_partial_warp_runs() {
    let d = Device::new();
    let out = d.alloc(5 * 80 * 4, false);
    let stats = d.launch(&affine(), [5, 1, 1], [80, 1, 1], &[out], &options()).unwrap();
    let expected: Vec<u32> = (0..400).map(|g| g * 3 + 1).collect();
    assert_eq!(d.read_u32(out, 400), expected);
    assert_eq!(stats.blocks, 5);
    assert_eq!(stats.threads_per_block, 80);
    // 3 warps per block (the last with 16 lanes), 9 instructions each.
    assert_eq!(stats.warp_insts.iter().sum::<u64>(), 5 * 3 * 9);
    assert_eq!(stats.total_thread_insts(), 400 * 9);
}

#[test]
fn a_divergent_loop_reconverges_after_it() {
    // sum = 0 + 1 + ... + (lane - 1): lane l runs the loop body l times.
    let mut k = Kernel::new("triangle", 1);
    let lane = k.tid();
    let (sum, i, p) = (k.reg(), k.reg(), k.reg());
    k.mov(sum, Imm(0));
    k.mov(i, Imm(0));
    let head = k.setp(ge_u32, p, R(i), R(lane));
    let leave = k.when(p, false, crate::ir::Op::Bra { target: 0 });
    k.alu(add_u32, sum, &[R(sum), R(i)]);
    k.alu(add_u32, i, &[R(i), Imm(1)]);
    k.bra(head);
    let after = k.here();
    k.patch(leave, after);
    let addr = k.element(0, lane, 4);
    k.st(Space::Global, Ty::U32, at(addr, 0), R(sum));
    k.exit();
    let d = Device::new();
    let out = d.alloc(32 * 4, false);
    let stats = d.launch(&k.module(), [1, 1, 1], [32, 1, 1], &[out], &options()).unwrap();
    let expected: Vec<u32> = (0..32).map(|l| l * (l.max(1) - 1) / 2).collect();
    assert_eq!(d.read_u32(out, 32), expected);
    // Prologue 3, 31 iterations of 5, the last test and branch 2, then the epilogue (4) once: the lanes that
    // left early waited for the others instead of running the epilogue apart.
    assert_eq!(stats.warp_insts.iter().sum::<u64>(), 3 + 31 * 5 + 2 + 4);
}

#[test]
fn an_if_else_reconverges_at_its_join() {
    // Even lanes add 100, odd lanes add 200, then all store.
    let mut k = Kernel::new("if_else", 1);
    let lane = k.tid();
    let (odd, p, v) = (k.reg(), k.reg(), k.reg());
    k.alu(and_b32, odd, &[R(lane), Imm(1)]);
    k.setp(eq_u32, p, R(odd), Imm(1));
    let to_else = k.when(p, false, crate::ir::Op::Bra { target: 0 });
    k.alu(add_u32, v, &[R(lane), Imm(100)]);
    let to_join = k.bra(0);
    let else_ = k.here();
    k.alu(add_u32, v, &[R(lane), Imm(200)]);
    let join = k.here();
    k.patch(to_else, else_);
    k.patch(to_join, join);
    let addr = k.element(0, lane, 4);
    k.st(Space::Global, Ty::U32, at(addr, 0), R(v));
    k.exit();
    let d = Device::new();
    let out = d.alloc(32 * 4, false);
    let stats = d.launch(&k.module(), [1, 1, 1], [32, 1, 1], &[out], &options()).unwrap();
    let expected: Vec<u32> = (0..32).map(|l| l + if l % 2 == 1 { 200 } else { 100 }).collect();
    assert_eq!(d.read_u32(out, 32), expected);
    // 4 before the split, 2 on the then path, 1 on the else path, 4 after the join once.
    assert_eq!(stats.warp_insts.iter().sum::<u64>(), 4 + 2 + 1 + 4);
    assert_eq!(stats.thread_insts[super::class(Class::Arith)], 32 * 3 + 16 + 16 + 32);
    assert_eq!(stats.warp_insts[super::class(Class::Control)], 3);
}

#[test]
fn an_out_of_bounds_store_names_the_thread_and_nearest_allocation() {
    let d = Device::new();
    let out = d.alloc(32 * 4, false);
    let report = expect_fault(
        d.launch(&affine(), [2, 1, 1], [32, 1, 1], &[out], &options()),
        FaultKind::IllegalAddress,
        &["kernel `affine`", "block (1, 0, 0)", "thread (0, 0, 0)", "PTX line 8 `st.global.u32`", "write of 4 bytes"],
    );
    assert!(
        report
            .contains(&format!("at {:#x}: 0 bytes past the end of the allocation at {out:#x} of 128 bytes", out + 128)),
        "{report}"
    );
}

#[test]
fn a_misaligned_load_is_a_fault() {
    let mut k = Kernel::new("misaligned", 1);
    let (base, v) = (k.reg(), k.reg());
    k.param(base, 0);
    k.ld(Space::Global, Ty::U32, v, at(base, 2));
    k.exit();
    let d = Device::new();
    let buf = d.alloc(64, true);
    expect_fault(
        d.launch(&k.module(), [1, 1, 1], [1, 1, 1], &[buf], &options()),
        FaultKind::Misaligned,
        &[&format!("access of 4 bytes at {:#x}, not aligned", buf + 2), "ld.global.u32"],
    );
}

#[test]
fn reading_bytes_never_written_is_an_initcheck_fault() {
    let mut k = Kernel::new("uninit", 2);
    let (src, dst, v) = (k.reg(), k.reg(), k.reg());
    k.param(src, 0);
    k.param(dst, 1);
    k.ld(Space::Global, Ty::U32, v, at(src, 8));
    k.st(Space::Global, Ty::U32, at(dst, 0), R(v));
    k.exit();
    let d = Device::new();
    let src = d.alloc(64, false);
    d.memory.write(src, &[1; 8]).unwrap();
    let dst = d.alloc(4, false);
    let m = k.module();
    expect_fault(
        d.launch(&m, [1, 1, 1], [1, 1, 1], &[src, dst], &options()),
        FaultKind::Uninitialized,
        &[&format!("read of 4 bytes at {:#x} (offset 8", src + 8), "never written"],
    );
    let relaxed = crate::exec::Options { initcheck: false, ..options() };
    d.launch(&m, [1, 1, 1], [1, 1, 1], &[src, dst], &relaxed).unwrap();
}

#[test]
fn reading_shared_bytes_no_thread_wrote_is_an_initcheck_fault() {
    let src = "
.visible .entry shared_uninit(.param .u64 out, .param .u32 skip)
{
\t.shared .align 4 .b32 cell[4];
\t.reg .b32 %r<4>;
\t.reg .b64 %rd<3>;
\t.reg .pred %p<2>;
\tld.param.u32 %r1, [skip];
\tsetp.ne.u32 %p1, %r1, 0;
\t@%p1 bra READ;
\tst.shared.u32 [cell+4], 5;
READ:
\tld.shared.u32 %r2, [cell+4];
\tld.param.u64 %rd1, [out];
\tcvta.to.global.u64 %rd2, %rd1;
\tst.global.u32 [%rd2], %r2;
\tret;
}
";
    let m = ptx(src);
    let d = Device::new();
    let out = d.alloc(4, false);
    d.launch(&m, [1, 1, 1], [1, 1, 1], &[out, 0], &options()).unwrap_or_else(|f| panic!("{}", f.report));
    expect_fault(
        d.launch(&m, [2, 1, 1], [1, 1, 1], &[out, 1], &options()),
        FaultKind::Uninitialized,
        &["read of 4 bytes at shared offset 0x4 that no thread of the block wrote", "ld.shared.u32"],
    );
    let relaxed = crate::exec::Options { initcheck: false, ..options() };
    d.launch(&m, [1, 1, 1], [1, 1, 1], &[out, 1], &relaxed).unwrap();
}

#[test]
fn a_kernel_loaded_again_finds_its_register_packing() {
    let (a, b) = (affine(), affine());
    let (sa, sb) = (crate::exec::slots::slots(&a.kernels[0]), crate::exec::slots::slots(&b.kernels[0]));
    assert!(std::sync::Arc::ptr_eq(&sa, &sb));
    assert!(std::sync::Arc::ptr_eq(&sa, &crate::exec::slots::slots(&a.kernels[0])));
    // Seven registers; at most four in use at one instruction (`%ctaid.x`, `%ntid.x` and `%tid.x` read where the
    // global index is written).
    assert_eq!(a.kernels[0].nregs, 7);
    assert_eq!(sa.count, 4);
}
