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

#[cfg(test)]
mod tests {
    use crate::alu::tests::{Rng, directed, exact, run, sum_sign};
    use std::cmp::Ordering;

    const ONE: u64 = 0x3F80_0000;
    const NAN: u64 = 0x7FFF_FFFF;
    const MODES: [&str; 4] = ["rn", "rz", "rm", "rp"];

    fn f32b(x: f32) -> u64 {
        x.to_bits() as u64
    }

    #[test]
    fn add_rounds_exact_results_between_floats_in_every_direction() {
        // 1 + 2^-24 lies half-way between 1.0 and 1 + 2^-23: ties-to-even keeps 1.0.
        let tiny = 0x3380_0000;
        for (rm, pos, neg) in [
            ("rn", ONE, 0xBF80_0000),
            ("rz", ONE, 0xBF80_0000),
            ("rm", ONE, 0xBF80_0001),
            ("rp", 0x3F80_0001, 0xBF80_0000),
        ] {
            assert_eq!(run(&format!("add.{rm}.f32"), &[ONE, tiny]), pos, "{rm}");
            assert_eq!(run(&format!("add.{rm}.f32"), &[ONE | 1 << 31, tiny | 1 << 31]), neg, "{rm} negative");
        }
        // 1 + 1.5 * 2^-24 is above the half-way point.
        assert_eq!(run("add.f32", &[ONE, 0x33C0_0000]), 0x3F80_0001);
        assert_eq!(run("add.rz.f32", &[ONE, 0x33C0_0000]), ONE);
        // 1 - 2^-25 lies half-way between 1 - 2^-24 and 1.0, just below the binade boundary.
        for (rm, r) in [("rn", ONE), ("rz", 0x3F7F_FFFF), ("rm", 0x3F7F_FFFF), ("rp", ONE)] {
            assert_eq!(run(&format!("sub.{rm}.f32"), &[ONE, 0x3300_0000]), r, "{rm}");
        }
        // Exact cancellation gives +0, or -0 when rounding toward negative infinity.
        assert_eq!(run("sub.rn.f32", &[ONE, ONE]), 0);
        assert_eq!(run("sub.rm.f32", &[ONE, ONE]), 0x8000_0000);
        assert_eq!(run("add.rn.f32", &[0x8000_0000, 0x8000_0000]), 0x8000_0000);
        assert_eq!(run("add.rn.f32", &[0x8000_0000, 0]), 0);
        // Overflow: infinity to nearest, the largest finite value toward zero.
        assert_eq!(run("add.rn.f32", &[0x7F7F_FFFF, 0x7F7F_FFFF]), 0x7F80_0000);
        assert_eq!(run("add.rz.f32", &[0x7F7F_FFFF, 0x7F7F_FFFF]), 0x7F7F_FFFF);
        assert_eq!(run("add.rp.f32", &[0xFF7F_FFFF, 0xFF7F_FFFF]), 0xFF7F_FFFF);
        assert_eq!(run("add.rm.f32", &[0xFF7F_FFFF, 0xFF7F_FFFF]), 0xFF80_0000);
    }

