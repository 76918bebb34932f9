//! `atom` and `red`: read-modify-write of 4 or 8 bytes in global memory as real host atomics (a
//! compare-exchange loop, so blocks on other host threads see one order), in shared memory as plain operations
//! (a block's shared memory belongs to one host thread). The lanes of a warp go in lane order.

use super::block_state::BlockState;
use super::context::Ctx;
use super::fault::{Fault, FaultKind};
use super::operand::width_mask;
use super::place::{self, Target};
use super::racecheck::Access;
use super::report;
use super::warp::{Lanes, Warp};
use crate::ir::{Address, AtomOp, Operand, Reg, Space, Ty};
use std::sync::atomic::Ordering;

/// The operands of one `atom` / `red`.
pub struct AtomArgs<'i> {
    pub space: Space,
    pub op: AtomOp,
    pub ty: Ty,
    pub dst: Option<Reg>,
    pub addr: &'i Address,
    pub a: Operand,
    pub b: Option<Operand>,
}

pub fn atom<'c>(
    ctx: &'c Ctx<'_>,
    bs: &mut BlockState,
    w: &mut Warp<'c>,
    pc: u32,
    active: u32,
    args: &AtomArgs<'_>,
) -> Result<(), Fault> {
    let AtomArgs { space, op, ty, dst, addr, a, b } = *args;
    let width = ty.bytes();
    if !matches!(width, 4 | 8) || apply(op, ty, 0, 0, 0).is_none() {
        let l = active.trailing_zeros() as usize;
        return Err(report::fault(
            ctx,
            bs,
            w,
            l,
            Some(pc),
            FaultKind::Undefined,
            format!("atomic {op:?} on {ty:?} is not supported"),
        ));
    }
    let mask = width_mask(width * 8);
    let sa = w.src(a, 0, ctx);
    let sb = match b {
        Some(b) => w.src(b, 1, ctx),
        None => w.zero(),
    };
    let base = place::base(ctx, w, addr);
    for l in Lanes(active) {
        let at = w.rd(base, l).wrapping_add(addr.offset as u64);
        place::aligned(ctx, bs, w, l, pc, at, width)?;
        let (x, y) = (w.rd(sa, l) & mask, w.rd(sb, l) & mask);
        let f = |old: u64| apply(op, ty, old, x, y).unwrap_or(old);
        let old = match place::target(space, at) {
            Target::Global(g) if space != Space::Const => {
                let alloc = place::global(ctx, bs, w, l, pc, g, width, "atomic")?;
                let access = Access { thread: w.thread(l), generation: w.sync_gen, pc, write: true, atomic: true };
                bs.global_race.record(g, width, access);
                if ctx.options.initcheck && !alloc.is_initialized(g, width as u64) {
                    return Err(place::uninitialized(ctx, bs, w, l, pc, alloc, g, width));
                }
                if width == 4 {
                    let cell = alloc.atomic_u32(g);
                    let mut cur = cell.load(Ordering::Relaxed);
                    loop {
                        match cell.compare_exchange_weak(cur, f(cur as u64) as u32, Ordering::AcqRel, Ordering::Relaxed)
                        {
                            Ok(_) => break cur as u64,
                            Err(now) => cur = now,
                        }
                    }
                } else {
                    let cell = alloc.atomic_u64(g);
                    let mut cur = cell.load(Ordering::Relaxed);
                    loop {
                        match cell.compare_exchange_weak(cur, f(cur), Ordering::AcqRel, Ordering::Relaxed) {
                            Ok(_) => break cur,
                            Err(now) => cur = now,
                        }
                    }
                }
            }
            Target::Shared(o) => {
                let o = place::shared(ctx, bs, w, l, pc, o, width, true, true)?;
                let old = place::read_le(&bs.shared[o..], width);
                place::write_le(&mut bs.shared[o..], width, f(old));
                old
            }
            Target::Global(_) | Target::Local(_) | Target::Param(_) => {
                return Err(report::fault(
                    ctx,
                    bs,
                    w,
                    l,
                    Some(pc),
                    FaultKind::IllegalAddress,
                    format!("atomic at {at:#x} outside global and shared memory"),
                ));
            }
        };
        if let Some(d) = dst {
            let row = w.row(d);
            w.regs[row + l] = old;
        }
    }
    bs.stats.atomic_requests += (active != 0) as u64;
    bs.stats.atomics += active.count_ones() as u64;
    Ok(())
}

/// The new value of an atomic `op` on `ty` over `old` with operands `a` (and `b`, the new value of `cas`), or
/// `None` for a combination PTX does not have.
pub fn apply(op: AtomOp, ty: Ty, old: u64, a: u64, b: u64) -> Option<u64> {
    use Ty::*;
    let signed = |v: u64| if ty.bits() == 32 { v as u32 as i32 as i64 } else { v as i64 };
    let v = match (op, ty) {
        (AtomOp::Add, F32) => add_f32_ftz(old as u32, a as u32) as u64,
        (AtomOp::Add, F64) => (f64::from_bits(old) + f64::from_bits(a)).to_bits(),
        (AtomOp::Add, U32 | S32 | U64 | S64) => old.wrapping_add(a),
        (AtomOp::Min, S32 | S64) => signed(old).min(signed(a)) as u64,
        (AtomOp::Max, S32 | S64) => signed(old).max(signed(a)) as u64,
        (AtomOp::Min, U32 | U64) => old.min(a),
        (AtomOp::Max, U32 | U64) => old.max(a),
        (AtomOp::Inc, U32) => {
            if old >= a {
                0
            } else {
                old + 1
            }
        }
        (AtomOp::Dec, U32) => {
            if old == 0 || old > a {
                a
            } else {
                old - 1
            }
        }
        (AtomOp::Exch, B32 | B64 | U32 | S32 | U64 | S64 | F32 | F64) => a,
        (AtomOp::Cas, B32 | B64 | U32 | S32 | U64 | S64) => {
            if old == a {
                b
            } else {
                old
            }
        }
        (AtomOp::And | AtomOp::Or | AtomOp::Xor, B32 | B64) => match op {
            AtomOp::And => old & a,
            AtomOp::Or => old | a,
            _ => old ^ a,
        },
        _ => return None,
    };
    Some(v & width_mask(ty.bits()))
}

/// `atom.add.f32`: round to nearest even, subnormal inputs and results flushed to zero of the same sign.
fn add_f32_ftz(x: u32, y: u32) -> u32 {
    let flush = |v: u32| if v & 0x7F80_0000 == 0 { v & 0x8000_0000 } else { v };
    flush((f32::from_bits(flush(x)) + f32::from_bits(flush(y))).to_bits())
}
