//! Loads and stores, scalar and vector, in every state space. Each lane's address is decoded to its space (a
//! generic address by its window), checked (alignment of the whole vector access, bounds of the allocation,
//! shared memory, local memory or parameter buffer), read or written element by element, and counted per warp
//! request: global bytes and sectors, shared phases and wavefronts, local bytes. Global reads of bytes never
//! written are initcheck faults; shared accesses go through the race shadow.

use super::block::BlockState;
use super::grid::Ctx;
use super::racecheck::{Access, Conflict};
use super::step::{self, width_mask};
use super::traffic::{self, Sectors};
use super::warp::{LANES, Lanes, Src, Warp};
use super::{Fault, FaultKind, report};
use crate::ir::{AddrBase, Address, Operand, Reg, Space, Ty};
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

/// The bytes of one access: `n` elements of `elem` bytes.
fn vector_width(
    ctx: &Ctx<'_>,
    bs: &BlockState,
    w: &Warp<'_>,
    pc: u32,
    active: u32,
    elem: u32,
    n: usize,
) -> Result<u32, Fault> {
    let width = elem * n as u32;
    if !matches!(width, 1 | 2 | 4 | 8 | 16) || n > 4 && elem > 2 {
        return Err(report::fault(
            ctx,
            bs,
            w,
            first(active),
            Some(pc),
            FaultKind::Undefined,
            format!("an access of {n} elements of {elem} bytes"),
        ));
    }
    Ok(width)
}

fn first(active: u32) -> usize {
    active.trailing_zeros() as usize
}

/// Per-request counting state.
struct Traffic {
    sectors: Sectors,
    shared_offs: [u32; LANES],
    shared_lanes: u32,
    local_lanes: u64,
}

impl Traffic {
    fn new() -> Self {
        Traffic { sectors: Sectors::new(), shared_offs: [0; LANES], shared_lanes: 0, local_lanes: 0 }
    }

    fn count(mut self, bs: &mut BlockState, width: u32, store: bool) {
        let s = &mut bs.stats;
        if self.sectors.lanes() > 0 {
            let bytes = self.sectors.lanes() * width as u64;
            let sectors = self.sectors.distinct();
            if store {
                s.global_store_requests += 1;
                s.global_store_bytes += bytes;
                s.global_store_sectors += sectors;
            } else {
                s.global_load_requests += 1;
                s.global_load_bytes += bytes;
                s.global_load_sectors += sectors;
            }
        }
        if self.shared_lanes != 0 {
            let (phases, wavefronts) = traffic::wavefronts(&self.shared_offs, self.shared_lanes, width);
            if store {
                s.shared_store_requests += 1;
            } else {
                s.shared_load_requests += 1;
            }
            s.shared_phases += phases;
            s.shared_wavefronts += wavefronts;
        }
        s.local_bytes += self.local_lanes * width as u64;
    }
}

