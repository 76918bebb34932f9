//! Where one lane's access goes and whether it may: the address decoded to its state space (a generic address
//! by its window), then alignment and the bounds of the allocation, the block's shared memory (with the race
//! shadow), the thread's local memory; the memcheck, initcheck and racecheck faults with their details.

use super::block_state::BlockState;
use super::context::Ctx;
use super::fault::{Fault, FaultKind};
use super::racecheck::{Access, Conflict};
use super::report;
use super::warp::{Src, Warp};
use crate::ir::{AddrBase, Address, Operand, Origin, Space};
use crate::memory::{Allocation, LOCAL_WINDOW, SHARED_WINDOW, WINDOW_BYTES};

/// Where one lane's address points.
#[derive(Clone, Copy)]
pub enum Target {
    Global(u64),
    Shared(u64),
    Local(u64),
    Param(u64),
}

/// Decodes address `a` of `space` (`.const` variables live in device memory, at their device address).
#[inline(always)]
pub fn target(space: Space, a: u64) -> Target {
    match space {
        Space::Global | Space::Const => Target::Global(a),
        Space::Shared => Target::Shared(a),
        Space::Local => Target::Local(a),
        Space::Param => Target::Param(a),
        Space::Generic if a.wrapping_sub(SHARED_WINDOW) < WINDOW_BYTES => Target::Shared(a - SHARED_WINDOW),
        Space::Generic if a.wrapping_sub(LOCAL_WINDOW) < WINDOW_BYTES => Target::Local(a - LOCAL_WINDOW),
        Space::Generic => Target::Global(a),
    }
}

/// The address operand's base, resolved (an immediate base takes the last scratch slot).
#[inline(always)]
pub fn base(ctx: &Ctx<'_>, w: &mut Warp<'_>, addr: &Address) -> Src {
    match addr.base {
        AddrBase::None => w.zero(),
        AddrBase::Reg(r) => w.src(Operand::Reg(r), 0, ctx),
        AddrBase::Global(i) => w.src(Operand::GlobalAddr(i), super::warp::SCRATCH_SLOTS - 1, ctx),
    }
}

#[inline(always)]
pub fn aligned(
    ctx: &Ctx<'_>,
    bs: &BlockState,
    w: &Warp<'_>,
    l: usize,
    pc: u32,
    a: u64,
    width: u32,
) -> Result<(), Fault> {
    // `width` is a power of two: a mask, not a division.
    if a & (width as u64 - 1) == 0 {
        return Ok(());
    }
    Err(report::fault(
        ctx,
        bs,
        w,
        l,
        Some(pc),
        FaultKind::Misaligned,
        format!("access of {width} bytes at {a:#x}, not aligned to {width} bytes"),
    ))
}

