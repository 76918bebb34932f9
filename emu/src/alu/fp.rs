//! Exact IEEE 754 arithmetic on binary16, bfloat16, binary32 and binary64 values held as bit patterns.
//!
//! Every operation computes its exact result as an integer significand times a power of two (plus a sticky bit
//! for the bits a division or square root cannot represent, or an alignment shifts out), then rounds that value
//! once to the destination format in the requested direction. So `add/sub/mul/fma/div/sqrt` are correctly
//! rounded in all four IEEE modes, subnormals included, without relying on the host's rounding mode.
//!
//! NaN results are the canonical NaN of the format (all exponent and fraction bits set, sign clear: `0x7FFF` for
//! `.f16`/`.bf16`, `0x7FFFFFFF` for `.f32`, the PTX ISA's canonical NaN); NaN payloads are not propagated.

/// Rounding directions, as the `RM` const parameter of the instruction functions.
pub const RN: u8 = 0;
pub const RZ: u8 = 1;
pub const RM: u8 = 2;
pub const RP: u8 = 3;

/// A binary floating-point format.
pub trait Fmt {
    const BITS: u32;
    /// Significand precision, hidden bit included.
    const PREC: u32;
    /// Largest unbiased exponent (also the bias).
    const EMAX: i32;

    const SIGN: u64 = 1 << (Self::BITS - 1);
    const INF: u64 = ((1 << (Self::BITS - Self::PREC)) - 1) << (Self::PREC - 1);
    const NAN: u64 = Self::SIGN - 1;
    const MAX: u64 = Self::INF - 1;
    const ONE: u64 = (Self::EMAX as u64) << (Self::PREC - 1);
    const FRAC: u64 = (1 << (Self::PREC - 1)) - 1;
    /// Exponent of the last significand bit of the subnormals (and of the smallest normals).
    const QMIN: i32 = 1 - Self::EMAX - (Self::PREC as i32 - 1);
}

pub struct F16;
pub struct Bf16;
pub struct F32;
pub struct F64;

impl Fmt for F16 {
    const BITS: u32 = 16;
    const PREC: u32 = 11;
    const EMAX: i32 = 15;
}
impl Fmt for Bf16 {
    const BITS: u32 = 16;
    const PREC: u32 = 8;
    const EMAX: i32 = 127;
}
impl Fmt for F32 {
    const BITS: u32 = 32;
    const PREC: u32 = 24;
    const EMAX: i32 = 127;
}
impl Fmt for F64 {
    const BITS: u32 = 64;
    const PREC: u32 = 53;
    const EMAX: i32 = 1023;
}

pub fn is_nan<F: Fmt>(x: u64) -> bool {
    x & !F::SIGN > F::INF
}

pub fn is_subnormal<F: Fmt>(x: u64) -> bool {
    x & F::INF == 0 && x & F::FRAC != 0
}

/// `.ftz`: a subnormal becomes a zero of the same sign.
pub fn flush<F: Fmt>(x: u64, ftz: bool) -> u64 {
    if ftz && is_subnormal::<F>(x) { x & F::SIGN } else { x }
}

