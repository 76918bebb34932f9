//! Packed half-precision arithmetic (`.f16x2`, `.bf16x2`): each instruction applies the scalar operation to the
//! low and the high 16-bit halves independently (PTX ISA "Half Precision Floating-Point Instructions").

use super::Spec;
use super::float::minmax;
use super::fp::{self, Fmt};
use crate::ir::{AluFn, Ty};

const ADD: u8 = 0;
const SUB: u8 = 1;
const MUL: u8 = 2;
const FMA: u8 = 3;
const MIN: u8 = 4;
const MAX: u8 = 5;
const NEG: u8 = 6;
const ABS: u8 = 7;

/// One half of operation `OP`; `FLAG` is `.sat` for arithmetic and `.NaN` for `min`/`max`.
fn scalar<F: Fmt, const OP: u8, const RM: u8, const FTZ: bool, const FLAG: bool>(s: &[u64; 4]) -> u64 {
    let sat = |x| if FLAG { fp::saturate::<F>(x) } else { x };
    match OP {
        ADD => sat(fp::add::<F>(s[0], s[1], RM, FTZ)),
        SUB => sat(fp::add::<F>(s[0], s[1] ^ F::SIGN, RM, FTZ)),
        MUL => sat(fp::mul::<F>(s[0], s[1], RM, FTZ)),
        FMA => sat(fp::fma::<F>(s[0], s[1], s[2], RM, FTZ)),
        MIN => minmax::<F, false, FTZ, FLAG>(s, &mut false),
        MAX => minmax::<F, true, FTZ, FLAG>(s, &mut false),
        NEG => fp::flush::<F>(s[0], FTZ) ^ F::SIGN,
        _ => fp::flush::<F>(s[0], FTZ) & !F::SIGN,
    }
}

fn x2<F: Fmt, const OP: u8, const RM: u8, const FTZ: bool, const FLAG: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let half = |sh: u32| s.map(|v| (v >> sh) & 0xFFFF);
    scalar::<F, OP, RM, FTZ, FLAG>(&half(0)) | scalar::<F, OP, RM, FTZ, FLAG>(&half(16)) << 16
}

pub(crate) fn resolve(s: &Spec) -> Result<AluFn, String> {
    let (op, allowed): (u8, &[&str]) = match s.op {
        "add" => (ADD, &["rn", "ftz", "sat"]),
        "sub" => (SUB, &["rn", "ftz", "sat"]),
        "mul" => (MUL, &["rn", "ftz", "sat"]),
        "fma" => (FMA, &["rn", "ftz", "sat"]),
        "min" => (MIN, &["ftz", "NaN"]),
        "max" => (MAX, &["ftz", "NaN"]),
        "neg" => (NEG, &["ftz"]),
        "abs" => (ABS, &["ftz"]),
        _ => return Err(s.unsupported()),
    };
    s.only(allowed)?;
    if op == FMA && !s.has("rn") {
        return Err(s.err("rounding modifier required"));
    }
    let ty = s.ty()?;
    let ftz = s.has("ftz");
    if ftz && ty != Ty::F16x2 {
        return Err(s.err(".ftz applies to .f16x2 only"));
    }
    let flag = s.has("sat") || s.has("NaN");
    macro_rules! pick {
        ($F:ty) => {
            with_bool!(ftz, Z => with_bool!(flag, G => match op {
                ADD => x2::<$F, ADD, { fp::RN }, Z, G> as AluFn,
                SUB => x2::<$F, SUB, { fp::RN }, Z, G> as AluFn,
                MUL => x2::<$F, MUL, { fp::RN }, Z, G> as AluFn,
                FMA => x2::<$F, FMA, { fp::RN }, Z, G> as AluFn,
                MIN => x2::<$F, MIN, { fp::RN }, Z, G> as AluFn,
                MAX => x2::<$F, MAX, { fp::RN }, Z, G> as AluFn,
                NEG => x2::<$F, NEG, { fp::RN }, Z, G> as AluFn,
                _ => x2::<$F, ABS, { fp::RN }, Z, G> as AluFn,
            }))
        };
    }
    Ok(if ty == Ty::F16x2 { pick!(fp::F16) } else { pick!(fp::Bf16) })
}

#[cfg(test)]
mod tests {
    use crate::alu::tests::run;

    #[test]
    fn halves_are_independent() {
        // f16: (1 + 1, 2 + 1) = (2, 3).
        assert_eq!(run("add.f16x2", &[0x3C00_4000, 0x3C00_3C00]), 0x4000_4200);
        assert_eq!(run("add.rn.bf16x2", &[0x3F80_4000, 0x3F80_3F80]), 0x4000_4040);
        assert_eq!(run("sub.f16x2", &[0x3C00_3C00, 0x3C00_4000]), 0x0000_BC00);
        assert_eq!(run("mul.rn.bf16x2", &[0x4000_C000, 0x4040_3F00]), 0x40C0_BF80);
        assert_eq!(run("fma.rn.f16x2", &[0x4000_4000, 0x4000_4200, 0x3C00_BC00]), 0x4500_4500);
        // Overflow in one half only.
        assert_eq!(run("add.f16x2", &[0x7BFF_3C00, 0x7BFF_3C00]), 0x7C00_4000);
        assert_eq!(run("add.sat.f16x2", &[0x3C00_BC00, 0x3C00_3800]), 0x3C00_0000);
        assert_eq!(run("add.ftz.f16x2", &[0x0001_0001, 0x0001_0000]), 0);
        assert_eq!(run("add.f16x2", &[0x0001_0001, 0x0001_0000]), 0x0002_0001);
    }

    #[test]
    fn min_max_neg_abs() {
        assert_eq!(run("min.f16x2", &[0x7E00_3C00, 0x4000_4000]), 0x4000_3C00);
        assert_eq!(run("min.NaN.bf16x2", &[0x7FC0_3F80, 0x4000_4000]), 0x7FFF_3F80);
        assert_eq!(run("max.bf16x2", &[0x8000_3F80, 0x0000_BF80]), 0x0000_3F80);
        assert_eq!(run("neg.f16x2", &[0x3C00_BC00]), 0xBC00_3C00);
        assert_eq!(run("abs.bf16x2", &[0xBF80_3F80]), 0x3F80_3F80);
    }
}
