//! Special-function unit instructions: `ex2 lg2 sin cos tanh rsqrt` (`.approx`), `sqrt.approx`, `rcp.approx`,
//! `div.approx`, `div.full`, and the `.f64` gross approximations `rcp.approx.ftz.f64`, `rsqrt.approx{.ftz}.f64`.
//!
//! The ISA bounds the error of each; the emulator computes the function in `f64` with the host's libm and rounds
//! once to `.f32` (to nearest), which lies well inside every bound below, so results agree with the GPU's to
//! within the stated error, not bit for bit. Bounds stated by the PTX ISA (9.7.3):
//! - `ex2.approx.f32`: at most 2 ulp from the correctly rounded result over the full range;
//! - `lg2.approx.f32`: absolute error 2^-22 for inputs in (0.5, 2), relative error 2^-22 elsewhere;
//! - `sin/cos.approx.f32`: absolute error 2^-20.5 in [-2pi, 2pi], 2^-14.7 in [-100pi, 100pi], best effort beyond;
//! - `tanh.approx.f32`: relative error 2^-11 over the whole range (subnormal inputs pass through);
//! - `rsqrt.approx.f32`: relative error 2^-22.9 over the positive finite range;
//! - `sqrt.approx.f32`: relative error 2^-23 (computed here correctly rounded);
//! - `rcp.approx.f32`: 1 ulp over the full range (computed here correctly rounded);
//! - `div.approx.f32`: `a * (1/b)`, 2 ulp for |b| in [2^-126, 2^126]; for 2^126 < |b| < 2^128 the result is a
//!   sign-preserving zero, or NaN when `a` is infinite;
//! - `div.full.f32`: 2 ulp over the full range (computed here correctly rounded).
//!
//! Special values follow the ISA's tables: `ex2(-inf) = +0`, `lg2(±0) = -inf`, `lg2(negative) = NaN`,
//! `rsqrt(±0) = ±inf`, `rsqrt(negative) = NaN`, `rsqrt(+inf) = +0`, `sin/cos(±inf) = NaN`, `tanh(±inf) = ±1`;
//! NaN results are canonical. `.ftz` flushes subnormal inputs and results to sign-preserving zero.

use super::Spec;
use super::fp::{self, F32, F64, Fmt};
use crate::ir::AluFn;

const EX2: u8 = 0;
const LG2: u8 = 1;
const SIN: u8 = 2;
const COS: u8 = 3;
const TANH: u8 = 4;
const RSQRT: u8 = 5;

/// `.f32` function `FN` through `f64`, rounded once to nearest.
fn approx<const FN: u8, const FTZ: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let x = f32::from_bits(fp::flush::<F32>(s[0], FTZ) as u32) as f64;
    let y = match FN {
        EX2 => x.exp2(),
        LG2 => x.log2(),
        SIN => x.sin(),
        COS => x.cos(),
        TANH => x.tanh(),
        _ => 1.0 / x.sqrt(),
    };
    fp::flush::<F32>(fp::convert::<F64, F32>(y.to_bits(), fp::RN, false), FTZ)
}

fn sqrt<const FTZ: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    fp::sqrt::<F32>(s[0], fp::RN, FTZ)
}

fn rcp<const FTZ: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    fp::div::<F32>(F32::ONE, s[0], fp::RN, FTZ)
}

fn div_full<const FTZ: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    fp::div::<F32>(s[0], s[1], fp::RN, FTZ)
}

/// `div.approx.f32`: `a * (1/b)` with both steps rounded to nearest, and the ISA's zero (or NaN) for
/// 2^126 < |b| < 2^128.
fn div_approx<const FTZ: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let (a, b) = (fp::flush::<F32>(s[0], FTZ), fp::flush::<F32>(s[1], FTZ));
    let mag = b & !F32::SIGN;
    if mag > 0x7E80_0000 && mag < F32::INF {
        if fp::is_nan::<F32>(a) || a & !F32::SIGN == F32::INF {
            return F32::NAN;
        }
        return (a ^ b) & F32::SIGN;
    }
    let r = fp::div::<F32>(F32::ONE, b, fp::RN, FTZ);
    fp::mul::<F32>(a, r, fp::RN, FTZ)
}

