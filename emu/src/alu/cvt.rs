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
            let n = n.min(i128::MAX as u128) as i128;
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

#[cfg(test)]
mod tests {
    use crate::alu::tests::run;

    const ONE: u64 = 0x3F80_0000;

    fn f32b(x: f32) -> u64 {
        x.to_bits() as u64
    }

    #[test]
    fn f32_to_bf16_rounds_ties_to_even_and_canonicalises_nan() {
        assert_eq!(run("cvt.rn.bf16.f32", &[0x3F80_8000]), 0x3F80);
        assert_eq!(run("cvt.rn.bf16.f32", &[0x3F81_8000]), 0x3F82);
        assert_eq!(run("cvt.rn.bf16.f32", &[0x3F80_8001]), 0x3F81);
        assert_eq!(run("cvt.rn.bf16.f32", &[0x3F80_7FFF]), 0x3F80);
        // NaN results are the canonical 0x7FFF, whatever the payload or sign.
        assert_eq!(run("cvt.rn.bf16.f32", &[0x7FC0_0000]), 0x7FFF);
        assert_eq!(run("cvt.rn.bf16.f32", &[0xFF80_0001]), 0x7FFF);
        assert_eq!(run("cvt.rn.bf16.f32", &[0x7F80_0000]), 0x7F80);
        // The largest f32 is beyond bf16's largest finite value plus half a unit: infinity to nearest.
        assert_eq!(run("cvt.rn.bf16.f32", &[0x7F7F_FFFF]), 0x7F80);
        assert_eq!(run("cvt.rz.bf16.f32", &[0x7F7F_FFFF]), 0x7F7F);
        assert_eq!(run("cvt.rn.satfinite.bf16.f32", &[0x7F80_0000]), 0x7F7F);
        assert_eq!(run("cvt.rn.satfinite.bf16.f32", &[0xFF7F_FFFF]), 0xFF7F);
        assert_eq!(run("cvt.rn.satfinite.bf16.f32", &[0x7FC0_0000]), 0x7FFF);
        // bf16 keeps f32's exponent range: subnormal f32 inputs round to bf16 subnormals.
        assert_eq!(run("cvt.rn.bf16.f32", &[0x0001_0000]), 0x0001);
        assert_eq!(run("cvt.rn.bf16.f32", &[0x0000_8000]), 0x0000);
        assert_eq!(run("cvt.rn.bf16.f32", &[0x0001_8000]), 0x0002);
    }

    #[test]
    fn directed_rounding_of_negative_values() {
        // -(1 + 2^-8) lies half-way between bf16 -1.0 (0xBF80) and -(1 + 2^-7) (0xBF81).
        let x = 0xBF80_8000;
        assert_eq!(run("cvt.rn.bf16.f32", &[x]), 0xBF80);
        assert_eq!(run("cvt.rz.bf16.f32", &[x]), 0xBF80);
        assert_eq!(run("cvt.rm.bf16.f32", &[x]), 0xBF81);
        assert_eq!(run("cvt.rp.bf16.f32", &[x]), 0xBF80);
        // -0.1 in f64 to f32: 0xBDCCCCCD is nearest (and below), 0xBDCCCCCC above.
        let d = (-0.1f64).to_bits();
        assert_eq!(run("cvt.rn.f32.f64", &[d]), 0xBDCC_CCCD);
        assert_eq!(run("cvt.rz.f32.f64", &[d]), 0xBDCC_CCCC);
        assert_eq!(run("cvt.rm.f32.f64", &[d]), 0xBDCC_CCCD);
        assert_eq!(run("cvt.rp.f32.f64", &[d]), 0xBDCC_CCCC);
        assert_eq!(run("cvt.rzi.s32.f32", &[f32b(-1.5)]), 0xFFFF_FFFF);
        assert_eq!(run("cvt.rmi.s32.f32", &[f32b(-1.5)]), 0xFFFF_FFFE);
        assert_eq!(run("cvt.rpi.s32.f32", &[f32b(-1.5)]), 0xFFFF_FFFF);
        assert_eq!(run("cvt.rni.s32.f32", &[f32b(-1.5)]), 0xFFFF_FFFE);
        assert_eq!(run("cvt.rni.s32.f32", &[f32b(-2.5)]), 0xFFFF_FFFE);
        assert_eq!(run("cvt.rni.s32.f32", &[f32b(2.5)]), 2);
        assert_eq!(run("cvt.rni.s32.f32", &[f32b(3.5)]), 4);
        assert_eq!(run("cvt.rni.s32.f64", &[(-2.5f64).to_bits()]), 0xFFFF_FFFE);
        assert_eq!(run("cvt.rni.s64.f64", &[(0.5f64).to_bits()]), 0);
        assert_eq!(run("cvt.rpi.s64.f64", &[(0.000001f64).to_bits()]), 1);
    }