    #[test]
    fn mul_and_fma_round_once() {
        // (1 + 2^-23)^2 = 1 + 2^-22 + 2^-46.
        let a = 0x3F80_0001;
        assert_eq!(run("mul.rn.f32", &[a, a]), 0x3F80_0002);
        assert_eq!(run("mul.rz.f32", &[a, a]), 0x3F80_0002);
        assert_eq!(run("mul.rp.f32", &[a, a]), 0x3F80_0003);
        // fma keeps the 2^-46 a separate multiply and add would lose.
        assert_eq!(run("fma.rn.f32", &[a, a, 0xBF80_0002]), 0x2880_0000);
        assert_eq!(run("add.rn.f32", &[run("mul.rn.f32", &[a, a]), 0xBF80_0002]), 0);
        assert_eq!(run("mad.rn.f32", &[a, a, 0xBF80_0002]), 0x2880_0000);
        // f64: (1 + 2^-52)^2 - (1 + 2^-51) = 2^-104 exactly.
        let d = 0x3FF0_0000_0000_0001;
        assert_eq!(run("fma.rn.f64", &[d, d, 0xBFF0_0000_0000_0002]), 0x3970_0000_0000_0000);
        assert_eq!(run("add.rn.f64", &[run("mul.rn.f64", &[d, d]), 0xBFF0_0000_0000_0002]), 0);
        // Special operands.
        assert_eq!(run("fma.rn.f32", &[0x7F80_0000, 0, ONE]), NAN);
        assert_eq!(run("fma.rn.f32", &[0x7F80_0000, ONE, 0xFF80_0000]), NAN);
        assert_eq!(run("fma.rn.f32", &[0, ONE, 0x8000_0000]), 0);
        assert_eq!(run("fma.rm.f32", &[0, ONE, 0x8000_0000]), 0x8000_0000);
        assert_eq!(run("fma.rn.f32", &[0x8000_0000, ONE, 0x8000_0000]), 0x8000_0000);
        assert_eq!(run("fma.rn.f32", &[0x7F7F_FFFF, 0x4000_0000, 0xFF7F_FFFF]), 0x7F7F_FFFF);
    }

    #[test]
    fn division_and_square_root_are_correctly_rounded() {
        let three = f32b(3.0);
        assert_eq!(run("div.rn.f32", &[ONE, three]), 0x3EAA_AAAB);
        assert_eq!(run("div.rz.f32", &[ONE, three]), 0x3EAA_AAAA);
        assert_eq!(run("div.rm.f32", &[ONE | 1 << 31, three]), 0xBEAA_AAAB);
        assert_eq!(run("div.rp.f32", &[ONE | 1 << 31, three]), 0xBEAA_AAAA);
        assert_eq!(run("div.rn.f32", &[ONE, 0]), 0x7F80_0000);
        assert_eq!(run("div.rn.f32", &[ONE | 1 << 31, 0]), 0xFF80_0000);
        assert_eq!(run("div.rn.f32", &[0, 0]), NAN);
        assert_eq!(run("div.rn.f32", &[0x7F80_0000, 0x7F80_0000]), NAN);
        assert_eq!(run("div.rn.f64", &[0x3FF0_0000_0000_0000, 0x4008_0000_0000_0000]), 0x3FD5_5555_5555_5555);
        assert_eq!(run("rcp.rn.f64", &[0x4008_0000_0000_0000]), 0x3FD5_5555_5555_5555);
        assert_eq!(run("rcp.rn.f32", &[0xC000_0000]), 0xBF00_0000);
        // sqrt(2) = 1.41421356...: 0x3FB504F3 = 1.41421354 is nearest, 0x3FB504F4 = 1.41421366 above.
        assert_eq!(run("sqrt.rn.f32", &[f32b(2.0)]), 0x3FB5_04F3);
        assert_eq!(run("sqrt.rz.f32", &[f32b(2.0)]), 0x3FB5_04F3);
        assert_eq!(run("sqrt.rp.f32", &[f32b(2.0)]), 0x3FB5_04F4);
        assert_eq!(run("sqrt.rn.f64", &[0x4000_0000_0000_0000]), 0x3FF6_A09E_667F_3BCD);
        assert_eq!(run("sqrt.rn.f32", &[0x8000_0000]), 0x8000_0000);
        assert_eq!(run("sqrt.rn.f32", &[0xBF80_0000]), NAN);
        assert_eq!(run("sqrt.rn.f32", &[0x7F80_0000]), 0x7F80_0000);
        assert_eq!(run("sqrt.rn.f32", &[1]), f32b(f32::from_bits(1).sqrt()));
    }

