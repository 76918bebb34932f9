//! Warp collectives: `shfl.sync`, `vote.sync`, `match.sync`, `bar.warp.sync`, `mma` and `ldmatrix` (whose member
//! mask is the whole warp). Lanes that reach one wait until every lane their member mask names has reached a collective
//! of the same kind with the same mask; then all of them execute it together, each with its own instruction's
//! operands, every source read before any destination is written. A mask that does not name the lane itself,
//! names lanes that do not exist or have exited, or lanes that disagree on the mask or the instruction, and a
//! `shfl` that would read a lane outside the mask, are synccheck faults (never a silent value).

use super::block_state::BlockState;
use super::context::Ctx;
use super::fault::{Fault, FaultKind};
use super::warp::{FULL, LANES, Lanes, Wait, Warp};
use super::{ldmatrix, mma, report};
use crate::ir::{Inst, Op, Operand, ShflMode, VoteMode};
use std::mem::discriminant;

/// Completes every collective of `w` whose lanes have all arrived; faults on masks that can never complete.
pub fn try_complete<'c>(ctx: &'c Ctx<'_>, bs: &mut BlockState, w: &mut Warp<'c>) -> Result<(), Fault> {
    let insts = &ctx.func.insts;
    let pending = Lanes(w.waiting).filter(|&l| w.wait[l] == Wait::Collective).fold(0u32, |m, l| m | 1 << l);
    let mut todo = pending;
    while todo != 0 {
        let l0 = todo.trailing_zeros() as usize;
        let pc0 = w.pc[l0];
        let inst = &insts[pc0 as usize];
        let mask = member_mask(ctx, w, inst, l0);
        todo &= !(mask | 1 << l0);
        let fail = |w: &Warp<'_>, text: String| {
            let mut fault = report::fault(ctx, bs, w, l0, Some(pc0), FaultKind::Sync, text);
            fault.report +=
                &format!("; where the warp's lanes are:{}", report::positions(ctx, std::slice::from_ref(w)));
            Err(fault)
        };
        if mask & (1 << l0) == 0 {
            return fail(w, format!("lane {l0} is not in its own member mask {mask:#010x}"));
        }
        if mask & !w.exists != 0 {
            return fail(
                w,
                format!(
                    "member mask {mask:#010x} names lanes {} that do not exist (the warp has lanes {})",
                    report::lanes(mask & !w.exists),
                    report::lanes(w.exists)
                ),
            );
        }
        if mask & w.exited != 0 {
            return fail(
                w,
                format!("member mask {mask:#010x} names lanes {} that have exited", report::lanes(mask & w.exited)),
            );
        }
        if mask & !pending != 0 {
            continue;
        }
        for (pc, lanes) in groups(w.pc, mask) {
            let other = &insts[pc as usize];
            let l = lanes.trailing_zeros() as usize;
            if !same_kind(inst, other) || (matches!(inst.op, Op::Mma { .. } | Op::Ldmatrix { .. }) && pc != pc0) {
                return fail(
                    w,
                    format!(
                        "lanes {l0} and {l} meet at different collectives ({} and {})",
                        report::at(ctx, pc0),
                        report::at(ctx, pc)
                    ),
                );
            }
            if let Some(m) = mask_operand(other) {
                let m = w.src(m, 0, ctx);
                if let Some(k) = Lanes(lanes).find(|&k| w.rd(m, k) as u32 != mask) {
                    let theirs = w.rd(m, k) as u32;
                    return fail(
                        w,
                        format!("lanes {l0} and {k} give different member masks ({mask:#010x}, {theirs:#010x})"),
                    );
                }
            }
        }
        match &inst.op {
            Op::Shfl { .. } => {
                if let Err(text) = shfl(ctx, w, mask) {
                    return fail(w, text);
                }
            }
            Op::Vote { .. } => vote(ctx, w, mask),
            Op::Match { .. } => matching(ctx, w, mask),
            Op::Mma { .. } => mma::execute(ctx, w, inst),
            Op::Ldmatrix { .. } => ldmatrix::execute(ctx, bs, w, inst, pc0)?,
            _ => {}
        }
        w.release(mask);
        // Of the collectives, only `bar.warp.sync` orders memory accesses (a shuffle exchanges registers, not
        // memory).
        if matches!(inst.op, Op::WarpSync { .. }) {
            w.sync_gen += 1;
        }
    }
    Ok(())
}

/// The lanes a collective names: its mask operand, or the whole warp for `mma` and `ldmatrix`.
fn member_mask(ctx: &Ctx<'_>, w: &mut Warp<'_>, inst: &Inst, l: usize) -> u32 {
    match mask_operand(inst) {
        Some(mask) => w.read_lane(mask, l, ctx) as u32,
        None => FULL,
    }
}

fn mask_operand(inst: &Inst) -> Option<Operand> {
    match &inst.op {
        Op::WarpSync { mask } | Op::Shfl { mask, .. } | Op::Vote { mask, .. } | Op::Match { mask, .. } => Some(*mask),
        _ => None,
    }
}

/// The lanes of `mask` grouped by their program counter in `pcs` (one group when the warp is converged): each group's operands
/// are resolved once.
fn groups(pcs: [u32; LANES], mask: u32) -> impl Iterator<Item = (u32, u32)> {
    let mut rest = mask;
    std::iter::from_fn(move || {
        if rest == 0 {
            return None;
        }
        let pc = pcs[rest.trailing_zeros() as usize];
        let lanes = Lanes(rest).filter(|&l| pcs[l] == pc).fold(0u32, |m, l| m | 1 << l);
        rest &= !lanes;
        Some((pc, lanes))
    })
}

