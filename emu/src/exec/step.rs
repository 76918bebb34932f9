//! Runs a group of lanes that share a program counter through consecutive instructions. Each instruction resolves
//! its operands once (`Warp::src`) and loops over the lanes its guard leaves active. The group goes on through
//! branches all its active lanes take alike and stops at a divergent branch, a barrier, a collective, a divergent
//! call, a return or an exit (which set the lanes' counters themselves), or when its counter reaches `stop_pc`
//! (where other lanes of the warp wait to join it), or at a block start when `at_starts`, or when the warp's time
//! slice ends.

use super::block_state::BlockState;
use super::context::Ctx;
use super::fault::{Fault, FaultKind};
use super::operand::{sources, width_mask};
use super::report::{self, first};
use super::warp::{Lanes, Wait, Warp};
use super::{access, async_copy, atomics, barrier, collectives};
use crate::ir::{BoolOp, Inst, Op, Operand, Space};
use crate::memory::{LOCAL_WINDOW, SHARED_WINDOW};

/// Deepest call nesting a lane may reach.
const MAX_CALL_DEPTH: usize = 1024;

/// Where the group goes after an instruction.
enum Flow {
    Next,
    Jump(u32),
    /// The instruction set the counters (and states) of the group's lanes.
    Done,
}

#[allow(clippy::too_many_arguments)]
pub fn run_group<'c>(
    ctx: &'c Ctx<'_>,
    bs: &mut BlockState,
    w: &mut Warp<'c>,
    group: u32,
    mut pc: u32,
    stop_pc: u32,
    at_starts: bool,
    slice_end: u64,
) -> Result<(), Fault> {
    let func = ctx.func;
    loop {
        let Some(inst) = func.insts.get(pc as usize) else {
            return Err(report::fault(
                ctx,
                bs,
                w,
                group.trailing_zeros() as usize,
                None,
                FaultKind::Undefined,
                format!("the program counter {pc} ran past the kernel's last instruction"),
            ));
        };
        let active = match inst.guard {
            None => group,
            Some((p, negate)) => w.guard(p, negate, group),
        };
        w.issued += 1;
        bs.stats.issue(inst.class, active);
        match execute(ctx, bs, w, inst, pc, group, active)? {
            Flow::Next => pc += 1,
            Flow::Jump(target) => pc = target,
            Flow::Done => return Ok(()),
        }
        if pc >= stop_pc || w.issued >= slice_end || (at_starts && func.block_start.get(pc as usize) == Some(&true)) {
            w.set_pc(group, pc);
            return Ok(());
        }
    }
}