#[allow(clippy::too_many_arguments)]
pub fn load<'c>(
    ctx: &'c Ctx<'_>,
    bs: &mut BlockState,
    w: &mut Warp<'c>,
    pc: u32,
    active: u32,
    space: Space,
    ty: Ty,
    dsts: &[Option<Reg>],
    addr: &Address,
) -> Result<(), Fault> {
    let elem = ty.bytes();
    let n = dsts.len();
    let width = vector_width(ctx, bs, w, pc, active, elem, n)?;
    let base = base(ctx, w, addr);
    // Destination rows (`usize::MAX` for a `_` sink: the element is still read and checked).
    let mut rows = [usize::MAX; 16];
    for (row, d) in rows.iter_mut().zip(dsts) {
        if let Some(r) = d {
            *row = w.row(*r);
        }
    }
    let rows = &rows[..n];
    let mut traffic = Traffic::new();
    for l in Lanes(active) {
        let a = w.rd(base, l).wrapping_add(addr.offset as u64);
        aligned(ctx, bs, w, l, pc, a, width)?;
        match target(space, a) {
            Target::Global(a) => {
                let alloc = global(ctx, bs, w, l, pc, a, width, "read")?;
                for (e, &row) in rows.iter().enumerate() {
                    let (value, init) = alloc.load(a + (e as u32 * elem) as u64, elem);
                    if !init && ctx.options.initcheck {
                        return Err(uninitialized(ctx, bs, w, l, pc, alloc, a, width));
                    }
                    put(w, row, l, extend(value, ty));
                }
                traffic.sectors.add(a);
            }
            Target::Shared(o) => {
                let o = shared(ctx, bs, w, l, pc, o, width, false, false)?;
                for (e, &row) in rows.iter().enumerate() {
                    put(w, row, l, extend(read_le(&bs.shared[o + e * elem as usize..], elem), ty));
                }
                traffic.shared_offs[l] = o as u32;
                traffic.shared_lanes |= 1 << l;
            }
            Target::Local(o) => {
                let o = local(ctx, bs, w, l, pc, o, width)?;
                for (e, &row) in rows.iter().enumerate() {
                    let v = read_le(&w.local[o + e * elem as usize..], elem);
                    put(w, row, l, extend(v, ty));
                }
                traffic.local_lanes += 1;
            }
            Target::Param(o) => {
                let params = &ctx.launch.params[..ctx.func.param_bytes as usize];
                if o.checked_add(width as u64).is_none_or(|end| end > params.len() as u64) {
                    return Err(report::fault(
                        ctx,
                        bs,
                        w,
                        l,
                        Some(pc),
                        FaultKind::IllegalAddress,
                        format!(
                            "read of {width} bytes at parameter offset {o}, outside the kernel's {} bytes of parameters",
                            params.len()
                        ),
                    ));
                }
                for (e, &row) in rows.iter().enumerate() {
                    put(w, row, l, extend(read_le(&params[o as usize + e * elem as usize..], elem), ty));
                }
            }
        }
    }
    traffic.count(bs, width, false);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn store<'c>(
    ctx: &'c Ctx<'_>,
    bs: &mut BlockState,
    w: &mut Warp<'c>,
    pc: u32,
    active: u32,
    space: Space,
    ty: Ty,
    srcs: &[Operand],
    addr: &Address,
) -> Result<(), Fault> {
    let elem = ty.bytes();
    let n = srcs.len();
    let width = vector_width(ctx, bs, w, pc, active, elem, n)?;
    let (s, _) = step::sources(ctx, bs, w, pc, active, srcs)?;
    let base = base(ctx, w, addr);
    let mask = width_mask(elem * 8);
    let mut traffic = Traffic::new();
    for l in Lanes(active) {
        let a = w.rd(base, l).wrapping_add(addr.offset as u64);
        aligned(ctx, bs, w, l, pc, a, width)?;
        let mut vals = [0u64; 16];
        for (e, v) in vals[..n].iter_mut().enumerate() {
            *v = w.rd(s[e], l) & mask;
        }
        match target(space, a) {
            Target::Global(a) if space != Space::Const => {
                let alloc = global(ctx, bs, w, l, pc, a, width, "write")?;
                for (e, v) in vals[..n].iter().enumerate() {
                    alloc.store(a + (e as u32 * elem) as u64, elem, *v);
                }
                traffic.sectors.add(a);
            }
            Target::Shared(o) => {
                let o = shared(ctx, bs, w, l, pc, o, width, true, false)?;
                for (e, v) in vals[..n].iter().enumerate() {
                    write_le(&mut bs.shared[o + e * elem as usize..], elem, *v);
                }
                traffic.shared_offs[l] = o as u32;
                traffic.shared_lanes |= 1 << l;
            }
            Target::Local(o) => {
                let o = local(ctx, bs, w, l, pc, o, width)?;
                for (e, v) in vals[..n].iter().enumerate() {
                    write_le(&mut w.local[o + e * elem as usize..], elem, *v);
                }
                traffic.local_lanes += 1;
            }
            Target::Global(_) | Target::Param(_) => {
                return Err(report::fault(
                    ctx,
                    bs,
                    w,
                    l,
                    Some(pc),
                    FaultKind::IllegalAddress,
                    format!("write of {width} bytes to the read-only {} space at {a:#x}", report::space_name(space)),
                ));
            }
        }
    }
    traffic.count(bs, width, true);
    Ok(())
}

/// Writes lane `l` of the register at `row` (nothing for a sink).
#[inline(always)]
fn put(w: &mut Warp<'_>, row: usize, l: usize, v: u64) {
    if row != usize::MAX {
        w.regs[row + l] = v;
    }
}

/// A loaded element in its register: `.s8` sign-extended to 16 bits (sub-word loads go to 16-bit registers, as
/// nvcc writes them: the lowered form does not record register widths); wider elements fill their register.
#[inline(always)]
fn extend(v: u64, ty: Ty) -> u64 {
    match ty {
        Ty::S8 => v as u8 as i8 as i16 as u16 as u64,
        _ => v,
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
    if let Some(c) = w.cache
        && c.contains(a, width as u64)
    {
        return Ok(c);
    }
    match ctx.view.find(a, width as u64) {
        Some(found) => {
            w.cache = Some(found);
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

/// Checks a shared access of lane `l` (bounds, then races) and returns its offset.
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
    if o.checked_add(width as u64).is_none_or(|end| end > bs.shared.len() as u64) {
        return Err(report::fault(
            ctx,
            bs,
            w,
            l,
            Some(pc),
            FaultKind::IllegalAddress,
            format!(
                "invalid shared {} of {width} bytes at offset {o:#x}: the block has {} bytes of shared memory",
                if write { "write" } else { "read" },
                bs.shared.len()
            ),
        ));
    }
    let access = Access { thread: w.thread(l), generation: w.sync_gen, pc, write, atomic };
    bs.race.access(o as u32, width, access).map_err(|c| race(ctx, bs, w, l, pc, access, c))?;
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
         __syncwarp or warp collective) between them",
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
fn local(ctx: &Ctx<'_>, bs: &BlockState, w: &Warp<'_>, l: usize, pc: u32, o: u64, width: u32) -> Result<usize, Fault> {
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
