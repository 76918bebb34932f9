//! Integer arithmetic on `.u16/.s16/.u32/.s32/.u64/.s64` (and the same-width `.bN`): `add sub mul mad div rem
//! min max abs neg sad mul24 mad24` and the extended-precision `add.cc addc sub.cc subc mad.cc madc`.
//!
//! PTX rules applied here: results wrap modulo 2^width unless `.sat` (`.s32` only) clamps them to the signed
//! range; `mul/mad .hi` keep the upper half of the double-width product and `.wide` all of it; `.cc` writes the
//! carry out of the (final) addition into the lane's carry flag, `addc/madc` add the flag in; for subtraction
//! the flag is the borrow: `sub.cc` sets it when `a < b` (unsigned), `subc` computes `a - (b + CF)`.
//! Division by zero is undefined in the ISA; here `div` gives all ones and `rem` gives `a`, as the hardware does
//! for unsigned operands. `abs`/`neg` of the most negative value wrap to itself.

use super::Spec;
use crate::ir::{AluFn, Ty};

pub(crate) const fn mask(w: u32) -> u64 {
    if w >= 64 { !0 } else { (1 << w) - 1 }
}

/// `x` sign-extended from its low `W` bits.
pub(crate) fn sx<const W: u32>(x: u64) -> i64 {
    ((x << (64 - W)) as i64) >> (64 - W)
}

/// The value of the `W`-bit operand `x`, signed or not.
fn val<const W: u32, const S: bool>(x: u64) -> i128 {
    if S { sx::<W>(x) as i128 } else { (x & mask(W)) as i128 }
}

fn add<const W: u32, const CIN: bool, const COUT: bool>(s: &[u64; 4], cf: &mut bool) -> u64 {
    let sum = (s[0] & mask(W)) as u128 + (s[1] & mask(W)) as u128 + (CIN && *cf) as u128;
    if COUT {
        *cf = (sum >> W) & 1 == 1;
    }
    sum as u64 & mask(W)
}

fn sub<const W: u32, const CIN: bool, const COUT: bool>(s: &[u64; 4], cf: &mut bool) -> u64 {
    let diff = (s[0] & mask(W)) as i128 - (s[1] & mask(W)) as i128 - (CIN && *cf) as i128;
    if COUT {
        *cf = diff < 0;
    }
    diff as u64 & mask(W)
}

/// `add.sat.s32` / `sub.sat.s32`: the exact signed result clamped to the range of `.s32`.
fn addsub_sat<const W: u32, const SUB: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let (a, b) = (val::<W, true>(s[0]), val::<W, true>(s[1]));
    let r = if SUB { a - b } else { a + b };
    let lim = 1i128 << (W - 1);
    r.clamp(-lim, lim - 1) as u64 & mask(W)
}

const LO: u8 = 0;
const HI: u8 = 1;
const WIDE: u8 = 2;

/// The part `MODE` of the double-width product, and the width of that part.
fn product<const W: u32, const S: bool, const MODE: u8>(a: u64, b: u64) -> (u64, u32) {
    let p = val::<W, S>(a).wrapping_mul(val::<W, S>(b)) as u128;
    match MODE {
        LO => (p as u64 & mask(W), W),
        HI => ((p >> W) as u64 & mask(W), W),
        _ => (p as u64 & mask(2 * W), 2 * W),
    }
}

fn mul<const W: u32, const S: bool, const MODE: u8>(s: &[u64; 4], _: &mut bool) -> u64 {
    product::<W, S, MODE>(s[0], s[1]).0
}

fn mad<const W: u32, const S: bool, const MODE: u8, const CIN: bool, const COUT: bool>(
    s: &[u64; 4],
    cf: &mut bool,
) -> u64 {
    let (p, dw) = product::<W, S, MODE>(s[0], s[1]);
    let sum = p as u128 + (s[2] & mask(dw)) as u128 + (CIN && *cf) as u128;
    if COUT {
        *cf = (sum >> dw) & 1 == 1;
    }
    sum as u64 & mask(dw)
}

fn div<const W: u32, const S: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let (a, b) = (val::<W, S>(s[0]), val::<W, S>(s[1]));
    if b == 0 { mask(W) } else { (a / b) as u64 & mask(W) }
}

fn rem<const W: u32, const S: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let (a, b) = (val::<W, S>(s[0]), val::<W, S>(s[1]));
    if b == 0 { s[0] & mask(W) } else { (a % b) as u64 & mask(W) }
}

