//! `bar.sync` / `bar.arrive` across a block's warps. A lane that reaches `bar.sync` waits; once no lane of the
//! block can run, each barrier with waiting lanes is checked: without a thread count it completes when every
//! thread of the block waits there, with one when that many threads arrived (counted per warp, as the ISA does).
//! With synccheck, a warp arrives only when all its non-exited lanes wait at the same barrier (sm_70+ counts
//! arrivals per warp), and a `bar.sync` without a count that a thread can no longer reach because it exited is an
//! error (`__syncthreads` must be reached by every thread of the block).

use super::block_state::{BARRIERS, BlockState};
use super::context::Ctx;
use super::fault::{Fault, FaultKind};
use super::report;
use super::warp::{LANES, Lanes, Wait, Warp};
use crate::ir::{Op, Operand};

/// The lanes of `active` (of `group`, at `pc`) reach `bar.sync` (`wait`) or `bar.arrive`.
#[allow(clippy::too_many_arguments)]
pub fn arrive<'c>(
    ctx: &'c Ctx<'_>,
    bs: &mut BlockState,
    w: &mut Warp<'c>,
    pc: u32,
    group: u32,
    active: u32,
    id: Operand,
    count: Option<Operand>,
    wait: bool,
) -> Result<(), Fault> {
    let l0 = active.trailing_zeros() as usize;
    let fail = |w: &Warp<'_>, kind, text: String| Err(report::fault(ctx, bs, w, l0, Some(pc), kind, text));
    let (bar, threads) = operands(ctx, w, l0, id, count);
    for l in Lanes(active) {
        if operands(ctx, w, l, id, count) != (bar, threads) {
            return fail(w, FaultKind::Sync, format!("lanes {l0} and {l} of the warp name different barriers"));
        }
    }
    if bar >= BARRIERS as u64 {
        return fail(w, FaultKind::Undefined, format!("barrier {bar} (there are {BARRIERS})"));
    }
    if let Some(t) = threads
        && (t == 0 || t % LANES as u64 != 0 || t > ctx.block_threads.next_multiple_of(32) as u64)
    {
        return fail(
            w,
            FaultKind::Undefined,
            format!("a barrier count of {t} threads (a multiple of 32 up to the block's)"),
        );
    }
    let what = Wait::Barrier { id: bar as u32, count: threads.map(|t| t as u32) };
    if wait {
        w.set_pc(group, pc);
        w.set_pc(group & !active, pc + 1);
        w.block_on(active, what);
        return Ok(());
    }
    if threads.is_none() {
        return fail(w, FaultKind::Undefined, "bar.arrive without a thread count".into());
    }
    if ctx.options.synccheck && active != w.live() {
        return fail(
            w,
            FaultKind::Sync,
            format!(
                "bar.arrive by lanes {} of the warp while lanes {} have not exited (arrivals count per warp)",
                report::lanes(active),
                report::lanes(w.live() & !active)
            ),
        );
    }
    bs.barriers.arrived[bar as usize] += LANES as u32;
    Ok(())
}

fn operands(ctx: &Ctx<'_>, w: &mut Warp<'_>, l: usize, id: Operand, count: Option<Operand>) -> (u64, Option<u64>) {
    let bar = w.read_lane(id, l, ctx) & 0xFFFF_FFFF;
    (bar, count.map(|c| w.read_lane(c, l, ctx) & 0xFFFF_FFFF))
}