/// `rcp.approx.ftz.f64` / `rsqrt.approx.ftz.f64`: the function of the upper 32 bits of `a` (a 1.11.20 value),
/// returned in the upper 32 bits with the lower 32 zero; subnormals read and write as zeros, NaN gives the
/// canonical `0x7FFFFFFF00000000`.
fn gross_f64<const RSQRT_FN: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let a = fp::flush::<F64>(s[0] & 0xFFFF_FFFF_0000_0000, true);
    if fp::is_nan::<F64>(a) {
        return 0x7FFF_FFFF_0000_0000;
    }
    let x = f64::from_bits(a);
    let y = if RSQRT_FN { 1.0 / x.sqrt() } else { 1.0 / x };
    if y.is_nan() {
        return 0x7FFF_FFFF_0000_0000;
    }
    fp::flush::<F64>(y.to_bits(), true) & 0xFFFF_FFFF_0000_0000
}

/// `rsqrt.approx.f64`: `1/sqrt(a)` in `f64` (two roundings to nearest).
fn rsqrt_f64(s: &[u64; 4], _: &mut bool) -> u64 {
    let y = 1.0 / f64::from_bits(s[0]).sqrt();
    if y.is_nan() { F64::NAN } else { y.to_bits() }
}

pub(crate) fn resolve(s: &Spec) -> Result<AluFn, String> {
    let ty = s.ty()?;
    let ftz = s.has("ftz");
    if ty == crate::ir::Ty::F64 {
        s.only(&["approx", "ftz"])?;
        return match (s.op, ftz) {
            ("rcp", true) => Ok(gross_f64::<false>),
            ("rsqrt", true) => Ok(gross_f64::<true>),
            ("rsqrt", false) => Ok(rsqrt_f64),
            _ => Err(s.unsupported()),
        };
    }
    if ty != crate::ir::Ty::F32 {
        return Err(s.unsupported());
    }
    if s.op == "tanh" {
        s.only(&["approx"])?;
    } else if s.op == "div" && s.has("full") {
        s.only(&["full", "ftz"])?;
    } else {
        s.only(&["approx", "ftz"])?;
    }
    if !s.has("approx") && !s.has("full") {
        return Err(s.err(".approx required"));
    }
    with_bool!(ftz, Z => Ok(match s.op {
        "ex2" => approx::<EX2, Z> as AluFn,
        "lg2" => approx::<LG2, Z> as AluFn,
        "sin" => approx::<SIN, Z> as AluFn,
        "cos" => approx::<COS, Z> as AluFn,
        "tanh" => approx::<TANH, false> as AluFn,
        "rsqrt" => approx::<RSQRT, Z> as AluFn,
        "sqrt" => sqrt::<Z> as AluFn,
        "rcp" => rcp::<Z> as AluFn,
        "div" if s.has("full") => div_full::<Z> as AluFn,
        "div" => div_approx::<Z> as AluFn,
        _ => return Err(s.unsupported()),
    }))
}

#[cfg(test)]
mod tests {
    use crate::alu::tests::run;

    const ONE: u64 = 0x3F80_0000;
    const INF: u64 = 0x7F80_0000;
    const NAN: u64 = 0x7FFF_FFFF;

    fn f32b(x: f32) -> u64 {
        x.to_bits() as u64
    }

    /// Distance in units in the last place between two finite `.f32` values of the same sign.
    fn ulps(a: u64, b: u64) -> u64 {
        a.abs_diff(b)
    }