fn minmax<const W: u32, const S: bool, const MAX: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let (a, b) = (val::<W, S>(s[0]), val::<W, S>(s[1]));
    (if (a < b) != MAX { a } else { b }) as u64 & mask(W)
}

fn abs<const W: u32>(s: &[u64; 4], _: &mut bool) -> u64 {
    val::<W, true>(s[0]).unsigned_abs() as u64 & mask(W)
}

fn neg<const W: u32>(s: &[u64; 4], _: &mut bool) -> u64 {
    s[0].wrapping_neg() & mask(W)
}

/// `mul24/mad24 .lo/.hi`: the 48-bit product of the low 24 bits of `a` and `b` (sign-extended for `.s32`),
/// `.lo` its bits 31..0 and `.hi` its bits 47..16, plus `c` for `mad24`.
fn mul24<const S: bool, const HI: bool, const MAD: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let p = val::<24, S>(s[0]) * val::<24, S>(s[1]);
    let part = if HI { (p >> 16) as u64 } else { p as u64 };
    (if MAD { part.wrapping_add(s[2]) } else { part }) & mask(32)
}

/// `sad`: `c + |a - b|`.
fn sad<const W: u32, const S: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let d = (val::<W, S>(s[0]) - val::<W, S>(s[1])).unsigned_abs() as u64;
    s[2].wrapping_add(d) & mask(W)
}

pub(crate) fn resolve(s: &Spec) -> Result<AluFn, String> {
    let ty = s.ty()?;
    if matches!(ty, Ty::Pred | Ty::U8 | Ty::S8 | Ty::B8) {
        return Err(s.unsupported());
    }
    let cc = s.has("cc");
    let sat = s.has("sat");
    if sat && ty != Ty::S32 {
        return Err(s.err(".sat applies to .s32 only"));
    }
    let mode = match (s.has("lo"), s.has("hi"), s.has("wide")) {
        (_, false, false) => LO,
        (false, true, false) => HI,
        (false, false, true) if matches!(ty, Ty::U16 | Ty::S16 | Ty::U32 | Ty::S32) => WIDE,
        _ => return Err(s.err("bad .lo/.hi/.wide")),
    };
    let unsupported = || Err(s.unsupported());
    match s.op {
        "add" | "sub" | "addc" | "subc" => s.only(&["cc", "sat"])?,
        "mul" | "mul24" | "mad24" => s.only(&["lo", "hi", "wide"])?,
        "mad" | "madc" => s.only(&["lo", "hi", "wide", "cc"])?,
        _ => s.only(&[])?,
    }
    if (s.op.starts_with("mul") || s.op.starts_with("mad")) && !(s.has("lo") || s.has("hi") || s.has("wide")) {
        return Err(s.err(".lo, .hi or .wide required"));
    }
    if sat && cc {
        return Err(s.err(".sat with .cc"));
    }
    if matches!(s.op, "mul24" | "mad24") {
        s.only(&["lo", "hi"])?;
        let hi = s.has("hi");
        return with_bool!(hi, H => match ty {
            Ty::U32 => Ok(if s.op == "mad24" { mul24::<false, H, true> } else { mul24::<false, H, false> }),
            Ty::S32 => Ok(if s.op == "mad24" { mul24::<true, H, true> } else { mul24::<true, H, false> }),
            _ => unsupported(),
        });
    }
    let cin = matches!(s.op, "addc" | "subc" | "madc");
    with_int!(ty, W, S => with_bool!(cin, I => with_bool!(cc, O => match s.op {
        "add" | "addc" if sat => Ok(addsub_sat::<W, false> as AluFn),
        "sub" | "subc" if sat => Ok(addsub_sat::<W, true> as AluFn),
        "add" | "addc" => Ok(add::<W, I, O> as AluFn),
        "sub" | "subc" => Ok(sub::<W, I, O> as AluFn),
        "mul" => Ok(match mode {
            LO => mul::<W, S, LO> as AluFn,
            HI => mul::<W, S, HI> as AluFn,
            _ => mul::<W, S, WIDE> as AluFn,
        }),
        "mad" | "madc" => Ok(match mode {
            LO => mad::<W, S, LO, I, O> as AluFn,
            HI => mad::<W, S, HI, I, O> as AluFn,
            _ => mad::<W, S, WIDE, I, O> as AluFn,
        }),
        "div" => Ok(div::<W, S> as AluFn),
        "rem" => Ok(rem::<W, S> as AluFn),
        "min" => Ok(minmax::<W, S, false> as AluFn),
        "max" => Ok(minmax::<W, S, true> as AluFn),
        "abs" if S => Ok(abs::<W> as AluFn),
        "neg" if S => Ok(neg::<W> as AluFn),
        "sad" => Ok(sad::<W, S> as AluFn),
        _ => unsupported(),
    })), _ => unsupported())
}