    #[test]
    fn float_to_integer_saturates_and_maps_nan() {
        assert_eq!(run("cvt.rzi.s32.f32", &[0x7FC0_0000]), 0);
        assert_eq!(run("cvt.rzi.u16.f32", &[0x7FC0_0000]), 0);
        assert_eq!(run("cvt.rzi.s64.f32", &[0x7FC0_0000]), 1 << 63);
        assert_eq!(run("cvt.rzi.u64.f32", &[0x7FC0_0000]), 1 << 63);
        assert_eq!(run("cvt.rzi.s32.f64", &[0x7FF8_0000_0000_0000]), 0x8000_0000);
        assert_eq!(run("cvt.rzi.u32.f64", &[0x7FF8_0000_0000_0000]), 0x8000_0000);
        assert_eq!(run("cvt.rzi.s32.f32", &[f32b(3e9)]), 0x7FFF_FFFF);
        assert_eq!(run("cvt.rzi.s32.f32", &[f32b(-3e9)]), 0x8000_0000);
        assert_eq!(run("cvt.rzi.u32.f32", &[f32b(-1.0)]), 0);
        assert_eq!(run("cvt.rzi.u32.f32", &[0x7F80_0000]), 0xFFFF_FFFF);
        assert_eq!(run("cvt.rzi.s32.f32", &[0xFF80_0000]), 0x8000_0000);
        assert_eq!(run("cvt.rzi.u8.f32", &[f32b(300.0)]), 0xFF);
        assert_eq!(run("cvt.rzi.s8.f32", &[f32b(-300.0)]), 0x80);
        assert_eq!(run("cvt.rzi.s16.f32", &[f32b(-2.0)]), 0xFFFE);
        assert_eq!(run("cvt.rzi.u64.f64", &[(1e300f64).to_bits()]), u64::MAX);
        assert_eq!(run("cvt.rzi.s64.f64", &[(-1e300f64).to_bits()]), 1 << 63);
        assert_eq!(run("cvt.rzi.s64.f32", &[f32b(-(2f32.powi(62)))]), (-(1i64 << 62)) as u64);
        // The smallest subnormal rounds up to 1 toward +inf, unless .ftz reads it as zero.
        assert_eq!(run("cvt.rpi.s32.f32", &[1]), 1);
        assert_eq!(run("cvt.rpi.ftz.s32.f32", &[1]), 0);
        assert_eq!(run("cvt.rmi.s32.f32", &[0x8000_0001]), 0xFFFF_FFFF);
    }

    #[test]
    fn integer_conversions() {
        assert_eq!(run("cvt.s64.s32", &[0xFFFF_FFFF]), u64::MAX);
        assert_eq!(run("cvt.u64.u32", &[0xFFFF_FFFF]), 0xFFFF_FFFF);
        assert_eq!(run("cvt.u64.s32", &[0xFFFF_FFFF]), u64::MAX);
        assert_eq!(run("cvt.u32.u64", &[0x1_0000_0005]), 5);
        assert_eq!(run("cvt.u32.u16", &[0xFFFF]), 0xFFFF);
        assert_eq!(run("cvt.s32.s16", &[0x8000]), 0xFFFF_8000);
        assert_eq!(run("cvt.s32.s8", &[0x80]), 0xFFFF_FF80);
        assert_eq!(run("cvt.u8.u32", &[0x1FF]), 0xFF);
        assert_eq!(run("cvt.sat.u8.s32", &[(-5i32) as u32 as u64]), 0);
        assert_eq!(run("cvt.sat.s8.s32", &[200]), 0x7F);
        assert_eq!(run("cvt.sat.u32.s64", &[u64::MAX]), 0);
        assert_eq!(run("cvt.sat.s32.u32", &[0xFFFF_FFFF]), 0x7FFF_FFFF);
        assert_eq!(run("cvt.sat.u64.s64", &[1 << 63]), 0);
    }