    #[test]
    fn special_values_follow_the_isa_tables() {
        for ftz in ["", ".ftz"] {
            let ex2 = format!("ex2.approx{ftz}.f32");
            assert_eq!(run(&ex2, &[0xFF80_0000]), 0);
            assert_eq!(run(&ex2, &[0x8000_0000]), ONE);
            assert_eq!(run(&ex2, &[0]), ONE);
            assert_eq!(run(&ex2, &[INF]), INF);
            assert_eq!(run(&ex2, &[0x7FC0_0000]), NAN);
            let lg2 = format!("lg2.approx{ftz}.f32");
            assert_eq!(run(&lg2, &[0]), 0xFF80_0000);
            assert_eq!(run(&lg2, &[0x8000_0000]), 0xFF80_0000);
            assert_eq!(run(&lg2, &[0xBF80_0000]), NAN);
            assert_eq!(run(&lg2, &[0xFF80_0000]), NAN);
            assert_eq!(run(&lg2, &[INF]), INF);
            let rsqrt = format!("rsqrt.approx{ftz}.f32");
            assert_eq!(run(&rsqrt, &[0]), INF);
            assert_eq!(run(&rsqrt, &[0x8000_0000]), 0xFF80_0000);
            assert_eq!(run(&rsqrt, &[f32b(-4.0)]), NAN);
            assert_eq!(run(&rsqrt, &[0xFF80_0000]), NAN);
            assert_eq!(run(&rsqrt, &[INF]), 0);
            for f in ["sin", "cos"] {
                assert_eq!(run(&format!("{f}.approx{ftz}.f32"), &[INF]), NAN);
                assert_eq!(run(&format!("{f}.approx{ftz}.f32"), &[0xFF80_0000]), NAN);
            }
            assert_eq!(run(&format!("sin.approx{ftz}.f32"), &[0x8000_0000]), 0x8000_0000);
            assert_eq!(run(&format!("cos.approx{ftz}.f32"), &[0x8000_0000]), ONE);
            assert_eq!(run(&format!("sqrt.approx{ftz}.f32"), &[0x8000_0000]), 0x8000_0000);
            assert_eq!(run(&format!("sqrt.approx{ftz}.f32"), &[0xBF80_0000]), NAN);
            assert_eq!(run(&format!("rcp.approx{ftz}.f32"), &[0x8000_0000]), 0xFF80_0000);
            assert_eq!(run(&format!("rcp.approx{ftz}.f32"), &[0xFF80_0000]), 0x8000_0000);
        }
        assert_eq!(run("tanh.approx.f32", &[INF]), ONE);
        assert_eq!(run("tanh.approx.f32", &[0xFF80_0000]), 0xBF80_0000);
        assert_eq!(run("tanh.approx.f32", &[0x8000_0000]), 0x8000_0000);
        assert_eq!(run("tanh.approx.f32", &[0x7FC0_0000]), NAN);
    }

    #[test]
    fn subnormals_with_and_without_ftz() {
        // 2^-149 is the smallest subnormal: kept by default, flushed with .ftz.
        assert_eq!(run("ex2.approx.f32", &[f32b(-149.0)]), 1);
        assert_eq!(run("ex2.approx.ftz.f32", &[f32b(-149.0)]), 0);
        assert_eq!(run("lg2.approx.f32", &[1]), f32b(-149.0));
        assert_eq!(run("lg2.approx.ftz.f32", &[1]), 0xFF80_0000);
        assert_eq!(run("rsqrt.approx.ftz.f32", &[0x8000_0001]), 0xFF80_0000);
        assert_eq!(run("sin.approx.f32", &[1]), 1);
        assert_eq!(run("sin.approx.ftz.f32", &[1]), 0);
        // tanh passes subnormals through (it has no .ftz).
        assert_eq!(run("tanh.approx.f32", &[0x8000_0003]), 0x8000_0003);
        assert_eq!(run("rcp.approx.f32", &[0x7F00_0000]), 0x0040_0000);
        assert_eq!(run("rcp.approx.ftz.f32", &[0x7F00_0000]), 0);
    }