/// `.sat`: clamps to [+0.0, 1.0]; NaN and every negative value (-0.0 included) give +0.0.
pub fn saturate<F: Fmt>(x: u64) -> u64 {
    if is_nan::<F>(x) || x & F::SIGN != 0 {
        0
    } else if x > F::ONE {
        F::ONE
    } else {
        x
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nan,
    Inf,
    Zero,
    /// `mant * 2^exp`, `mant` non-zero.
    Finite {
        mant: u64,
        exp: i32,
    },
}

/// Sign and class of `x`; `ftz` reads subnormals as zeros.
pub fn unpack<F: Fmt>(x: u64, ftz: bool) -> (bool, Kind) {
    let neg = x & F::SIGN != 0;
    let field = (x & F::INF) >> (F::PREC - 1);
    let frac = x & F::FRAC;
    let kind = if x & F::INF == F::INF {
        if frac != 0 { Kind::Nan } else { Kind::Inf }
    } else if field == 0 {
        if frac == 0 || ftz { Kind::Zero } else { Kind::Finite { mant: frac, exp: F::QMIN } }
    } else {
        Kind::Finite { mant: frac | (F::FRAC + 1), exp: F::QMIN + field as i32 - 1 }
    };
    (neg, kind)
}

/// An exact value `(-1)^neg * (mant + s) * 2^exp` where `s` is 0 without `sticky` and lies strictly between 0
/// and 1 with it.
#[derive(Clone, Copy, Debug)]
pub struct Exact {
    pub neg: bool,
    pub exp: i32,
    pub mant: u128,
    pub sticky: bool,
}

impl Exact {
    pub fn new(neg: bool, mant: u128, exp: i32) -> Exact {
        Exact { neg, exp, mant, sticky: false }
    }
}

/// The largest finite value or infinity, as the rounding direction says an overflow goes.
fn overflow<F: Fmt>(neg: bool, rm: u8) -> u64 {
    let to_inf = match rm {
        RN => true,
        RZ => false,
        RM => neg,
        _ => !neg,
    };
    (if neg { F::SIGN } else { 0 }) | if to_inf { F::INF } else { F::MAX }
}

/// Rounds an exact value to format `F` in direction `rm` (IEEE 754: round the infinitely precise result to the
/// precision and exponent range of the destination, ties to even for `RN`).
pub fn round<F: Fmt>(x: Exact, rm: u8) -> u64 {
    let sign = if x.neg { F::SIGN } else { 0 };
    if x.mant == 0 && !x.sticky {
        return sign;
    }
    let prec = F::PREC as i32;
    let len = 128 - x.mant.leading_zeros() as i32;
    let top = x.exp + len - 1;
    let q = (top - (prec - 1)).max(F::QMIN);
    let (mut mant, mut shift) = (x.mant, q - x.exp);
    if shift < 2 {
        // Two spare bits below the last kept one, so that the sticky fraction lies below the rounding bit.
        mant <<= 2 - shift;
        shift = 2;
    }
    let (n, half, rest) = if shift > 128 {
        (0, false, true)
    } else {
        let n = if shift == 128 { 0 } else { mant >> shift };
        let half = (mant >> (shift - 1)) & 1 == 1;
        (n, half, mant & ((1u128 << (shift - 1)) - 1) != 0 || x.sticky)
    };
    let inexact = half || rest;
    let up = match rm {
        RN => half && (rest || n & 1 == 1),
        RZ => false,
        RM => x.neg && inexact,
        _ => !x.neg && inexact,
    };
    // The biased exponent field is `q - QMIN` plus the carry of the hidden bit into it.
    let mag = (((q - F::QMIN) as u128) << (F::PREC - 1)) + n + up as u128;
    if mag >= F::INF as u128 { overflow::<F>(x.neg, rm) } else { sign | mag as u64 }
}

/// Significand shifted so that its top bit is bit 125, with the exponent compensating.
fn widen(mant: u128, exp: i32) -> (u128, i32) {
    let s = mant.leading_zeros() as i32 - 2;
    (mant << s, exp - s)
}

/// The exact sum of two non-zero values. Both are widened to 126 bits; when their exponents differ by two or
/// more (no deep cancellation possible) the bits of the smaller one shifted out become the sticky bit, and a
/// subtraction then borrows one unit so that the fraction stays in (0, 1). An exact zero sum is +0, or -0 when
/// rounding toward negative infinity (IEEE 754 6.3).
pub fn add_exact(a: Exact, b: Exact, rm: u8) -> Exact {
    let (am, ae) = widen(a.mant, a.exp);
    let (bm, be) = widen(b.mant, b.exp);
    let ((xm, xe, xn), (ym, ye, yn)) =
        if ae >= be { ((am, ae, a.neg), (bm, be, b.neg)) } else { ((bm, be, b.neg), (am, ae, a.neg)) };
    let d = xe - ye;
    if d <= 1 {
        let xm = xm << d;
        return if xn == yn {
            Exact::new(xn, xm + ym, ye)
        } else if xm != ym {
            let (neg, mant) = if xm > ym { (xn, xm - ym) } else { (yn, ym - xm) };
            Exact::new(neg, mant, ye)
        } else {
            Exact::new(rm == RM, 0, ye)
        };
    }
    let (ys, st) = if d >= 128 { (0, true) } else { (ym >> d, ym & ((1u128 << d) - 1) != 0) };
    if xn == yn {
        Exact { neg: xn, exp: xe, mant: xm + ys, sticky: st }
    } else {
        Exact { neg: xn, exp: xe, mant: xm - ys - st as u128, sticky: st }
    }
}

fn finite(neg: bool, kind: Kind) -> Option<Exact> {
    match kind {
        Kind::Finite { mant, exp } => Some(Exact::new(neg, mant as u128, exp)),
        _ => None,
    }
}

fn zero<F: Fmt>(neg: bool) -> u64 {
    if neg { F::SIGN } else { 0 }
}

fn inf<F: Fmt>(neg: bool) -> u64 {
    zero::<F>(neg) | F::INF
}

/// The sign of an exact zero sum of two zeros: negative only if both are, or when rounding toward negative
/// infinity and either is (IEEE 754 6.3).
fn zero_sum_sign(an: bool, bn: bool, rm: u8) -> bool {
    if rm == RM { an || bn } else { an && bn }
}

/// `a + b`, correctly rounded; `ftz` flushes subnormal inputs and results.
pub fn add<F: Fmt>(a: u64, b: u64, rm: u8, ftz: bool) -> u64 {
    let (an, ak) = unpack::<F>(a, ftz);
    let (bn, bk) = unpack::<F>(b, ftz);
    let r = match (ak, bk) {
        (Kind::Nan, _) | (_, Kind::Nan) => F::NAN,
        (Kind::Inf, Kind::Inf) if an != bn => F::NAN,
        (Kind::Inf, _) => inf::<F>(an),
        (_, Kind::Inf) => inf::<F>(bn),
        (Kind::Zero, Kind::Zero) => zero::<F>(zero_sum_sign(an, bn, rm)),
        (Kind::Zero, _) => b,
        (_, Kind::Zero) => a,
        _ => round::<F>(add_exact(finite(an, ak).unwrap(), finite(bn, bk).unwrap(), rm), rm),
    };
    flush::<F>(r, ftz)
}

/// `a * b`, correctly rounded.
pub fn mul<F: Fmt>(a: u64, b: u64, rm: u8, ftz: bool) -> u64 {
    let (an, ak) = unpack::<F>(a, ftz);
    let (bn, bk) = unpack::<F>(b, ftz);
    let neg = an != bn;
    let r = match (ak, bk) {
        (Kind::Nan, _) | (_, Kind::Nan) => F::NAN,
        (Kind::Inf, Kind::Zero) | (Kind::Zero, Kind::Inf) => F::NAN,
        (Kind::Inf, _) | (_, Kind::Inf) => inf::<F>(neg),
        (Kind::Zero, _) | (_, Kind::Zero) => zero::<F>(neg),
        (Kind::Finite { mant: am, exp: ae }, Kind::Finite { mant: bm, exp: be }) => {
            round::<F>(Exact::new(neg, am as u128 * bm as u128, ae + be), rm)
        }
    };
    flush::<F>(r, ftz)
}

/// `a * b + c` with a single rounding.
pub fn fma<F: Fmt>(a: u64, b: u64, c: u64, rm: u8, ftz: bool) -> u64 {
    let (an, ak) = unpack::<F>(a, ftz);
    let (bn, bk) = unpack::<F>(b, ftz);
    let (cn, ck) = unpack::<F>(c, ftz);
    let pn = an != bn;
    let r = match (ak, bk, ck) {
        (Kind::Nan, _, _) | (_, Kind::Nan, _) | (_, _, Kind::Nan) => F::NAN,
        (Kind::Inf, Kind::Zero, _) | (Kind::Zero, Kind::Inf, _) => F::NAN,
        (Kind::Inf, _, Kind::Inf) | (_, Kind::Inf, Kind::Inf) if pn != cn => F::NAN,
        (Kind::Inf, _, _) | (_, Kind::Inf, _) => inf::<F>(pn),
        (_, _, Kind::Inf) => inf::<F>(cn),
        (Kind::Zero, _, Kind::Zero) | (_, Kind::Zero, Kind::Zero) => zero::<F>(zero_sum_sign(pn, cn, rm)),
        (Kind::Zero, _, _) | (_, Kind::Zero, _) => flush::<F>(c, ftz),
        (Kind::Finite { mant: am, exp: ae }, Kind::Finite { mant: bm, exp: be }, ck) => {
            let p = Exact::new(pn, am as u128 * bm as u128, ae + be);
            match finite(cn, ck) {
                Some(c) => round::<F>(add_exact(p, c, rm), rm),
                None => round::<F>(p, rm),
            }
        }
    };
    flush::<F>(r, ftz)
}

/// `a / b`, correctly rounded: the quotient of the significands is taken to at least 71 bits, the remainder
/// becomes the sticky bit.
pub fn div<F: Fmt>(a: u64, b: u64, rm: u8, ftz: bool) -> u64 {
    let (an, ak) = unpack::<F>(a, ftz);
    let (bn, bk) = unpack::<F>(b, ftz);
    let neg = an != bn;
    let r = match (ak, bk) {
        (Kind::Nan, _) | (_, Kind::Nan) => F::NAN,
        (Kind::Inf, Kind::Inf) | (Kind::Zero, Kind::Zero) => F::NAN,
        (Kind::Inf, _) | (_, Kind::Zero) => inf::<F>(neg),
        (Kind::Zero, _) | (_, Kind::Inf) => zero::<F>(neg),
        (Kind::Finite { mant: am, exp: ae }, Kind::Finite { mant: bm, exp: be }) => {
            let sa = am.leading_zeros() as i32 - 11;
            let sb = bm.leading_zeros() as i32 - 11;
            let (na, nb) = ((am as u128) << (sa + 72), (bm as u128) << sb);
            let q = Exact { neg, exp: (ae - sa) - (be - sb) - 72, mant: na / nb, sticky: na % nb != 0 };
            round::<F>(q, rm)
        }
    };
    flush::<F>(r, ftz)
}

/// `sqrt(a)`, correctly rounded: the integer square root of the significand widened to about 120 bits (with an
/// even exponent), the remainder becoming the sticky bit. `sqrt(-0) = -0`; other negative inputs give NaN.
pub fn sqrt<F: Fmt>(a: u64, rm: u8, ftz: bool) -> u64 {
    let (neg, kind) = unpack::<F>(a, ftz);
    let r = match kind {
        Kind::Nan => F::NAN,
        Kind::Zero => zero::<F>(neg),
        _ if neg => F::NAN,
        Kind::Inf => F::INF,
        Kind::Finite { mant, exp } => {
            let s = mant.leading_zeros() as i32 + 56;
            let (mut m, mut e) = ((mant as u128) << s, exp - s);
            if e & 1 != 0 {
                m <<= 1;
                e -= 1;
            }
            let root = m.isqrt();
            round::<F>(Exact { neg: false, exp: e / 2, mant: root, sticky: root * root != m }, rm)
        }
    };
    flush::<F>(r, ftz)
}

/// Converts `a` of format `A` to format `B` with rounding `rm` (exact when `B` is wider).
pub fn convert<A: Fmt, B: Fmt>(a: u64, rm: u8, ftz_in: bool) -> u64 {
    let (neg, kind) = unpack::<A>(a, ftz_in);
    match kind {
        Kind::Nan => B::NAN,
        Kind::Inf => inf::<B>(neg),
        Kind::Zero => zero::<B>(neg),
        Kind::Finite { mant, exp } => round::<B>(Exact::new(neg, mant as u128, exp), rm),
    }
}

/// The value of `a` rounded to an integer in direction `rm`, as a sign and magnitude; `None` for NaN and
/// infinities. Magnitudes of 2^127 and more are reported as `u128::MAX` (every integer destination saturates
/// below that).
pub fn to_integer<F: Fmt>(a: u64, rm: u8, ftz: bool) -> Option<(bool, u128)> {
    let (neg, kind) = unpack::<F>(a, ftz);
    match kind {
        Kind::Nan | Kind::Inf => None,
        Kind::Zero => Some((neg, 0)),
        Kind::Finite { mant, exp } if exp >= 0 => {
            let len = 64 - mant.leading_zeros() as i32;
            Some((neg, if exp + len > 127 { u128::MAX } else { (mant as u128) << exp }))
        }
        Kind::Finite { mant, exp } => {
            let shift = (-exp) as u32;
            let (n, half, rest) = if shift > 64 {
                (0, false, true)
            } else {
                let m = mant as u128;
                (m >> shift, (m >> (shift - 1)) & 1 == 1, m & ((1u128 << (shift - 1)) - 1) != 0)
            };
            let inexact = half || rest;
            let up = match rm {
                RN => half && (rest || n & 1 == 1),
                RZ => false,
                RM => neg && inexact,
                _ => !neg && inexact,
            };
            Some((neg, n + up as u128))
        }
    }
}

/// `a` rounded to an integral value of the same format (`cvt.rni.f32.f32` and friends): values whose last
/// significand bit weighs 1 or more are already integral.
pub fn round_integral<F: Fmt>(a: u64, rm: u8, ftz: bool) -> u64 {
    let (neg, kind) = unpack::<F>(a, ftz);
    match kind {
        Kind::Nan => F::NAN,
        Kind::Inf | Kind::Zero => flush::<F>(a, ftz),
        Kind::Finite { exp, .. } if exp >= 0 => a,
        Kind::Finite { .. } => {
            let (_, n) = to_integer::<F>(a, rm, ftz).unwrap();
            round::<F>(Exact::new(neg, n, 0), rm)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_to_bf16_ties_to_even() {
        // 0x3F808000 = 1 + 2^-8 exactly half-way between bf16 1.0 (0x3F80) and 1 + 2^-7 (0x3F81): even is 0x3F80.
        assert_eq!(convert::<F32, Bf16>(0x3F80_8000, RN, false), 0x3F80);
        // 0x3F818000 lies half-way between 0x3F81 and 0x3F82: even is 0x3F82.
        assert_eq!(convert::<F32, Bf16>(0x3F81_8000, RN, false), 0x3F82);
        // Just above the half-way point rounds up.
        assert_eq!(convert::<F32, Bf16>(0x3F80_8001, RN, false), 0x3F81);
    }

    #[test]
    fn round_subnormal_and_overflow() {
        // 2^-150 is half of the smallest f32 subnormal: ties to even gives +0, toward +inf the smallest subnormal.
        let tiny = Exact::new(false, 1, -150);
        assert_eq!(round::<F32>(tiny, RN), 0);
        assert_eq!(round::<F32>(tiny, RP), 1);
        assert_eq!(round::<F32>(Exact::new(true, 1, -150), RM), 0x8000_0001);
        // 3 * 2^-150 is 1.5 subnormal units: ties to even gives 2 units.
        assert_eq!(round::<F32>(Exact::new(false, 3, -150), RN), 2);
        // 2^128 overflows: infinity to nearest, the largest finite value toward zero.
        assert_eq!(round::<F32>(Exact::new(false, 1, 128), RN), 0x7F80_0000);
        assert_eq!(round::<F32>(Exact::new(false, 1, 128), RZ), 0x7F7F_FFFF);
        assert_eq!(round::<F32>(Exact::new(true, 1, 128), RP), 0xFF7F_FFFF);
        // The largest subnormal plus half a unit rounds up into the smallest normal.
        assert_eq!(round::<F32>(Exact::new(false, (0x7F_FFFF << 1) | 1, -150), RN), 0x0080_0000);
    }
}
