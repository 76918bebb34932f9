//! `mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32`: the warp's fragments gathered into A
//! (16 x 16), B (16 x 8) and C (16 x 8) by the PTX ISA's layouts, `D = C + A B` with every product exact in f32
//! and the products of a dot summed in f32 in k order before C is added, then D scattered back.
//!
//! Layouts (groupID g = lane >> 2, threadID_in_group t = lane % 4; a register's low half is the lower column or
//! row): A's registers hold (row g, cols 2t..2t+1), (row g+8, cols 2t..2t+1), (row g, cols 2t+8..2t+9), (row g+8,
//! cols 2t+8..2t+9); B's hold (rows 2t..2t+1, col g) and (rows 2t+8..2t+9, col g); C and D hold (row g, cols 2t,
//! 2t+1) and (row g+8, cols 2t, 2t+1), one f32 each.

use super::context::Ctx;
use super::warp::{LANES, Warp};
use crate::ir::{Inst, Op};

pub fn execute(ctx: &Ctx<'_>, w: &mut Warp<'_>, inst: &Inst) {
    let Op::Mma { bf16, d, a, b, c } = &inst.op else { return };
    let half = |bits: u64| if *bf16 { f32::from_bits((bits as u32 & 0xFFFF) << 16) } else { f32_of_f16(bits as u16) };
    let c = [0, 1, 2, 3].map(|i| w.src(c[i], i, ctx));
    let (a, b, d) = (a.map(|r| w.row(r)), b.map(|r| w.row(r)), d.map(|r| w.row(r)));
    let mut ma = [[0f32; 16]; 16];
    let mut mb = [[0f32; 8]; 16];
    let mut mc = [[0f32; 8]; 16];
    for lane in 0..LANES {
        let (g, t) = (lane >> 2, lane % 4);
        for (i, (row, col)) in [(g, 2 * t), (g + 8, 2 * t), (g, 2 * t + 8), (g + 8, 2 * t + 8)].into_iter().enumerate()
        {
            let v = w.regs[a[i] + lane];
            ma[row][col] = half(v);
            ma[row][col + 1] = half(v >> 16);
        }
        for (i, row) in [2 * t, 2 * t + 8].into_iter().enumerate() {
            let v = w.regs[b[i] + lane];
            mb[row][g] = half(v);
            mb[row + 1][g] = half(v >> 16);
        }
        for (i, (row, col)) in [(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)].into_iter().enumerate()
        {
            mc[row][col] = f32::from_bits(w.rd(c[i], lane) as u32);
        }
    }
    // Row by row, the eight dots advance together through k (each still summed in k order).
    let mut dots = [[0f32; 8]; 16];
    for (dot, arow) in dots.iter_mut().zip(&ma) {
        for (x, brow) in arow.iter().zip(&mb) {
            for (acc, y) in dot.iter_mut().zip(brow) {
                *acc += x * y;
            }
        }
    }
    for lane in 0..LANES {
        let (g, t) = (lane >> 2, lane % 4);
        for (i, (row, col)) in [(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)].into_iter().enumerate()
        {
            w.regs[d[i] + lane] = (mc[row][col] + dots[row][col]).to_bits() as u64;
        }
    }
}

/// IEEE binary16 to f32 (exact).
pub fn f32_of_f16(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1F) as u32;
    let frac = (h & 0x3FF) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise the fraction.
            let shift = frac.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | ((frac << shift) & 0x3FF) << 13
        }
        (31, 0) => sign | 0x7F80_0000,
        (31, _) => sign | 0x7FC0_0000 | frac << 13,
        _ => sign | ((exp + 112) << 23) | frac << 13,
    };
    f32::from_bits(bits)
}