    #[test]
    fn ftz_and_sat() {
        // Subnormal sums are kept by default and flushed with .ftz, sign preserved.
        assert_eq!(run("add.f32", &[1, 1]), 2);
        assert_eq!(run("add.ftz.f32", &[1, 1]), 0);
        assert_eq!(run("add.ftz.f32", &[1, ONE]), ONE);
        assert_eq!(run("mul.f32", &[0x0080_0000, 0x3F00_0000]), 0x0040_0000);
        assert_eq!(run("mul.ftz.f32", &[0x0080_0000, 0x3F00_0000]), 0);
        assert_eq!(run("mul.ftz.f32", &[0x8080_0000, 0x3F00_0000]), 0x8000_0000);
        assert_eq!(run("fma.rn.ftz.f32", &[0x0000_0010, 0x4F80_0000, 0]), 0);
        // 2^-145 * 2^32 = 2^-113.
        assert_eq!(run("fma.rn.f32", &[0x0000_0010, 0x4F80_0000, 0]), 0x0700_0000);
        // .sat clamps to [0, 1]; NaN and negatives give +0.
        assert_eq!(run("add.sat.f32", &[0x3F00_0000, 0x3F40_0000]), ONE);
        assert_eq!(run("mul.sat.f32", &[f32b(-2.0), ONE]), 0);
        assert_eq!(run("add.sat.f32", &[0x7F80_0000, 0xFF80_0000]), 0);
        assert_eq!(run("fma.rn.sat.f32", &[0x3F00_0000, 0x3F00_0000, 0]), 0x3E80_0000);
        assert_eq!(run("sub.rn.sat.f32", &[0, 0]), 0);
    }

    #[test]
    fn min_max_abs_neg_copysign() {
        let q = 0x7FC0_0000;
        assert_eq!(run("min.f32", &[q, ONE]), ONE);
        assert_eq!(run("max.f32", &[ONE, q]), ONE);
        assert_eq!(run("min.f32", &[q, q]), NAN);
        assert_eq!(run("min.NaN.f32", &[q, ONE]), NAN);
        assert_eq!(run("max.NaN.f32", &[ONE, 0xFFC0_0001]), NAN);
        assert_eq!(run("min.f32", &[0, 0x8000_0000]), 0x8000_0000);
        assert_eq!(run("max.f32", &[0x8000_0000, 0]), 0);
        assert_eq!(run("min.f32", &[f32b(-3.0), f32b(2.0)]), f32b(-3.0));
        assert_eq!(run("max.ftz.f32", &[0x8000_0001, 0x8000_0000]), 0x8000_0000);
        assert_eq!(run("max.f32", &[0x8000_0001, 0x8000_0000]), 0x8000_0000);
        assert_eq!(run("max.f32", &[1, 0]), 1);
        assert_eq!(run("min.f64", &[0x7FF8_0000_0000_0000, 0xC000_0000_0000_0000]), 0xC000_0000_0000_0000);
        assert_eq!(run("abs.f32", &[0x8000_0000]), 0);
        assert_eq!(run("abs.ftz.f32", &[0x8000_0001]), 0);
        assert_eq!(run("neg.f32", &[0]), 0x8000_0000);
        assert_eq!(run("neg.ftz.f32", &[1]), 0x8000_0000);
        assert_eq!(run("neg.f64", &[0x3FF0_0000_0000_0000]), 0xBFF0_0000_0000_0000);
        assert_eq!(run("abs.f64", &[0xBFF0_0000_0000_0000]), 0x3FF0_0000_0000_0000);
        // copysign d, a, b: a's sign on b's magnitude.
        assert_eq!(run("copysign.f32", &[0xBF80_0000, f32b(2.0)]), f32b(-2.0));
        assert_eq!(run("copysign.f32", &[0, f32b(-2.0)]), f32b(2.0));
        assert_eq!(run("copysign.f64", &[1 << 63, 0x3FF0_0000_0000_0000]), 0xBFF0_0000_0000_0000);
        assert_eq!(run("add.f32", &[0x7F80_0000, 0xFF80_0000]), NAN);
        assert_eq!(run("add.f32", &[0x7FC0_1234, ONE]), NAN);
    }

    #[test]
    fn half_precision_scalars() {
        assert_eq!(run("add.f16", &[0x3C00, 0x3C00]), 0x4000);
        assert_eq!(run("mul.rn.bf16", &[0x4040, 0x3F00]), 0x3FC0);
        // bf16 1 + 2^-8 ties to even (1.0); 1 + 3*2^-9 rounds up.
        assert_eq!(run("add.rn.bf16", &[0x3F80, 0x3B80]), 0x3F80);
        assert_eq!(run("fma.rn.bf16", &[0x3F80, 0x3BC0, 0x3F80]), 0x3F81);
        assert_eq!(run("add.f16", &[0x7BFF, 0x7BFF]), 0x7C00);
        assert_eq!(run("max.bf16", &[0x7FC0, 0xBF80]), 0xBF80);
        assert_eq!(run("neg.bf16", &[0x3F80]), 0xBF80);
    }