/// One instruction for the lanes of `active` (of `group`, all at `pc`).
#[inline(always)]
fn execute<'c>(
    ctx: &'c Ctx<'_>,
    bs: &mut BlockState,
    w: &mut Warp<'c>,
    inst: &Inst,
    pc: u32,
    group: u32,
    active: u32,
) -> Result<Flow, Fault> {
    match &inst.op {
        Op::Alu { f, dst, srcs, nsrc, .. } => {
            let zero = w.zero();
            let mut s = [zero; 4];
            for i in 0..*nsrc as usize {
                s[i] = w.src(srcs[i], i, ctx);
            }
            let d = w.row(*dst);
            for l in Lanes(active) {
                let v = [w.rd(s[0], l), w.rd(s[1], l), w.rd(s[2], l), w.rd(s[3], l)];
                let mut carry = w.carry[l];
                w.regs[d + l] = f(&v, &mut carry);
                w.carry[l] = carry;
            }
        }
        Op::Mov { dst, src } => {
            let s = w.src(*src, 0, ctx);
            let d = w.row(*dst);
            for l in Lanes(active) {
                w.regs[d + l] = w.rd(s, l);
            }
        }
        Op::Setp { cmp, dst, dst_not, a, b, combine } => setp(ctx, w, active, *cmp, *dst, *dst_not, *a, *b, *combine),
        Op::Selp { dst, a, b, pred } => {
            let (a, b, p) = (w.src(*a, 0, ctx), w.src(*b, 1, ctx), w.src(*pred, 2, ctx));
            let d = w.row(*dst);
            for l in Lanes(active) {
                w.regs[d + l] = if w.rd(p, l) != 0 { w.rd(a, l) } else { w.rd(b, l) };
            }
        }
        Op::Pack { dst, srcs, elem_bits } => {
            let (s, n) = sources(ctx, bs, w, pc, group, srcs)?;
            let mask = width_mask(*elem_bits);
            let d = w.row(*dst);
            for l in Lanes(active) {
                let v =
                    s[..n].iter().enumerate().fold(0, |v, (i, s)| v | (w.rd(*s, l) & mask) << (i as u32 * elem_bits));
                w.regs[d + l] = v;
            }
        }
        Op::Unpack { dsts, src, elem_bits } => {
            let s = w.src(*src, 0, ctx);
            let mask = width_mask(*elem_bits);
            for l in Lanes(active) {
                let v = w.rd(s, l);
                for (i, d) in dsts.iter().enumerate() {
                    if let Some(r) = d {
                        let row = w.row(*r);
                        w.regs[row + l] = (v >> (i as u32 * elem_bits)) & mask;
                    }
                }
            }
        }
        Op::Cvta { dst, src, space, to_generic, bits } => {
            let window = match space {
                Space::Shared => SHARED_WINDOW,
                Space::Local => LOCAL_WINDOW,
                Space::Global | Space::Const | Space::Generic => 0,
                Space::Param => {
                    return Err(report::fault(
                        ctx,
                        bs,
                        w,
                        first(active, group),
                        Some(pc),
                        FaultKind::Undefined,
                        "generic addresses of the parameter space are not supported".into(),
                    ));
                }
            };
            let s = w.src(*src, 0, ctx);
            let d = w.row(*dst);
            let mask = width_mask(*bits);
            for l in Lanes(active) {
                let v = w.rd(s, l);
                w.regs[d + l] = if *to_generic { v.wrapping_add(window) } else { v.wrapping_sub(window) } & mask;
            }
        }
        Op::Ld { space, ty, dsts, addr, reg_bits } => {
            access::load(ctx, bs, w, pc, active, *space, *ty, *reg_bits, dsts, addr)?
        }
        Op::St { space, ty, srcs, addr } => access::store(ctx, bs, w, pc, active, *space, *ty, srcs, addr)?,
        Op::Atom { space, op, ty, dst, addr, a, b } => atomics::atom(
            ctx,
            bs,
            w,
            pc,
            active,
            &atomics::AtomArgs { space: *space, op: *op, ty: *ty, dst: *dst, addr, a: *a, b: *b },
        )?,
        Op::Fence => {}
        Op::Bra { target } => {
            if active == group {
                return Ok(Flow::Jump(*target));
            }
            if active != 0 {
                w.set_pc(active, *target);
                w.set_pc(group & !active, pc + 1);
                return Ok(Flow::Done);
            }
        }
        Op::Bar { id, count, wait, .. } => {
            if active != 0 {
                barrier::arrive(ctx, bs, w, pc, group, active, *id, *count, *wait)?;
                if *wait {
                    return Ok(Flow::Done);
                }
            }
        }
        Op::CpAsync { dst, src, size, src_size } => {
            async_copy::issue(ctx, bs, w, pc, active, dst, src, *size, *src_size)?
        }
        Op::CpAsyncCommit => async_copy::commit(w, active),
        Op::CpAsyncWait { n, all } => async_copy::wait(ctx, bs, w, pc, active, *n, *all)?,
        Op::WarpSync { .. }
        | Op::Shfl { .. }
        | Op::Vote { .. }
        | Op::Match { .. }
        | Op::Mma { .. }
        | Op::Ldmatrix { .. } => {
            if active == 0 {
                return Ok(Flow::Next);
            }
            w.set_pc(group, pc);
            w.set_pc(group & !active, pc + 1);
            w.block_on(active, Wait::Collective);
            collectives::try_complete(ctx, bs, w)?;
            return Ok(Flow::Done);
        }
        Op::Call { target } => {
            for l in Lanes(active) {
                if w.stacks[l].len() >= MAX_CALL_DEPTH {
                    return Err(report::fault(
                        ctx,
                        bs,
                        w,
                        l,
                        Some(pc),
                        FaultKind::Undefined,
                        format!("calls nested deeper than {MAX_CALL_DEPTH}"),
                    ));
                }
                w.stacks[l].push(pc + 1);
            }
            if active == group {
                return Ok(Flow::Jump(*target));
            }
            if active != 0 {
                w.set_pc(active, *target);
                w.set_pc(group & !active, pc + 1);
                return Ok(Flow::Done);
            }
        }
        Op::Ret => {
            if active != 0 {
                for l in Lanes(active) {
                    match w.stacks[l].pop() {
                        Some(back) => w.pc[l] = back,
                        None => w.exited |= 1 << l,
                    }
                }
                w.set_pc(group & !active, pc + 1);
                return Ok(Flow::Done);
            }
        }
        Op::Exit => {
            if active != 0 {
                w.exited |= active;
                w.set_pc(group & !active, pc + 1);
                return Ok(Flow::Done);
            }
        }
    }
    Ok(Flow::Next)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn setp(
    ctx: &Ctx<'_>,
    w: &mut Warp<'_>,
    active: u32,
    cmp: crate::ir::AluFn,
    dst: u32,
    dst_not: Option<u32>,
    a: Operand,
    b: Operand,
    combine: Option<(BoolOp, Operand)>,
) {
    let (a, b) = (w.src(a, 0, ctx), w.src(b, 1, ctx));
    let (bop, c) = match combine {
        Some((bop, c)) => (Some(bop), w.src(c, 2, ctx)),
        None => (None, w.zero()),
    };
    let d = w.row(dst);
    let q = dst_not.map(|q| w.row(q));
    for l in Lanes(active) {
        let mut carry = false;
        let t = cmp(&[w.rd(a, l), w.rd(b, l), 0, 0], &mut carry) & 1;
        let c = w.rd(c, l) & 1;
        let join = |x: u64| match bop {
            None => x,
            Some(BoolOp::And) => x & c,
            Some(BoolOp::Or) => x | c,
            Some(BoolOp::Xor) => x ^ c,
        };
        w.regs[d + l] = join(t);
        if let Some(q) = q {
            w.regs[q + l] = join(t ^ 1);
        }
    }
}