/// With no lane of the block runnable: completes every barrier that can, releasing its lanes. False when none
/// could.
pub fn resolve(ctx: &Ctx<'_>, bs: &mut BlockState, warps: &mut [Warp<'_>]) -> Result<bool, Fault> {
    let synccheck = ctx.options.synccheck;
    let live: u32 = warps.iter().map(|w| w.live().count_ones()).sum();
    let mut threads_at = [0u32; BARRIERS as usize];
    let mut warps_at = [0u32; BARRIERS as usize];
    let mut counts: [Option<Option<u32>>; BARRIERS as usize] = [None; BARRIERS as usize];
    for w in warps.iter() {
        let mut at_bar = 0u32;
        let mut first: Option<(Wait, u32)> = None;
        for l in Lanes(w.waiting) {
            if let Wait::Barrier { id, count } = w.wait[l] {
                at_bar |= 1 << l;
                let (wait0, pc0) = *first.get_or_insert((w.wait[l], w.pc[l]));
                if synccheck && wait0 != w.wait[l] {
                    return Err(sync(ctx, bs, warps, format!("warp {}'s lanes wait at different barriers", w.index)));
                }
                if synccheck && pc0 != w.pc[l] && (aligned(ctx, pc0) || aligned(ctx, w.pc[l])) {
                    return Err(sync(
                        ctx,
                        bs,
                        warps,
                        format!(
                            "warp {}'s lanes wait at barrier {id} at different instructions ({} and {}): an aligned \
                             barrier (bar.sync, __syncthreads) must be executed by all threads of a warp together",
                            w.index,
                            report::at(ctx, pc0),
                            report::at(ctx, w.pc[l])
                        ),
                    ));
                }
                threads_at[id as usize] += 1;
                warps_at[id as usize] += (at_bar.count_ones() == 1) as u32;
                if *counts[id as usize].get_or_insert(count) != count {
                    return Err(sync(ctx, bs, warps, format!("barrier {id} is awaited with different thread counts")));
                }
            }
        }
        if synccheck && at_bar != 0 && at_bar != w.live() {
            return Err(sync(
                ctx,
                bs,
                warps,
                format!(
                    "lanes {} of warp {} wait at a barrier but lanes {} of it do not (the ISA counts a barrier's \
                 arrivals per warp: all non-exited threads of a warp must reach it together)",
                    report::lanes(at_bar),
                    w.index,
                    report::lanes(w.live() & !at_bar)
                ),
            ));
        }
    }
    let mut released = false;
    for id in 0..BARRIERS as usize {
        let Some(count) = counts[id] else { continue };
        let complete = match count {
            None => {
                let exited = ctx.block_threads - live;
                if synccheck && exited > 0 {
                    return Err(sync(
                        ctx,
                        bs,
                        warps,
                        format!(
                            "{exited} threads of the block exited while others wait at barrier {id} for all the \
                         block's threads (__syncthreads must be reached by every thread)"
                        ),
                    ));
                }
                threads_at[id] == live
            }
            Some(c) => {
                let arrivals = if synccheck { warps_at[id] * LANES as u32 } else { threads_at[id] };
                bs.barriers.arrived[id] + arrivals >= c
            }
        };
        if complete {
            bs.barriers.arrived[id] = 0;
            for w in warps.iter_mut() {
                let mask = Lanes(w.waiting)
                    .filter(|&l| matches!(w.wait[l], Wait::Barrier { id: b, .. } if b as usize == id))
                    .fold(0, |m, l| m | 1 << l);
                w.release(mask);
            }
            released = true;
        }
    }
    if released {
        bs.race.new_epoch();
        bs.global_race.close_epoch().map_err(|race| report::global_race(ctx, bs, &race))?;
    }
    Ok(released)
}

/// Whether the barrier instruction at `pc` is `.aligned`.
fn aligned(ctx: &Ctx<'_>, pc: u32) -> bool {
    matches!(ctx.func.insts.get(pc as usize).map(|i| &i.op), Some(Op::Bar { aligned: true, .. }))
}

fn sync(ctx: &Ctx<'_>, bs: &BlockState, warps: &[Warp<'_>], what: String) -> Fault {
    Fault {
        kind: FaultKind::Sync,
        report: format!(
            "synccheck: {what}\n  in kernel `{}`, block {}; where each warp is:{}",
            ctx.func.name,
            report::xyz(bs.block),
            report::positions(ctx, warps)
        ),
    }
}