#[cfg(test)]
mod tests {
    use crate::alu::tests::{run, run_cc};

    #[test]
    fn wrap_and_saturate() {
        assert_eq!(run("add.s32", &[0x7FFF_FFFF, 1]), 0x8000_0000);
        assert_eq!(run("add.u16", &[0xFFFF, 1]), 0);
        assert_eq!(run("sub.s64", &[0, 1]), u64::MAX);
        assert_eq!(run("add.sat.s32", &[0x7FFF_FFFF, 1]), 0x7FFF_FFFF);
        assert_eq!(run("sub.sat.s32", &[0x8000_0000, 1]), 0x8000_0000);
        assert_eq!(run("add.sat.s32", &[0xFFFF_FFFF, 0xFFFF_FFFF]), 0xFFFF_FFFE);
        assert_eq!(run("abs.s32", &[0x8000_0000]), 0x8000_0000);
        assert_eq!(run("abs.s16", &[0xFFFF]), 1);
        assert_eq!(run("neg.s64", &[1]), u64::MAX);
        assert_eq!(run("neg.s32", &[0x8000_0000]), 0x8000_0000);
    }

    #[test]
    fn carry_chains_compute_wide_sums() {
        // 0x1_FFFFFFFF + 0x2_00000001 = 0x4_00000000, in two 32-bit halves.
        let mut cf = false;
        assert_eq!(run_cc("add.cc.u32", &[0xFFFF_FFFF, 0x0000_0001], &mut cf), 0);
        assert!(cf);
        assert_eq!(run_cc("addc.u32", &[0x1, 0x2], &mut cf), 4);
        // A three-limb chain through addc.cc: 0xFFFFFFFF_FFFFFFFF_FFFFFFFF + 1 carries into the fourth limb.
        let mut cf = false;
        assert_eq!(run_cc("add.cc.u32", &[0xFFFF_FFFF, 1], &mut cf), 0);
        assert_eq!(run_cc("addc.cc.u32", &[0xFFFF_FFFF, 0], &mut cf), 0);
        assert_eq!(run_cc("addc.cc.u32", &[0xFFFF_FFFF, 0], &mut cf), 0);
        assert!(cf);
        assert_eq!(run_cc("addc.u32", &[0, 0], &mut cf), 1);
        // 0x1_00000000 - 1 = 0x0_FFFFFFFF: the low half borrows.
        let mut cf = false;
        assert_eq!(run_cc("sub.cc.u32", &[0, 1], &mut cf), 0xFFFF_FFFF);
        assert!(cf);
        assert_eq!(run_cc("subc.u32", &[1, 0], &mut cf), 0);
        let mut cf = true;
        assert_eq!(run_cc("subc.cc.u32", &[5, 2], &mut cf), 2);
        assert!(!cf);
        // 64-bit carry out.
        let mut cf = false;
        assert_eq!(run_cc("add.cc.u64", &[u64::MAX, 2], &mut cf), 1);
        assert!(cf);
        // Plain add leaves the flag alone.
        assert_eq!(run_cc("add.u32", &[0xFFFF_FFFF, 1], &mut cf), 0);
        assert!(cf);
    }

    #[test]
    fn mad_carry_chain_computes_a_wide_product_sum() {
        // 0xFFFFFFFF * 0xFFFFFFFF + 0xFFFFFFFF = 0xFFFFFFFE_00000001 + 0xFFFFFFFF = 0xFFFFFFFF_00000000.
        let mut cf = false;
        assert_eq!(run_cc("mad.lo.cc.u32", &[0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], &mut cf), 0);
        assert!(cf);
        assert_eq!(run_cc("madc.hi.u32", &[0xFFFF_FFFF, 0xFFFF_FFFF, 0], &mut cf), 0xFFFF_FFFF);
        let mut cf = true;
        assert_eq!(run_cc("madc.hi.cc.u32", &[0xFFFF_FFFF, 0xFFFF_FFFF, 1], &mut cf), 0);
        assert!(cf);
        let mut cf = true;
        assert_eq!(run_cc("madc.lo.cc.u32", &[2, 3, 4], &mut cf), 11);
        assert!(!cf);
    }