    #[test]
    fn values_within_the_stated_error() {
        assert_eq!(run("ex2.approx.f32", &[ONE]), f32b(2.0));
        assert_eq!(run("ex2.approx.ftz.f32", &[f32b(-3.0)]), f32b(0.125));
        // 2^0.5 = sqrt(2): 0x3FB504F3 correctly rounded; the ISA allows 2 ulp.
        assert!(ulps(run("ex2.approx.f32", &[f32b(0.5)]), 0x3FB5_04F3) <= 2);
        assert_eq!(run("lg2.approx.f32", &[f32b(8.0)]), f32b(3.0));
        assert!(ulps(run("rsqrt.approx.f32", &[f32b(2.0)]), 0x3F35_04F3) <= 1);
        assert_eq!(run("rsqrt.approx.f32", &[f32b(4.0)]), f32b(0.5));
        assert_eq!(run("sqrt.approx.f32", &[f32b(9.0)]), f32b(3.0));
        assert_eq!(run("rcp.approx.f32", &[f32b(4.0)]), f32b(0.25));
        // sin(pi/6) = 0.5 and cos(pi/3) = 0.5 within 2^-20.5 absolute.
        let half = 0.5f32;
        for (f, x) in [("sin", std::f32::consts::FRAC_PI_6), ("cos", std::f32::consts::FRAC_PI_3)] {
            let r = f32::from_bits(run(&format!("{f}.approx.f32"), &[f32b(x)]) as u32);
            assert!((r - half).abs() <= 2f32.powf(-20.5), "{f}: {r}");
        }
        // tanh(0.5) = 0.46211715726... within relative 2^-11.
        let t = f32::from_bits(run("tanh.approx.f32", &[f32b(0.5)]) as u32) as f64;
        assert!((t - 0.46211715726000974).abs() <= 0.46211715726000974 * 2f64.powi(-11));
    }

    #[test]
    fn approximate_and_full_division() {
        assert_eq!(run("div.approx.f32", &[f32b(6.0), f32b(3.0)]), f32b(2.0));
        assert_eq!(run("div.full.f32", &[f32b(6.0), f32b(3.0)]), f32b(2.0));
        assert_eq!(run("div.full.ftz.f32", &[ONE, f32b(3.0)]), 0x3EAA_AAAB);
        // For 2^126 < |b| < 2^128 div.approx gives a sign-preserving zero, NaN for an infinite dividend.
        let big = 0x7F00_0000;
        assert_eq!(run("div.approx.f32", &[ONE, big]), 0);
        assert_eq!(run("div.approx.f32", &[0xBF80_0000, big]), 0x8000_0000);
        assert_eq!(run("div.approx.f32", &[ONE, big | 1 << 31]), 0x8000_0000);
        assert_eq!(run("div.approx.f32", &[INF, big]), NAN);
        assert_eq!(run("div.approx.ftz.f32", &[f32b(1e30), 0x7F7F_FFFF]), 0);
        // |b| = 2^126 is still in the accurate range: 2^127 / 2^126 = 2.
        assert_eq!(run("div.approx.f32", &[0x7F00_0000, 0x7E80_0000]), f32b(2.0));
        assert_eq!(run("div.approx.f32", &[ONE, 0x7E80_0000]), 0x0080_0000);
        assert_eq!(run("div.approx.f32", &[ONE, 0]), INF);
        assert_eq!(run("div.approx.f32", &[0, 0]), NAN);
        assert_eq!(run("div.full.f32", &[ONE, 0x7F00_0000]), 0x0040_0000);
    }

    #[test]
    fn gross_f64_approximations() {
        assert_eq!(run("rcp.approx.ftz.f64", &[2f64.to_bits()]), 0.5f64.to_bits());
        assert_eq!(run("rcp.approx.ftz.f64", &[3f64.to_bits()]) & 0xFFFF_FFFF, 0);
        assert_eq!(run("rcp.approx.ftz.f64", &[0x7FF8_0000_0000_0000]), 0x7FFF_FFFF_0000_0000);
        assert_eq!(run("rcp.approx.ftz.f64", &[0x8000_0001_0000_0000]), 0xFFF0_0000_0000_0000);
        assert_eq!(run("rsqrt.approx.ftz.f64", &[4f64.to_bits()]), 0.5f64.to_bits());
        assert_eq!(run("rsqrt.approx.ftz.f64", &[(-1f64).to_bits()]), 0x7FFF_FFFF_0000_0000);
        assert_eq!(run("rsqrt.approx.f64", &[4f64.to_bits()]), 0.5f64.to_bits());
    }
}