    #[test]
    fn integer_to_float_rounds() {
        // 2^31 - 1 needs 31 bits: to nearest it is 2^31, toward zero 2^31 - 128.
        assert_eq!(run("cvt.rn.f32.s32", &[0x7FFF_FFFF]), 0x4F00_0000);
        assert_eq!(run("cvt.rz.f32.s32", &[0x7FFF_FFFF]), 0x4EFF_FFFF);
        assert_eq!(run("cvt.rm.f32.s32", &[0x8000_0001]), 0xCF00_0000);
        assert_eq!(run("cvt.rz.f32.s32", &[0x8000_0001]), 0xCEFF_FFFF);
        assert_eq!(run("cvt.rn.f32.s32", &[0xFFFF_FFFF]), 0xBF80_0000);
        assert_eq!(run("cvt.rn.f32.u32", &[0xFFFF_FFFF]), 0x4F80_0000);
        // 2^24 + 1 and 2^24 + 3 are ties: even significands 2^24 and 2^24 + 4.
        assert_eq!(run("cvt.rn.f32.u32", &[16_777_217]), 0x4B80_0000);
        assert_eq!(run("cvt.rn.f32.u32", &[16_777_219]), 0x4B80_0002);
        assert_eq!(run("cvt.rn.f32.u64", &[u64::MAX]), 0x5F80_0000);
        assert_eq!(run("cvt.rn.f64.u64", &[u64::MAX]), 0x43F0_0000_0000_0000);
        assert_eq!(run("cvt.rz.f64.u64", &[u64::MAX]), 0x43EF_FFFF_FFFF_FFFF);
        assert_eq!(run("cvt.rn.f64.s32", &[0x8000_0000]), (-2147483648f64).to_bits());
        assert_eq!(run("cvt.rn.f64.u32", &[0xFFFF_FFFF]), 4294967295f64.to_bits());
        assert_eq!(run("cvt.rn.f32.s64", &[1 << 63]), 0xDF00_0000);
        assert_eq!(run("cvt.rn.f16.s32", &[70_000]), 0x7C00);
        assert_eq!(run("cvt.rz.f16.s32", &[70_000]), 0x7BFF);
        assert_eq!(run("cvt.rn.bf16.s32", &[0xFFFF_FFFF]), 0xBF80);
        assert_eq!(run("cvt.rn.sat.f32.s32", &[5]), ONE);
        assert_eq!(run("cvt.rn.f32.s32", &[0]), 0);
    }

