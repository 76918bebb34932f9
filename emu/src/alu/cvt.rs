//! `cvt` between `.u8..u64`, `.s8..s64`, `.f16`, `.bf16`, `.f32`, `.f64`, and `cvt.frnd.{f16x2,bf16x2}.f32`.
//!
//! PTX rules applied here (ISA 9.7.9.21):
//! - integer to integer: wraps to the destination width (the low bits), or with `.sat` clamps to its range;
//! - float to integer: rounded by the required `.rni/.rzi/.rmi/.rpi`, then clamped to the destination range
//!   (saturation is the default); NaN gives 0, except when the source is `.f64` or the destination is 64 bits
//!   wide, where it gives `1 << (width - 1)`;
//! - integer to float and narrowing float conversions: rounded by the required `.rn/.rz/.rm/.rp`;
//! - float to the same float type with `.rni/.rzi/.rmi/.rpi`: rounded to an integral value;
//! - `.ftz` flushes `.f32` subnormal inputs and results (only `.f32` ones) to sign-preserving zero;
//! - `.sat` (float destinations) clamps to [0.0, 1.0], NaN giving +0.0; `.relu` (`.f16/.bf16` destinations)
//!   clamps negative results to +0.0 and keeps NaN a (canonical) NaN; `.satfinite` turns results beyond the
//!   largest finite value into that value with the sign kept, NaN staying NaN;
//! - NaN float results are the destination's canonical NaN (`0x7FFF` for `.bf16` and `.f16`).
//!
//! Integer results are masked to the destination type's width (a signed 8- or 16-bit result written to a wider
//! register is the lowering's to sign-extend).

use super::Spec;
use super::fp::{self, Exact, Fmt};
use super::int::{mask, sx};
use crate::ir::{AluFn, Ty};

/// Post-processing of float results.
const PLAIN: u8 = 0;
const SAT: u8 = 1;
const RELU: u8 = 2;
const SATFINITE: u8 = 3;
const RELU_SATFINITE: u8 = 4;

fn post<F: Fmt, const POST: u8>(x: u64) -> u64 {
    let relu = |x: u64| if x & F::SIGN != 0 && !fp::is_nan::<F>(x) { 0 } else { x };
    let finite = |x: u64| if x & !F::SIGN == F::INF { (x & F::SIGN) | F::MAX } else { x };
    match POST {
        PLAIN => x,
        SAT => fp::saturate::<F>(x),
        RELU => relu(x),
        SATFINITE => finite(x),
        _ => relu(finite(x)),
    }
}

fn int_value<const W: u32, const S: bool>(x: u64) -> i128 {
    if S { sx::<W>(x) as i128 } else { (x & mask(W)) as i128 }
}

fn int_range<const W: u32, const S: bool>() -> (i128, i128) {
    if S { (-(1i128 << (W - 1)), (1i128 << (W - 1)) - 1) } else { (0, mask(W) as i128) }
}

fn int_int<const DW: u32, const DS: bool, const SW: u32, const SS: bool, const CLAMP: bool>(
    s: &[u64; 4],
    _: &mut bool,
) -> u64 {
    let v = int_value::<SW, SS>(s[0]);
    let (lo, hi) = int_range::<DW, DS>();
    (if CLAMP { v.clamp(lo, hi) } else { v }) as u64 & mask(DW)
}

fn float_int<F: Fmt, const DW: u32, const DS: bool, const RM: u8, const FTZ: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let (lo, hi) = int_range::<DW, DS>();
    let v = match fp::to_integer::<F>(s[0], RM, FTZ && F::BITS == 32) {
        None if fp::is_nan::<F>(s[0]) => {
            return if F::BITS == 64 || DW == 64 { 1 << (DW - 1) } else { 0 };
        }
        None => {
            if s[0] & F::SIGN != 0 {
                lo
            } else {
                hi
            }
        }
        Some((neg, n)) => {
            let n = n.min(1 << 127) as i128;
            (if neg { -n } else { n }).clamp(lo, hi)
        }
    };
    v as u64 & mask(DW)
}

fn int_float<F: Fmt, const SW: u32, const SS: bool, const RM: u8, const POST: u8>(s: &[u64; 4], _: &mut bool) -> u64 {
    let v = int_value::<SW, SS>(s[0]);
    post::<F, POST>(fp::round::<F>(Exact::new(v < 0, v.unsigned_abs(), 0), RM))
}

fn float_float<A: Fmt, B: Fmt, const RM: u8, const FTZ: bool, const POST: u8>(s: &[u64; 4], _: &mut bool) -> u64 {
    let r = fp::convert::<A, B>(s[0], RM, FTZ && A::BITS == 32);
    post::<B, POST>(fp::flush::<B>(r, FTZ && B::BITS == 32))
}

fn integral<F: Fmt, const RM: u8, const FTZ: bool, const POST: u8>(s: &[u64; 4], _: &mut bool) -> u64 {
    post::<F, POST>(fp::round_integral::<F>(s[0], RM, FTZ && F::BITS == 32))
}

