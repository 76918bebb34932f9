//! `ldmatrix.sync.aligned.m8n8.{x1,x2,x4}[.trans].b16`: a warp loads one, two or four 8 x 8 matrices of 16-bit
//! elements from shared memory, each row (16 bytes) at the address one lane gives (row `r` of matrix `j` from lane
//! `8 j + r`; the other lanes' addresses are not used), and receives them spread across its lanes in the layout of
//! an `mma` fragment: lane `l` gets row `l / 4`, elements `2 (l % 4)` and `2 (l % 4) + 1` of each matrix in one
//! register (the first in the low half); with `.trans`, column `l / 4`, rows `2 (l % 4)` and `2 (l % 4) + 1`.
//! Every row read is checked as a shared read of 16 bytes (bounds, races, bytes never written, copies in flight)
//! and the request is counted as one 16-byte shared load of the lanes that give rows.

use super::block_state::BlockState;
use super::context::Ctx;
use super::fault::{Fault, FaultKind};
use super::place::{Target, aligned, base, shared, target};
use super::report;
use super::traffic;
use super::warp::{LANES, Warp};
use crate::ir::{Inst, Op, Space};

pub fn execute<'c>(ctx: &'c Ctx<'_>, bs: &mut BlockState, w: &mut Warp<'c>, inst: &Inst, pc: u32) -> Result<(), Fault> {
    let Op::Ldmatrix { dsts, addr, trans, generic } = &inst.op else { return Ok(()) };
    let rows_used = 8 * dsts.len();
    let space = if *generic { Space::Generic } else { Space::Shared };
    let b = base(ctx, w, addr);
    let mut rows = [[0u16; 8]; LANES];
    let mut offs = [0u32; LANES];
    for l in 0..rows_used {
        let a = w.rd(b, l).wrapping_add(addr.offset as u64);
        aligned(ctx, bs, w, l, pc, a, 16)?;
        let Target::Shared(o) = target(space, a) else {
            return Err(report::fault(
                ctx,
                bs,
                w,
                l,
                Some(pc),
                FaultKind::IllegalAddress,
                format!("ldmatrix reads shared memory, but lane {l}'s generic address {a:#x} is not in it"),
            ));
        };
        let o = shared(ctx, bs, w, l, pc, o, 16, false, false)?;
        for (e, v) in rows[l].iter_mut().enumerate() {
            *v = u16::from_le_bytes([bs.shared[o + 2 * e], bs.shared[o + 2 * e + 1]]);
        }
        offs[l] = o as u32;
    }
    let lanes = if rows_used == LANES { u32::MAX } else { (1u32 << rows_used) - 1 };
    let (phases, wavefronts) = traffic::wavefronts(&offs, lanes, 16);
    bs.stats.shared_load_requests += 1;
    bs.stats.shared_phases += phases;
    bs.stats.shared_wavefronts += wavefronts;
    // Every row was read above, so a destination that is also the address register is written only now.
    for (j, d) in dsts.iter().enumerate() {
        let d = w.row(*d);
        let m = &rows[8 * j..8 * j + 8];
        for lane in 0..LANES {
            let (r, c) = (lane / 4, 2 * (lane % 4));
            let (lo, hi) = if *trans { (m[c][r], m[c + 1][r]) } else { (m[r][c], m[r][c + 1]) };
            w.regs[d + lane] = lo as u64 | (hi as u64) << 16;
        }
    }
    Ok(())
}
