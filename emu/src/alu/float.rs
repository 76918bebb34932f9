//! Scalar floating-point arithmetic (`.f16`, `.bf16`, `.f32`, `.f64`) with IEEE rounding: `add sub mul fma mad
//! div.rnd rcp.rnd sqrt.rnd min max abs neg copysign`.
//!
//! PTX rules applied here: `.ftz` flushes subnormal inputs and results to sign-preserving zero; `.sat` clamps the
//! result to [0.0, 1.0] with NaN giving +0.0; `add/sub/mul` default to `.rn`; `mad.rnd.f32` is `fma.rnd.f32`;
//! `min/max` return the non-NaN operand when exactly one is NaN, canonical NaN when both are (or when either is,
//! with `.NaN`), and order -0.0 below +0.0.

use super::Spec;
use super::fp::{self, Fmt};
use crate::ir::{AluFn, Ty};

fn sat<F: Fmt, const SAT: bool>(x: u64) -> u64 {
    if SAT { fp::saturate::<F>(x) } else { x }
}

fn add<F: Fmt, const RM: u8, const FTZ: bool, const SAT: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    sat::<F, SAT>(fp::add::<F>(s[0], s[1], RM, FTZ))
}

fn sub<F: Fmt, const RM: u8, const FTZ: bool, const SAT: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    sat::<F, SAT>(fp::add::<F>(s[0], s[1] ^ F::SIGN, RM, FTZ))
}

fn mul<F: Fmt, const RM: u8, const FTZ: bool, const SAT: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    sat::<F, SAT>(fp::mul::<F>(s[0], s[1], RM, FTZ))
}

fn fma<F: Fmt, const RM: u8, const FTZ: bool, const SAT: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    sat::<F, SAT>(fp::fma::<F>(s[0], s[1], s[2], RM, FTZ))
}

fn div<F: Fmt, const RM: u8, const FTZ: bool, const SAT: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    sat::<F, SAT>(fp::div::<F>(s[0], s[1], RM, FTZ))
}

fn rcp<F: Fmt, const RM: u8, const FTZ: bool, const SAT: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    sat::<F, SAT>(fp::div::<F>(F::ONE, s[0], RM, FTZ))
}

fn sqrt<F: Fmt, const RM: u8, const FTZ: bool, const SAT: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    sat::<F, SAT>(fp::sqrt::<F>(s[0], RM, FTZ))
}

/// Total order of non-NaN values on their bit patterns, with -0.0 below +0.0.
fn key<F: Fmt>(x: u64) -> i64 {
    if x & F::SIGN != 0 { -((x & !F::SIGN) as i64) - 1 } else { x as i64 }
}

/// `min`/`max` of the PTX ISA: `min_num`/`max_num` semantics, or with `.NaN` a NaN in either input gives NaN.
pub(super) fn minmax<F: Fmt, const MAX: bool, const FTZ: bool, const NAN: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let (a, b) = (fp::flush::<F>(s[0], FTZ), fp::flush::<F>(s[1], FTZ));
    match (fp::is_nan::<F>(a), fp::is_nan::<F>(b)) {
        (true, true) => F::NAN,
        (true, false) | (false, true) if NAN => F::NAN,
        (true, false) => b,
        (false, true) => a,
        (false, false) => {
            if (key::<F>(a) < key::<F>(b)) != MAX {
                a
            } else {
                b
            }
        }
    }
}

fn abs<F: Fmt, const FTZ: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    fp::flush::<F>(s[0], FTZ) & !F::SIGN
}

fn neg<F: Fmt, const FTZ: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    fp::flush::<F>(s[0], FTZ) ^ F::SIGN
}

/// `copysign d, a, b`: the sign of `a` on the magnitude of `b`.
fn copysign<F: Fmt>(s: &[u64; 4], _: &mut bool) -> u64 {
    (s[0] & F::SIGN) | (s[1] & !F::SIGN)
}

/// The function for a rounded arithmetic instruction `$f` on scalar type `$ty`.
macro_rules! rounded {
    ($f:ident, $ty:expr, $rm:expr, $ftz:expr, $sat:expr, $s:expr) => {
        with_float!($ty, F => with_rm!($rm, R => with_bool!($ftz, Z => with_bool!($sat, S => Ok($f::<F, R, Z, S> as AluFn)))),
            _ => Err($s.unsupported()))
    };
}

pub(crate) fn resolve(s: &Spec) -> Result<AluFn, String> {
    let ty = s.ty()?;
    let ftz = s.has("ftz");
    if ftz && !matches!(ty, Ty::F32 | Ty::F16) {
        return Err(s.err(".ftz applies to .f32 (and .f16) only"));
    }
    let sat = s.has("sat");
    let rnd = s.frnd();
    let need_rnd = || rnd.ok_or_else(|| s.err("rounding modifier required"));
    match s.op {
        "add" | "sub" | "mul" | "fma" | "mad" | "div" | "rcp" | "sqrt" => {
            s.only(&["rn", "rz", "rm", "rp", "ftz", "sat"])?
        }
        "min" | "max" => s.only(&["ftz", "NaN"])?,
        "abs" | "neg" => s.only(&["ftz"])?,
        "copysign" => s.only(&[])?,
        _ => return Err(s.unsupported()),
    }
    match s.op {
        "add" => rounded!(add, ty, rnd.unwrap_or(fp::RN), ftz, sat, s),
        "sub" => rounded!(sub, ty, rnd.unwrap_or(fp::RN), ftz, sat, s),
        "mul" => rounded!(mul, ty, rnd.unwrap_or(fp::RN), ftz, sat, s),
        "fma" => rounded!(fma, ty, need_rnd()?, ftz, sat, s),
        "mad" => rounded!(fma, ty, rnd.unwrap_or(fp::RN), ftz, sat, s),
        "div" => rounded!(div, ty, need_rnd()?, ftz, sat, s),
        "rcp" => rounded!(rcp, ty, need_rnd()?, ftz, sat, s),
        "sqrt" => rounded!(sqrt, ty, need_rnd()?, ftz, sat, s),
        "min" | "max" => {
            with_float!(ty, F => with_bool!(s.op == "max", M => with_bool!(ftz, Z => with_bool!(s.has("NaN"), N =>
            Ok(minmax::<F, M, Z, N> as AluFn)))), _ => Err(s.unsupported()))
        }
        "abs" => with_float!(ty, F => with_bool!(ftz, Z => Ok(abs::<F, Z> as AluFn)), _ => Err(s.unsupported())),
        "neg" => with_float!(ty, F => with_bool!(ftz, Z => Ok(neg::<F, Z> as AluFn)), _ => Err(s.unsupported())),
        _ => with_float!(ty, F => Ok(copysign::<F> as AluFn), _ => Err(s.unsupported())),
    }
}