/// The allocation holding global bytes `[a, a + width)` (the warp's last hit first), or the memcheck fault.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn global<'c>(
    ctx: &'c Ctx<'_>,
    bs: &BlockState,
    w: &mut Warp<'c>,
    l: usize,
    pc: u32,
    a: u64,
    width: u32,
    what: &str,
) -> Result<&'c Allocation, Fault> {
    let found = match w.cache {
        Some(c) if c.contains(a, width as u64) => Some(c),
        _ => ctx.view.find(a, width as u64),
    };
    match found {
        Some(found) => {
            w.cache = Some(found);
            if let Some(Some(Origin::Param(offset))) = ctx.func.origins.get(pc as usize)
                && ctx.options.memcheck
                && let Some((base, bytes)) = ctx.param_allocation(*offset)
                && base != found.base
            {
                return Err(astray(ctx, bs, w, l, pc, (a, width, what), *offset, (base, bytes), found));
            }
            Ok(found)
        }
        None => Err(report::fault(
            ctx,
            bs,
            w,
            l,
            Some(pc),
            FaultKind::IllegalAddress,
            format!("invalid global {what} of {width} bytes at {a:#x}: {}", report::nearest(ctx, a, width as u64)),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn uninitialized(
    ctx: &Ctx<'_>,
    bs: &BlockState,
    w: &Warp<'_>,
    l: usize,
    pc: u32,
    alloc: &Allocation,
    a: u64,
    width: u32,
) -> Fault {
    report::fault(
        ctx,
        bs,
        w,
        l,
        Some(pc),
        FaultKind::Uninitialized,
        format!(
            "read of {width} bytes at {a:#x} (offset {} in the allocation at {:#x} of {} bytes) that were never written",
            a - alloc.base,
            alloc.base,
            alloc.bytes
        ),
    )
}

/// An access through a pointer parameter's address that landed in another allocation.
#[allow(clippy::too_many_arguments)]
#[cold]
fn astray(
    ctx: &Ctx<'_>,
    bs: &BlockState,
    w: &Warp<'_>,
    l: usize,
    pc: u32,
    (a, width, what): (u64, u32, &str),
    offset: u32,
    (base, bytes): (u64, u64),
    found: &Allocation,
) -> Fault {
    let name = ctx.func.params.iter().find(|p| p.offset == offset).map_or("?", |p| p.name.as_str());
    report::fault(
        ctx,
        bs,
        w,
        l,
        Some(pc),
        FaultKind::IllegalAddress,
        format!(
            "invalid global {what} of {width} bytes at {a:#x}: its address comes from the pointer parameter `{name}` \
             (into the allocation at {base:#x} of {bytes} bytes) but lands in another allocation, at offset {} of \
             the one at {:#x} of {} bytes",
            a - found.base,
            found.base,
            found.bytes
        ),
    )
}

/// Checks a shared access of lane `l` (bounds, races, then reads of bytes never written) and returns its offset.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn shared(
    ctx: &Ctx<'_>,
    bs: &mut BlockState,
    w: &Warp<'_>,
    l: usize,
    pc: u32,
    o: u64,
    width: u32,
    write: bool,
    atomic: bool,
) -> Result<usize, Fault> {
    let invalid = |why: String| {
        let kind = if write { "write" } else { "read" };
        let detail = format!("invalid shared {kind} of {width} bytes at offset {o:#x}: {why}");
        Err(report::fault(ctx, bs, w, l, Some(pc), FaultKind::IllegalAddress, detail))
    };
    if o.checked_add(width as u64).is_none_or(|end| end > bs.shared.len() as u64) {
        return invalid(format!("the block has {} bytes of shared memory", bs.shared.len()));
    }
    if let Some(Some(Origin::Shared { offset, bytes })) = ctx.func.origins.get(pc as usize)
        && ctx.options.memcheck
    {
        let end = bytes.map_or(bs.shared.len() as u64, |b| *offset as u64 + b as u64);
        if o < *offset as u64 || o + width as u64 > end {
            let size = end - *offset as u64;
            return invalid(format!(
                "outside the shared array its address comes from (at offset {offset:#x}, {size} bytes)"
            ));
        }
    }
    if let Some(t) = bs.in_flight.writer(o as usize, width as usize) {
        let kind = if write { "write" } else { "read" };
        return Err(report::fault(
            ctx,
            bs,
            w,
            l,
            Some(pc),
            FaultKind::Race,
            format!(
                "{kind} of {width} bytes at shared offset {o:#x}, which a cp.async of thread {} still in flight \
                 writes (its thread must wait for it with cp.async.wait_group, then a barrier must order the wait \
                 before this access)",
                report::xyz(report::thread_xyz(ctx, t))
            ),
        ));
    }
    let access = Access { thread: w.thread(l), generation: w.sync_gen, pc, write, atomic };
    bs.race.access(o as u32, width, access).map_err(|c| race(ctx, bs, w, l, pc, access, c))?;
    if ctx.options.initcheck {
        let bytes = o as usize..o as usize + width as usize;
        // A read (an atomic reads too) of bytes no thread of the block wrote gets what an earlier block left.
        if (!write || atomic) && !bs.shared_written[bytes.clone()].iter().all(|&b| b) {
            return Err(report::fault(
                ctx,
                bs,
                w,
                l,
                Some(pc),
                FaultKind::Uninitialized,
                format!(
                    "{} of {width} bytes at shared offset {o:#x} that no thread of the block wrote",
                    if atomic { "atomic" } else { "read" }
                ),
            ));
        }
        if write {
            bs.shared_written[bytes].fill(true);
        }
    }
    Ok(o as usize)
}

fn race(ctx: &Ctx<'_>, bs: &BlockState, w: &Warp<'_>, l: usize, pc: u32, now: Access, before: Conflict) -> Fault {
    let kind = |write: bool| if write { "write" } else { "read" };
    let other = report::thread_xyz(ctx, before.thread);
    report::fault(
        ctx,
        bs,
        w,
        l,
        Some(pc),
        FaultKind::Race,
        format!(
            "{} of shared byte {:#x} races with a {} by thread {}{} at {}, with no barrier (or, within a warp, no \
         __syncwarp) between them",
            kind(now.write),
            before.offset,
            kind(before.write),
            report::xyz(other),
            if before.several { " (one of several readers)" } else { "" },
            report::at(ctx, before.pc),
        ),
    )
}

/// Checks a local access of lane `l` and returns its offset in the warp's local memory.
pub fn local(
    ctx: &Ctx<'_>,
    bs: &BlockState,
    w: &Warp<'_>,
    l: usize,
    pc: u32,
    o: u64,
    width: u32,
) -> Result<usize, Fault> {
    let size = ctx.func.local_bytes as u64;
    if o.checked_add(width as u64).is_none_or(|end| end > size) {
        return Err(report::fault(
            ctx,
            bs,
            w,
            l,
            Some(pc),
            FaultKind::IllegalAddress,
            format!(
                "invalid local access of {width} bytes at offset {o:#x}: the thread has {size} bytes of local memory"
            ),
        ));
    }
    Ok((l as u64 * size + o) as usize)
}

#[inline(always)]
pub fn read_le(bytes: &[u8], len: u32) -> u64 {
    match len {
        1 => bytes[0] as u64,
        2 => u16::from_le_bytes([bytes[0], bytes[1]]) as u64,
        4 => u32::from_le_bytes(bytes[..4].try_into().unwrap_or_default()) as u64,
        _ => u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()),
    }
}

#[inline(always)]
pub fn write_le(bytes: &mut [u8], len: u32, v: u64) {
    bytes[..len as usize].copy_from_slice(&v.to_le_bytes()[..len as usize]);
}