    #[test]
    fn products_of_signed_negatives() {
        // -2 * 3 = -6 = 0xFFFFFFFF_FFFFFFFA.
        assert_eq!(run("mul.lo.s32", &[0xFFFF_FFFE, 3]), 0xFFFF_FFFA);
        assert_eq!(run("mul.hi.s32", &[0xFFFF_FFFE, 3]), 0xFFFF_FFFF);
        assert_eq!(run("mul.wide.s32", &[0xFFFF_FFFE, 3]), 0xFFFF_FFFF_FFFF_FFFA);
        // The same bits read unsigned: 0xFFFFFFFE * 3 = 0x2_FFFFFFFA.
        assert_eq!(run("mul.hi.u32", &[0xFFFF_FFFE, 3]), 2);
        assert_eq!(run("mul.wide.u32", &[0xFFFF_FFFF, 0xFFFF_FFFF]), 0xFFFF_FFFE_0000_0001);
        assert_eq!(run("mul.wide.s16", &[0x8000, 0x8000]), 0x4000_0000);
        assert_eq!(run("mul.hi.u64", &[1 << 63, 4]), 2);
        // -2^63 * 2 = -2^64: high half all ones, low half zero.
        assert_eq!(run("mul.hi.s64", &[1 << 63, 2]), u64::MAX);
        assert_eq!(run("mul.lo.s64", &[1 << 63, 2]), 0);
        assert_eq!(run("mul.hi.s64", &[u64::MAX, u64::MAX]), 0);
        assert_eq!(run("mad.lo.s32", &[0xFFFF_FFFF, 5, 10]), 5);
        assert_eq!(run("mad.wide.s32", &[0xFFFF_FFFF, 5, 10]), 5);
        assert_eq!(run("mad.hi.s32", &[0xFFFF_FFFF, 5, 10]), 9);
    }

    #[test]
    fn division_truncates_toward_zero() {
        assert_eq!(run("div.s32", &[(-7i32) as u32 as u64, 2]), (-3i32) as u32 as u64);
        assert_eq!(run("rem.s32", &[(-7i32) as u32 as u64, 2]), 0xFFFF_FFFF);
        assert_eq!(run("div.u32", &[(-7i32) as u32 as u64, 2]), 0x7FFF_FFFC);
        assert_eq!(run("div.s32", &[0x8000_0000, 0xFFFF_FFFF]), 0x8000_0000);
        assert_eq!(run("rem.s32", &[0x8000_0000, 0xFFFF_FFFF]), 0);
        assert_eq!(run("div.u32", &[7, 0]), 0xFFFF_FFFF);
        assert_eq!(run("rem.u64", &[7, 0]), 7);
        assert_eq!(run("div.s64", &[(-9i64) as u64, 4]), (-2i64) as u64);
        assert_eq!(run("rem.s64", &[9, (-4i64) as u64]), 1);
    }

    #[test]
    fn min_max_by_signedness() {
        assert_eq!(run("min.s32", &[0xFFFF_FFFF, 1]), 0xFFFF_FFFF);
        assert_eq!(run("min.u32", &[0xFFFF_FFFF, 1]), 1);
        assert_eq!(run("max.s64", &[u64::MAX, 0]), 0);
        assert_eq!(run("max.u64", &[u64::MAX, 0]), u64::MAX);
        assert_eq!(run("max.s16", &[0x8000, 0x7FFF]), 0x7FFF);
        assert_eq!(run("sad.s32", &[0xFFFF_FFFF, 2, 10]), 13);
    }

    #[test]
    fn mul24_uses_the_low_24_bits() {
        // 0x00FFFFFF * 0x00FFFFFF = 0xFFFFFE000001 (48 bits); the top byte of each operand is ignored.
        assert_eq!(run("mul24.lo.u32", &[0xABFF_FFFF, 0x00FF_FFFF]), 0xFE00_0001);
        assert_eq!(run("mul24.hi.u32", &[0xABFF_FFFF, 0x00FF_FFFF]), 0xFFFF_FE00);
        // As .s32 the operands are -1: the product is 1.
        assert_eq!(run("mul24.lo.s32", &[0x00FF_FFFF, 0x00FF_FFFF]), 1);
        assert_eq!(run("mul24.hi.s32", &[0x00FF_FFFF, 2]), 0xFFFF_FFFF);
        assert_eq!(run("mad24.lo.s32", &[0x00FF_FFFF, 3, 5]), 2);
    }
}