    /// A random finite `.f32` with exponent in [-20, 20].
    fn small_f32(rng: &mut Rng) -> u64 {
        let r = rng.next();
        ((r >> 40) & 0x8000_0000) | ((107 + (r >> 8) % 41) << 23) | (r & 0x7F_FFFF)
    }

    /// Checks `spec` in all four directions against host nearest rounding and the exact sign of
    /// `rn - exact`, given by `residual`. The operands are non-zero, so an exact zero is a cancellation: +0, or -0
    /// toward negative infinity.
    fn check_directed(op: &str, ty: &str, srcs: &[u64], rn: u64, residual: Ordering, sign: u64) {
        for rm in MODES {
            let spec = format!("{op}.{rm}.{ty}");
            let expect = if rn & !sign == 0 && residual == Ordering::Equal {
                if rm == "rm" { sign } else { 0 }
            } else {
                directed(rn, residual, rm, sign)
            };
            assert_eq!(run(&spec, srcs), expect, "{spec} {srcs:x?}");
        }
    }

    #[test]
    fn f32_arithmetic_matches_an_exact_oracle_in_every_direction() {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let x = |b: u64| exact(b, 32, 24);
        let neg = |(m, e): (i128, i32)| (-m, e);
        for i in 0..20_000 {
            let a = small_f32(&mut rng);
            // Every third case nearly cancels: b is -a with its low bits changed.
            let b = if i % 3 == 0 { (a ^ 1 << 31) ^ (rng.next() & 0xFF) } else { small_f32(&mut rng) };
            let c = small_f32(&mut rng);
            let (fa, fb, fc) = (f32::from_bits(a as u32), f32::from_bits(b as u32), f32::from_bits(c as u32));
            let sum = f32b(fa + fb);
            check_directed("add", "f32", &[a, b], sum, sum_sign(&[x(sum), neg(x(a)), neg(x(b))]), 1 << 31);
            let diff = f32b(fa - fb);
            check_directed("sub", "f32", &[a, b], diff, sum_sign(&[x(diff), neg(x(a)), x(b)]), 1 << 31);
            let prod = f32b(fa * fb);
            let (ma, ea) = x(a);
            let (mb, eb) = x(b);
            check_directed("mul", "f32", &[a, b], prod, sum_sign(&[x(prod), (-ma * mb, ea + eb)]), 1 << 31);
            let f = f32b(fa.mul_add(fb, fc));
            check_directed("fma", "f32", &[a, b, c], f, sum_sign(&[x(f), (-ma * mb, ea + eb), neg(x(c))]), 1 << 31);
            // rn vs a/b: sign of (rn * b - a) * sign(b).
            let q = f32b(fa / fb);
            let (mq, eq) = x(q);
            let s = sum_sign(&[(mq * mb, eq + eb), neg(x(a))]);
            check_directed("div", "f32", &[a, b], q, if mb < 0 { s.reverse() } else { s }, 1 << 31);
            let pa = a & 0x7FFF_FFFF;
            let r = f32b(f32::from_bits(pa as u32).sqrt());
            let (mr, er) = x(r);
            check_directed("sqrt", "f32", &[pa], r, sum_sign(&[(mr * mr, 2 * er), neg(x(pa))]), 1 << 31);
        }
    }