    #[test]
    fn float_to_float() {
        assert_eq!(run("cvt.rn.f32.f64", &[(0.1f64).to_bits()]), 0x3DCC_CCCD);
        assert_eq!(run("cvt.rz.f32.f64", &[(0.1f64).to_bits()]), 0x3DCC_CCCC);
        assert_eq!(run("cvt.rn.f32.f64", &[(1e-50f64).to_bits()]), 0);
        assert_eq!(run("cvt.rp.f32.f64", &[(1e-50f64).to_bits()]), 1);
        assert_eq!(run("cvt.rm.f32.f64", &[(-1e-50f64).to_bits()]), 0x8000_0001);
        assert_eq!(run("cvt.rn.f32.f64", &[(1e300f64).to_bits()]), 0x7F80_0000);
        assert_eq!(run("cvt.rz.f32.f64", &[(1e300f64).to_bits()]), 0x7F7F_FFFF);
        // 1e-40 = 71362.38 units of 2^-149: a subnormal f32, flushed with .ftz (sign kept).
        assert_eq!(run("cvt.rn.f32.f64", &[(1e-40f64).to_bits()]), 0x0001_16C2);
        assert_eq!(run("cvt.rn.ftz.f32.f64", &[(1e-40f64).to_bits()]), 0);
        assert_eq!(run("cvt.rn.ftz.f32.f64", &[(-1e-40f64).to_bits()]), 0x8000_0000);
        assert_eq!(run("cvt.f64.f32", &[1]), (2f64.powi(-149)).to_bits());
        assert_eq!(run("cvt.ftz.f64.f32", &[0x8000_0001]), 1 << 63);
        assert_eq!(run("cvt.f64.f32", &[0xFFC0_0001]), 0x7FFF_FFFF_FFFF_FFFF);
        assert_eq!(run("cvt.f64.f32", &[0xFF80_0000]), 0xFFF0_0000_0000_0000);
        assert_eq!(run("cvt.f32.f32", &[1]), 1);
        assert_eq!(run("cvt.ftz.f32.f32", &[1]), 0);
        assert_eq!(run("cvt.sat.f32.f32", &[f32b(2.0)]), ONE);
        assert_eq!(run("cvt.sat.f32.f32", &[0x7FC0_0000]), 0);
        // f16: 65520 is half-way between the largest finite 65504 and 2^16: ties to even overflows.
        assert_eq!(run("cvt.rn.f16.f32", &[f32b(65520.0)]), 0x7C00);
        assert_eq!(run("cvt.rz.f16.f32", &[f32b(65520.0)]), 0x7BFF);
        assert_eq!(run("cvt.rn.f16.f32", &[ONE]), 0x3C00);
        assert_eq!(run("cvt.rn.f16.f32", &[0x3380_0000]), 0x0001);
        assert_eq!(run("cvt.rn.f16.f32", &[0x3300_0000]), 0x0000);
        assert_eq!(run("cvt.rn.f16.f32", &[0x3340_0000]), 0x0001);
        assert_eq!(run("cvt.rn.f16.f32", &[0x7FC0_0000]), 0x7FFF);
        assert_eq!(run("cvt.f32.f16", &[0x0001]), 0x3380_0000);
        assert_eq!(run("cvt.f32.f16", &[0xFC00]), 0xFF80_0000);
        assert_eq!(run("cvt.f32.bf16", &[0xBF80]), 0xBF80_0000);
        assert_eq!(run("cvt.rn.bf16.f16", &[0x3C01]), 0x3F80);
        assert_eq!(run("cvt.rn.f16.bf16", &[0x4780]), 0x7C00);
        assert_eq!(run("cvt.rn.relu.bf16.f32", &[f32b(-1.0)]), 0);
        assert_eq!(run("cvt.rn.relu.bf16.f32", &[0xFFC0_0000]), 0x7FFF);
        assert_eq!(run("cvt.rn.relu.f16.f32", &[f32b(2.0)]), 0x4000);
        assert_eq!(run("cvt.rn.f16x2.f32", &[ONE, f32b(2.0)]), 0x3C00_4000);
        assert_eq!(run("cvt.rz.bf16x2.f32", &[0x3F80_FFFF, 0xBF80_FFFF]), 0x3F80_BF80);
        assert_eq!(run("cvt.rn.relu.bf16x2.f32", &[f32b(-3.0), f32b(3.0)]), 0x0000_4040);
    }

    #[test]
    fn round_to_integral_in_the_same_format() {
        assert_eq!(run("cvt.rni.f32.f32", &[f32b(2.5)]), f32b(2.0));
        assert_eq!(run("cvt.rni.f32.f32", &[f32b(-0.5)]), 0x8000_0000);
        assert_eq!(run("cvt.rmi.f32.f32", &[f32b(-0.5)]), f32b(-1.0));
        assert_eq!(run("cvt.rpi.f32.f32", &[f32b(0.2)]), ONE);
        assert_eq!(run("cvt.rzi.f32.f32", &[f32b(-7.9)]), f32b(-7.0));
        assert_eq!(run("cvt.rni.f32.f32", &[f32b(8388609.0)]), f32b(8388609.0));
        assert_eq!(run("cvt.rni.f32.f32", &[0x7F80_0000]), 0x7F80_0000);
        assert_eq!(run("cvt.rni.f32.f32", &[0x7FC0_0001]), 0x7FFF_FFFF);
        assert_eq!(run("cvt.rpi.f32.f32", &[1]), ONE);
        assert_eq!(run("cvt.rpi.ftz.f32.f32", &[1]), 0);
        assert_eq!(run("cvt.rni.f64.f64", &[(4503599627370497.5f64).to_bits()]), 4503599627370498f64.to_bits());
        assert_eq!(run("cvt.rmi.f64.f64", &[(-1e-300f64).to_bits()]), (-1f64).to_bits());
    }

    #[test]
    fn mandatory_rounding_is_enforced() {
        for spec in ["cvt.f32.s32", "cvt.s32.f32", "cvt.f32.f64", "cvt.bf16.f32", "cvt.f16.bf16", "cvt.rn.s32.f32"] {
            assert!(crate::alu::resolve(spec).is_err(), "{spec}");
        }
        for spec in ["cvt.f64.f32", "cvt.f32.f16", "cvt.f32.bf16", "cvt.rn.f64.f32", "cvt.u32.s8"] {
            assert!(crate::alu::resolve(spec).is_ok(), "{spec}");
        }
    }
}
