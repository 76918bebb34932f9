//! Loads and stores, scalar and vector, in every state space: each lane's address decoded and checked (`place`),
//! read or written element by element, and counted per warp request: global bytes and sectors, shared phases and
//! wavefronts, local bytes. Global reads of bytes never written are initcheck faults.

use super::block_state::BlockState;
use super::context::Ctx;
use super::fault::{Fault, FaultKind};
use super::operand::{self, width_mask};
use super::place::{Target, aligned, base, global, local, read_le, shared, target, uninitialized, write_le};
use super::racecheck::Access;
use super::report;
use super::traffic::{self, Sectors};
use super::warp::{LANES, Lanes, Warp};
use crate::ir::{Address, Operand, Reg, Space, Ty};

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
pub(super) struct Traffic {
    pub sectors: Sectors,
    pub shared_offs: [u32; LANES],
    pub shared_lanes: u32,
    local_lanes: u64,
}

impl Traffic {
    pub fn new() -> Self {
        Traffic { sectors: Sectors::new(), shared_offs: [0; LANES], shared_lanes: 0, local_lanes: 0 }
    }

    pub fn count(mut self, bs: &mut BlockState, width: u32, store: bool) {
        let s = &mut bs.stats;
        if self.sectors.lanes() > 0 {
            let bytes = self.sectors.lanes() * width as u64;
            let sectors = self.sectors.distinct();
            let footprint = if store {
                s.global_store_requests += 1;
                s.global_store_bytes += bytes;
                s.global_store_sectors += sectors;
                &mut s.footprint.stores
            } else {
                s.global_load_requests += 1;
                s.global_load_bytes += bytes;
                s.global_load_sectors += sectors;
                &mut s.footprint.loads
            };
            self.sectors.ids().iter().for_each(|&id| footprint.add(id));
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
    reg_bits: u32,
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
                bs.global_race.record(
                    a,
                    width,
                    Access { thread: w.thread(l), generation: w.sync_gen, pc, write: false, atomic: false },
                );
                for (e, &row) in rows.iter().enumerate() {
                    let (value, init) = alloc.load(a + (e as u32 * elem) as u64, elem);
                    if !init && ctx.options.initcheck {
                        return Err(uninitialized(ctx, bs, w, l, pc, alloc, a, width));
                    }
                    put(w, row, l, extend(value, ty, reg_bits));
                }
                traffic.sectors.add(a);
            }
            Target::Shared(o) => {
                let o = shared(ctx, bs, w, l, pc, o, width, false, false)?;
                for (e, &row) in rows.iter().enumerate() {
                    put(w, row, l, extend(read_le(&bs.shared[o + e * elem as usize..], elem), ty, reg_bits));
                }
                traffic.shared_offs[l] = o as u32;
                traffic.shared_lanes |= 1 << l;
            }
            Target::Local(o) => {
                let o = local(ctx, bs, w, l, pc, o, width)?;
                for (e, &row) in rows.iter().enumerate() {
                    let v = read_le(&w.local[o + e * elem as usize..], elem);
                    put(w, row, l, extend(v, ty, reg_bits));
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
                    put(w, row, l, extend(read_le(&params[o as usize + e * elem as usize..], elem), ty, reg_bits));
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
    let (s, _) = operand::sources(ctx, bs, w, pc, active, srcs)?;
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
                bs.global_race.record(
                    a,
                    width,
                    Access { thread: w.thread(l), generation: w.sync_gen, pc, write: true, atomic: false },
                );
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

/// A loaded element in its register of `reg_bits`: signed elements sign-extended, others zero-extended.
#[inline(always)]
fn extend(v: u64, ty: Ty, reg_bits: u32) -> u64 {
    let bits = ty.bits();
    if !ty.is_signed() || bits >= reg_bits {
        return v;
    }
    let wide = ((v << (64 - bits)) as i64 >> (64 - bits)) as u64;
    if reg_bits >= 64 { wide } else { wide & ((1 << reg_bits) - 1) }
}