/// `cvt.frnd.{f16x2,bf16x2}.f32 d, a, b`: `a` converted into the upper half, `b` into the lower.
fn pack_x2<B: Fmt, const RM: u8, const POST: u8>(s: &[u64; 4], _: &mut bool) -> u64 {
    let one = |x| post::<B, POST>(fp::convert::<fp::F32, B>(x, RM, false));
    one(s[0]) << 16 | one(s[1])
}

/// Whether every value of float type `a` is exactly representable in float type `b`.
fn widens(a: Ty, b: Ty) -> bool {
    let range = |t| match t {
        Ty::F16 => (11, 15),
        Ty::Bf16 => (8, 127),
        Ty::F32 => (24, 127),
        _ => (53, 1023),
    };
    let ((pa, ea), (pb, eb)) = (range(a), range(b));
    pb >= pa && eb >= ea
}

pub(crate) fn resolve(s: &Spec) -> Result<AluFn, String> {
    s.only(&["rn", "rz", "rm", "rp", "rni", "rzi", "rmi", "rpi", "ftz", "sat", "relu", "satfinite"])?;
    let [dst, src] = s.tys[..] else {
        return Err(s.err("expected a destination and a source type"));
    };
    let (frnd, irnd, ftz) = (s.frnd(), s.irnd(), s.has("ftz"));
    let (relu, satfinite) = (s.has("relu"), s.has("satfinite"));
    let post = match (s.has("sat"), relu, satfinite) {
        (false, false, false) => PLAIN,
        (true, false, false) => SAT,
        (false, true, false) => RELU,
        (false, false, true) => SATFINITE,
        (false, true, true) => RELU_SATFINITE,
        _ => return Err(s.err("conflicting saturation modifiers")),
    };
    if (relu || satfinite) && !matches!(dst, Ty::F16 | Ty::Bf16 | Ty::F16x2 | Ty::Bf16x2) {
        return Err(s.err(".relu/.satfinite apply to .f16/.bf16 destinations only"));
    }
    if ftz && dst != Ty::F32 && src != Ty::F32 {
        return Err(s.err(".ftz applies to .f32 only"));
    }
    let unsupported = || Err(s.unsupported());
    let need = |r: Option<u8>, what: &str| r.ok_or_else(|| s.err(&format!("{what} rounding modifier required")));
    macro_rules! with_post {
        ($p:ident => $body:expr) => {
            match post {
                PLAIN => {
                    const $p: u8 = PLAIN;
                    $body
                }
                SAT => {
                    const $p: u8 = SAT;
                    $body
                }
                RELU => {
                    const $p: u8 = RELU;
                    $body
                }
                SATFINITE => {
                    const $p: u8 = SATFINITE;
                    $body
                }
                _ => {
                    const $p: u8 = RELU_SATFINITE;
                    $body
                }
            }
        };
    }
    if matches!(dst, Ty::F16x2 | Ty::Bf16x2) {
        if src != Ty::F32 || !matches!(frnd, Some(fp::RN | fp::RZ)) || post == SAT {
            return unsupported();
        }
        return with_rm!(frnd.unwrap(), R => with_post!(P => Ok(if dst == Ty::F16x2 {
            pack_x2::<fp::F16, R, P> as AluFn
        } else {
            pack_x2::<fp::Bf16, R, P> as AluFn
        })));
    }
    match (dst.is_float(), src.is_float()) {
        (false, false) => {
            if frnd.is_some() || irnd.is_some() || ftz {
                return unsupported();
            }
            with_int!(dst, DW, DS => with_int!(src, SW, SS => with_bool!(post == SAT, C =>
                Ok(int_int::<DW, DS, SW, SS, C> as AluFn)), _ => unsupported()), _ => unsupported())
        }
        (false, true) => {
            let rm = need(irnd, "integer")?;
            with_float!(src, F => with_int!(dst, DW, DS => with_rm!(rm, R => with_bool!(ftz, Z =>
                Ok(float_int::<F, DW, DS, R, Z> as AluFn))), _ => unsupported()), _ => unsupported())
        }
        (true, false) => {
            let rm = need(frnd, "floating-point")?;
            with_float!(dst, F => with_int!(src, SW, SS => with_rm!(rm, R => with_post!(P =>
                Ok(int_float::<F, SW, SS, R, P> as AluFn))), _ => unsupported()), _ => unsupported())
        }
        (true, true) if dst == src => {
            if frnd.is_some() {
                return unsupported();
            }
            match irnd {
                Some(rm) => with_float!(dst, F => with_rm!(rm, R => with_bool!(ftz, Z => with_post!(P =>
                    Ok(integral::<F, R, Z, P> as AluFn)))), _ => unsupported()),
                None => with_float!(dst, F => with_bool!(ftz, Z => with_post!(P =>
                    Ok(float_float::<F, F, { fp::RN }, Z, P> as AluFn))), _ => unsupported()),
            }
        }
        (true, true) => {
            if irnd.is_some() {
                return unsupported();
            }
            let rm = if widens(src, dst) { frnd.unwrap_or(fp::RN) } else { need(frnd, "floating-point")? };
            with_float!(dst, B => with_float!(src, A => with_rm!(rm, R => with_bool!(ftz, Z => with_post!(P =>
                Ok(float_float::<A, B, R, Z, P> as AluFn)))), _ => unsupported()), _ => unsupported())
        }
    }
}
