//! Operand helpers the instructions share: the sources of a vector resolved into scratch slots, and width masks.

use super::block_state::BlockState;
use super::context::Ctx;
use super::fault::{Fault, FaultKind};
use super::report::{self, first};
use super::warp::{SCRATCH_SLOTS, Src, Warp};
use crate::ir::Operand;

/// Resolves the sources of a `Pack` or vector store (a scratch slot each): the first `n` of the array.
pub fn sources<'c>(
    ctx: &'c Ctx<'_>,
    bs: &BlockState,
    w: &mut Warp<'c>,
    pc: u32,
    group: u32,
    srcs: &[Operand],
) -> Result<([Src; SCRATCH_SLOTS], usize), Fault> {
    if srcs.len() > SCRATCH_SLOTS {
        return Err(report::fault(
            ctx,
            bs,
            w,
            first(group, group),
            Some(pc),
            FaultKind::Undefined,
            format!("{} sources in one vector (at most {SCRATCH_SLOTS})", srcs.len()),
        ));
    }
    let mut s = [w.zero(); SCRATCH_SLOTS];
    for (i, op) in srcs.iter().enumerate() {
        s[i] = w.src(*op, i, ctx);
    }
    Ok((s, srcs.len()))
}

/// The low `bits` bits.
#[inline(always)]
pub fn width_mask(bits: u32) -> u64 {
    if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 }
}