    #[test]
    fn f64_arithmetic_matches_an_exact_oracle_in_every_direction() {
        let mut rng = Rng(0x0F0E_0D0C_0B0A_0908);
        let x = |b: u64| exact(b, 64, 53);
        let neg = |(m, e): (i128, i32)| (-m, e);
        let near = |rng: &mut Rng, base: u64| {
            let r = rng.next();
            (r & (1 << 63)) | ((((base >> 52) & 0x7FF) + r % 9 - 4) << 52) | (rng.next() & 0xF_FFFF_FFFF_FFFF)
        };
        for i in 0..20_000 {
            let a =
                (rng.next() & (1 << 63)) | ((1023 - 40 + rng.next() % 81) << 52) | (rng.next() & 0xF_FFFF_FFFF_FFFF);
            let b = if i % 3 == 0 { (a ^ 1 << 63) ^ (rng.next() & 0xFFFF) } else { near(&mut rng, a) };
            let (fa, fb) = (f64::from_bits(a), f64::from_bits(b));
            let sum = (fa + fb).to_bits();
            check_directed("add", "f64", &[a, b], sum, sum_sign(&[x(sum), neg(x(a)), neg(x(b))]), 1 << 63);
            let (ma, ea) = x(a);
            let (mb, eb) = x(b);
            let prod = (fa * fb).to_bits();
            check_directed("mul", "f64", &[a, b], prod, sum_sign(&[x(prod), (-ma * mb, ea + eb)]), 1 << 63);
            // c of about the product's magnitude keeps the exact residual within 127 bits.
            let c = near(&mut rng, prod);
            let f = fa.mul_add(fb, f64::from_bits(c)).to_bits();
            check_directed("fma", "f64", &[a, b, c], f, sum_sign(&[x(f), (-ma * mb, ea + eb), neg(x(c))]), 1 << 63);
            let q = (fa / fb).to_bits();
            let (mq, eq) = x(q);
            let s = sum_sign(&[(mq * mb, eq + eb), neg(x(a))]);
            check_directed("div", "f64", &[a, b], q, if mb < 0 { s.reverse() } else { s }, 1 << 63);
            let pa = a & !(1 << 63);
            let r = f64::from_bits(pa).sqrt().to_bits();
            let (mr, er) = x(r);
            check_directed("sqrt", "f64", &[pa], r, sum_sign(&[(mr * mr, 2 * er), neg(x(pa))]), 1 << 63);
        }
    }

    #[test]
    fn nearest_rounding_matches_the_host_on_arbitrary_bit_patterns() {
        let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
        let same = |r: u64, host: u64, nan: bool, what: &str| {
            if nan { assert_eq!(r, NAN, "{what}") } else { assert_eq!(r, host, "{what}") }
        };
        for _ in 0..50_000 {
            let (a, b, c) = (rng.next() & 0xFFFF_FFFF, rng.next() & 0xFFFF_FFFF, rng.next() & 0xFFFF_FFFF);
            let (fa, fb, fc) = (f32::from_bits(a as u32), f32::from_bits(b as u32), f32::from_bits(c as u32));
            for (spec, host) in [("add.rn.f32", fa + fb), ("mul.rn.f32", fa * fb), ("div.rn.f32", fa / fb)] {
                same(run(spec, &[a, b]), f32b(host), host.is_nan(), &format!("{spec} {a:x} {b:x}"));
            }
            let f = fa.mul_add(fb, fc);
            same(run("fma.rn.f32", &[a, b, c]), f32b(f), f.is_nan(), &format!("fma {a:x} {b:x} {c:x}"));
            let s = fa.sqrt();
            same(run("sqrt.rn.f32", &[a]), f32b(s), s.is_nan(), &format!("sqrt {a:x}"));
            let (da, db, dc) = (rng.next(), rng.next(), rng.next());
            let (ga, gb, gc) = (f64::from_bits(da), f64::from_bits(db), f64::from_bits(dc));
            let dnan = 0x7FFF_FFFF_FFFF_FFFF;
            for (spec, host) in [("add.rn.f64", ga + gb), ("mul.rn.f64", ga * gb), ("div.rn.f64", ga / gb)] {
                let r = run(spec, &[da, db]);
                assert_eq!(r, if host.is_nan() { dnan } else { host.to_bits() }, "{spec} {da:x} {db:x}");
            }
            let f = ga.mul_add(gb, gc);
            assert_eq!(run("fma.rn.f64", &[da, db, dc]), if f.is_nan() { dnan } else { f.to_bits() });
        }
    }
}
