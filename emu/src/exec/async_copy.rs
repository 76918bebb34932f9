//! `cp.async`: copies from global to shared memory that run in the background. A copy reads its source when it is
//! issued (memcheck, initcheck and the counters see it there) and holds the bytes until its thread waits for its
//! group (`cp.async.wait_group` / `wait_all`); only then do they land in shared memory, as that thread's write at
//! the wait (so another thread must pass a barrier before reading them). Until it lands, any access to its
//! destination bytes, by any thread, is a report: on a GPU the bytes arrive at an unknown moment in between. A
//! block whose threads exit with copies they never waited for is a report too.

use super::access::Traffic;
use super::block_state::BlockState;
use super::context::Ctx;
use super::fault::{Fault, FaultKind};
use super::place::{aligned, base, global, shared, uninitialized};
use super::racecheck::Access;
use super::report;
use super::warp::{AsyncCopy, LANES, Lanes, Warp};
use crate::ir::{Address, Operand};

/// Issues the copies of the lanes of `active`.
#[allow(clippy::too_many_arguments)]
pub fn issue<'c>(
    ctx: &'c Ctx<'_>,
    bs: &mut BlockState,
    w: &mut Warp<'c>,
    pc: u32,
    active: u32,
    dst: &Address,
    src: &Address,
    size: u32,
    src_size: Option<Operand>,
) -> Result<(), Fault> {
    let (dst_base, src_base) = (base(ctx, w, dst), base(ctx, w, src));
    let n_src = src_size.map(|n| w.src(n, 2, ctx));
    let mut load = Traffic::new();
    let mut store = Traffic::new();
    for l in Lanes(active) {
        let fail = |w: &Warp<'_>, kind, text: String| Err(report::fault(ctx, bs, w, l, Some(pc), kind, text));
        let n = n_src.map_or(size as u64, |s| w.rd(s, l) & 0xFFFF_FFFF);
        if n > size as u64 {
            return fail(w, FaultKind::Undefined, format!("a cp.async of {size} bytes with a source size of {n}"));
        }
        let o = w.rd(dst_base, l).wrapping_add(dst.offset as u64);
        let s = w.rd(src_base, l).wrapping_add(src.offset as u64);
        aligned(ctx, bs, w, l, pc, o, size)?;
        aligned(ctx, bs, w, l, pc, s, size)?;
        if o.checked_add(size as u64).is_none_or(|end| end > bs.shared.len() as u64) {
            let why = format!("the block has {} bytes of shared memory", bs.shared.len());
            return fail(
                w,
                FaultKind::IllegalAddress,
                format!("cp.async to shared offset {o:#x} of {size} bytes: {why}"),
            );
        }
        let o = o as usize;
        if let Some(t) = bs.in_flight.writer(o, size as usize) {
            let other = report::xyz(report::thread_xyz(ctx, t));
            return fail(
                w,
                FaultKind::Race,
                format!("cp.async to shared offset {o:#x} overlaps a copy of thread {other} still in flight"),
            );
        }
        let mut bytes = [0u8; 16];
        if n > 0 {
            let n = n as u32;
            let alloc = global(ctx, bs, w, l, pc, s, n, "read")?;
            let access = Access { thread: w.thread(l), generation: w.sync_gen, pc, write: false, atomic: false };
            bs.global_race.record(s, n, access);
            let chunk = [8, 4, 2, 1].into_iter().find(|c| n.is_multiple_of(*c)).unwrap_or(1);
            for at in (0..n).step_by(chunk as usize) {
                let (value, init) = alloc.load(s + at as u64, chunk);
                if !init && ctx.options.initcheck {
                    return Err(uninitialized(ctx, bs, w, l, pc, alloc, s, n));
                }
                bytes[at as usize..(at + chunk) as usize].copy_from_slice(&value.to_le_bytes()[..chunk as usize]);
            }
            load.sectors.add(s);
        }
        store.shared_offs[l] = o as u32;
        store.shared_lanes |= 1 << l;
        bs.in_flight.mark(bs.shared.len(), o, size as usize, w.thread(l));
        let read = n as u8;
        w.copies.push(AsyncCopy {
            lane: l as u8,
            len: size as u8,
            read,
            group: w.groups[l],
            pc,
            shared: o as u32,
            bytes,
        });
        w.copy_bytes[l] += n as u32;
        w.copy_peak[l] = w.copy_peak[l].max(w.copy_bytes[l]);
        bs.stats.async_bytes += n;
    }
    load.count(bs, size, false);
    store.count(bs, size, true);
    Ok(())
}

/// `cp.async.commit_group`: each lane's open group is closed (an empty group too).
pub fn commit(w: &mut Warp<'_>, active: u32) {
    for l in Lanes(active) {
        w.groups[l] += 1;
    }
}

/// `cp.async.wait_group n` (`wait_all`: commit, then wait for every group): each lane's copies of all but its
/// newest `n` committed groups land.
pub fn wait<'c>(
    ctx: &'c Ctx<'_>,
    bs: &mut BlockState,
    w: &mut Warp<'c>,
    pc: u32,
    active: u32,
    n: u32,
    all: bool,
) -> Result<(), Fault> {
    if all {
        commit(w, active);
    }
    let mut limit = [0u32; LANES];
    for l in Lanes(active) {
        limit[l] = w.groups[l].saturating_sub(n);
    }
    let due = |c: &AsyncCopy| active & (1 << c.lane) != 0 && c.group < limit[c.lane as usize];
    if !w.copies.iter().any(due) {
        return Ok(());
    }
    let copies = std::mem::take(&mut w.copies);
    let (landing, waiting): (Vec<AsyncCopy>, Vec<AsyncCopy>) = copies.into_iter().partition(due);
    w.copies = waiting;
    for c in landing {
        let (o, len) = (c.shared as usize, c.len as usize);
        bs.in_flight.clear(o, len);
        w.copy_bytes[c.lane as usize] -= c.read as u32;
        let o = shared(ctx, bs, w, c.lane as usize, pc, o as u64, len as u32, true, false)?;
        bs.shared[o..o + len].copy_from_slice(&c.bytes[..len]);
    }
    Ok(())
}

/// At the end of a block: a copy no thread waited for is a report (its bytes would land at an unknown moment).
pub fn none_left(ctx: &Ctx<'_>, bs: &BlockState, warps: &[Warp<'_>]) -> Result<(), Fault> {
    let Some(w) = warps.iter().find(|w| !w.copies.is_empty()) else { return Ok(()) };
    let c = &w.copies[0];
    let count = w.copies.iter().filter(|d| d.lane == c.lane).count();
    Err(report::fault(
        ctx,
        bs,
        w,
        c.lane as usize,
        Some(c.pc),
        FaultKind::Sync,
        format!(
            "the thread exited with {count} cp.async cop{} it never waited for (cp.async.wait_group or wait_all)",
            if count == 1 { "y" } else { "ies" }
        ),
    ))
}