/// Whether two lanes' collectives may complete together: the same instruction kind and mode.
fn same_kind(a: &Inst, b: &Inst) -> bool {
    match (&a.op, &b.op) {
        (Op::Shfl { mode: x, .. }, Op::Shfl { mode: y, .. }) => x == y,
        (Op::Vote { mode: x, .. }, Op::Vote { mode: y, .. }) => x == y,
        (Op::Match { all: x, bits: p, .. }, Op::Match { all: y, bits: q, .. }) => x == y && p == q,
        (Op::Mma { bf16: x, .. }, Op::Mma { bf16: y, .. }) => x == y,
        (Op::Ldmatrix { dsts: x, trans: p, .. }, Op::Ldmatrix { dsts: y, trans: q, .. }) => {
            x.len() == y.len() && p == q
        }
        (x, y) => discriminant(x) == discriminant(y),
    }
}

/// `shfl.sync` as the PTX ISA's pseudo-code defines it: `b[4:0]` the lane or offset, `c[4:0]` the clamp and
/// `c[12:8]` the segment mask; out of range, a lane reads its own value and its predicate is false.
fn shfl(ctx: &Ctx<'_>, w: &mut Warp<'_>, mask: u32) -> Result<(), String> {
    let mut source = [0u64; LANES];
    let mut from = [0usize; LANES];
    let mut in_range = [false; LANES];
    for (pc, lanes) in groups(w.pc, mask) {
        let Op::Shfl { mode, a, b, c, .. } = ctx.func.insts[pc as usize].op else { continue };
        let (a, b, c) = (w.src(a, 0, ctx), w.src(b, 1, ctx), w.src(c, 2, ctx));
        for l in Lanes(lanes) {
            source[l] = w.rd(a, l) & 0xFFFF_FFFF;
            let bval = (w.rd(b, l) & 31) as i32;
            let c = w.rd(c, l);
            let (cval, seg) = ((c & 31) as i32, ((c >> 8) & 31) as i32);
            let lane = l as i32;
            let max_lane = (lane & seg) | (cval & !seg);
            let min_lane = lane & seg;
            let (j, pval) = match mode {
                ShflMode::Up => (lane - bval, lane - bval >= max_lane),
                ShflMode::Down => (lane + bval, lane + bval <= max_lane),
                ShflMode::Bfly => (lane ^ bval, (lane ^ bval) <= max_lane),
                ShflMode::Idx => (min_lane | (bval & !seg), (min_lane | (bval & !seg)) <= max_lane),
            };
            from[l] = if pval { j as usize } else { l };
            in_range[l] = pval;
        }
    }
    for l in Lanes(mask) {
        if mask & (1 << from[l]) == 0 {
            return Err(format!(
                "lane {l}'s shfl reads lane {}, which is not in the member mask {mask:#010x} (its value is undefined)",
                from[l]
            ));
        }
    }
    for (pc, lanes) in groups(w.pc, mask) {
        let Op::Shfl { dst, dst_pred, .. } = ctx.func.insts[pc as usize].op else { continue };
        let d = w.row(dst);
        let p = dst_pred.map(|p| w.row(p));
        for l in Lanes(lanes) {
            w.regs[d + l] = source[from[l]];
            if let Some(p) = p {
                w.regs[p + l] = in_range[l] as u64;
            }
        }
    }
    Ok(())
}

/// `vote.sync`: `all`, `any`, `uni` (all equal) give a predicate; `ballot` the mask of lanes whose predicate holds.
fn vote(ctx: &Ctx<'_>, w: &mut Warp<'_>, mask: u32) {
    let mut ballot = 0u32;
    for (pc, lanes) in groups(w.pc, mask) {
        let Op::Vote { pred, .. } = ctx.func.insts[pc as usize].op else { continue };
        let p = w.src(pred, 0, ctx);
        for l in Lanes(lanes) {
            ballot |= ((w.rd(p, l) & 1) as u32) << l;
        }
    }
    for (pc, lanes) in groups(w.pc, mask) {
        let Op::Vote { mode, dst, .. } = ctx.func.insts[pc as usize].op else { continue };
        let v = match mode {
            VoteMode::All => (ballot == mask) as u64,
            VoteMode::Any => (ballot != 0) as u64,
            VoteMode::Uni => (ballot == mask || ballot == 0) as u64,
            VoteMode::Ballot => ballot as u64,
        };
        let d = w.row(dst);
        for l in Lanes(lanes) {
            w.regs[d + l] = v;
        }
    }
}

/// `match.any.sync` (each lane: the lanes of the mask with its value) and `match.all.sync` (the mask and true
/// when all values are equal, else 0 and false).
fn matching(ctx: &Ctx<'_>, w: &mut Warp<'_>, mask: u32) {
    let mut value = [0u64; LANES];
    for (pc, lanes) in groups(w.pc, mask) {
        let Op::Match { a, bits, .. } = ctx.func.insts[pc as usize].op else { continue };
        let a = w.src(a, 0, ctx);
        for l in Lanes(lanes) {
            value[l] = w.rd(a, l) & super::operand::width_mask(bits);
        }
    }
    for (pc, lanes) in groups(w.pc, mask) {
        let Op::Match { all, dst, dst_pred, .. } = ctx.func.insts[pc as usize].op else { continue };
        let (d, q) = (w.row(dst), dst_pred.map(|q| w.row(q)));
        for l in Lanes(lanes) {
            let same = Lanes(mask).filter(|&k| value[k] == value[l]).fold(0u32, |m, k| m | 1 << k);
            let (v, p) = match all {
                false => (same, true),
                true if same == mask => (mask, true),
                true => (0, false),
            };
            w.regs[d + l] = v as u64;
            if let Some(q) = q {
                w.regs[q + l] = p as u64;
            }
        }
    }
}
