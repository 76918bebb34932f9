//! `setp`'s comparison (0 or 1) on integer, bit and floating-point types.
//!
//! PTX rules applied here: for floats, the ordered comparisons `eq ne lt le gt ge` are false when either operand
//! is NaN, the unordered `equ neu ltu leu gtu geu` are true then; `num` is true when neither is NaN and `nan`
//! when either is; -0.0 equals +0.0; `.ftz` reads subnormal inputs as zeros. Integers compare as signed for
//! `.sN` and unsigned for `.uN`/`.bN` (`lo ls hi hs` are the unsigned spellings; `.bN` allows `eq`/`ne` only).
//! `testp` classifies one float: `finite infinite number notanumber normal subnormal` (sign ignored).

use super::Spec;
use super::fp::{self, F64, Fmt};
use super::int::mask;
use crate::ir::{AluFn, Ty};

const EQ: u8 = 0;
const NE: u8 = 1;
const LT: u8 = 2;
const LE: u8 = 3;
const GT: u8 = 4;
const GE: u8 = 5;
const NUM: u8 = 6;
const NAN: u8 = 7;
/// Added to `EQ..GE` for the unordered forms.
const UNORDERED: u8 = 8;

fn int<const W: u32, const S: bool, const OP: u8>(s: &[u64; 4], _: &mut bool) -> u64 {
    let v = |x: u64| if S { super::int::sx::<W>(x) as i128 } else { (x & mask(W)) as i128 };
    let (a, b) = (v(s[0]), v(s[1]));
    (match OP {
        EQ => a == b,
        NE => a != b,
        LT => a < b,
        LE => a <= b,
        GT => a > b,
        _ => a >= b,
    }) as u64
}

/// The exact value of a float of format `F` (every format here widens exactly to `f64`).
fn value<F: Fmt>(x: u64, ftz: bool) -> f64 {
    f64::from_bits(fp::convert::<F, F64>(fp::flush::<F>(x, ftz), fp::RN, false))
}

fn float<F: Fmt, const OP: u8, const FTZ: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let (a, b) = (value::<F>(s[0], FTZ), value::<F>(s[1], FTZ));
    let unordered = a.is_nan() || b.is_nan();
    (match OP {
        NUM => !unordered,
        NAN => unordered,
        _ if unordered => OP >= UNORDERED,
        _ => match OP % UNORDERED {
            EQ => a == b,
            NE => a != b,
            LT => a < b,
            LE => a <= b,
            GT => a > b,
            _ => a >= b,
        },
    }) as u64
}

const FINITE: u8 = 0;
const INFINITE: u8 = 1;
const NUMBER: u8 = 2;
const NOTANUMBER: u8 = 3;
const NORMAL: u8 = 4;
const SUBNORMAL: u8 = 5;

fn testp<F: Fmt, const OP: u8>(s: &[u64; 4], _: &mut bool) -> u64 {
    let mag = s[0] & !F::SIGN;
    (match OP {
        FINITE => mag < F::INF,
        INFINITE => mag == F::INF,
        NUMBER => mag <= F::INF,
        NOTANUMBER => mag > F::INF,
        NORMAL => mag < F::INF && mag & F::INF != 0,
        _ => fp::is_subnormal::<F>(mag),
    }) as u64
}

pub(crate) fn resolve_testp(s: &Spec) -> Result<AluFn, String> {
    let ty = s.ty()?;
    let op = match s.mods[..] {
        ["finite"] => FINITE,
        ["infinite"] => INFINITE,
        ["number"] => NUMBER,
        ["notanumber"] => NOTANUMBER,
        ["normal"] => NORMAL,
        ["subnormal"] => SUBNORMAL,
        _ => return Err(s.unsupported()),
    };
    macro_rules! pick {
        ($F:ty) => {
            match op {
                FINITE => testp::<$F, FINITE> as AluFn,
                INFINITE => testp::<$F, INFINITE> as AluFn,
                NUMBER => testp::<$F, NUMBER> as AluFn,
                NOTANUMBER => testp::<$F, NOTANUMBER> as AluFn,
                NORMAL => testp::<$F, NORMAL> as AluFn,
                _ => testp::<$F, SUBNORMAL> as AluFn,
            }
        };
    }
    match ty {
        Ty::F32 => Ok(pick!(fp::F32)),
        Ty::F64 => Ok(pick!(F64)),
        _ => Err(s.unsupported()),
    }
}

pub(crate) fn resolve(s: &Spec) -> Result<AluFn, String> {
    let ty = s.ty()?;
    let (cmp, rest) = s.mods.split_first().ok_or_else(|| s.err("comparison missing"))?;
    let ftz = rest == ["ftz"];
    if !(rest.is_empty() || ftz && ty == Ty::F32) {
        return Err(s.unsupported());
    }
    let op = match *cmp {
        "eq" => EQ,
        "ne" => NE,
        "lt" | "lo" => LT,
        "le" | "ls" => LE,
        "gt" | "hi" => GT,
        "ge" | "hs" => GE,
        "equ" => EQ + UNORDERED,
        "neu" => NE + UNORDERED,
        "ltu" => LT + UNORDERED,
        "leu" => LE + UNORDERED,
        "gtu" => GT + UNORDERED,
        "geu" => GE + UNORDERED,
        "num" => NUM,
        "nan" => NAN,
        _ => return Err(s.err("unknown comparison")),
    };
    let unsupported = || Err(s.unsupported());
    let unsigned_only = matches!(*cmp, "lo" | "ls" | "hi" | "hs");
    macro_rules! by_op {
        ($f:ident::<$($p:ty),*>; $($c:ident),*) => {
            Ok(match op {
                EQ => $f::<$($p,)* EQ $(, $c)*> as AluFn,
                NE => $f::<$($p,)* NE $(, $c)*> as AluFn,
                LT => $f::<$($p,)* LT $(, $c)*> as AluFn,
                LE => $f::<$($p,)* LE $(, $c)*> as AluFn,
                GT => $f::<$($p,)* GT $(, $c)*> as AluFn,
                GE => $f::<$($p,)* GE $(, $c)*> as AluFn,
                NUM => $f::<$($p,)* NUM $(, $c)*> as AluFn,
                NAN => $f::<$($p,)* NAN $(, $c)*> as AluFn,
                8 => $f::<$($p,)* 8 $(, $c)*> as AluFn,
                9 => $f::<$($p,)* 9 $(, $c)*> as AluFn,
                10 => $f::<$($p,)* 10 $(, $c)*> as AluFn,
                11 => $f::<$($p,)* 11 $(, $c)*> as AluFn,
                12 => $f::<$($p,)* 12 $(, $c)*> as AluFn,
                _ => $f::<$($p,)* 13 $(, $c)*> as AluFn,
            })
        };
    }
    if ty.is_float() {
        return with_float!(ty, F => with_bool!(ftz, Z => by_op!(float::<F>; Z)), _ => unsupported());
    }
    if op > GE || (unsigned_only && ty.is_signed()) || (matches!(ty, Ty::B16 | Ty::B32 | Ty::B64) && op > NE) {
        return unsupported();
    }
    with_int!(ty, W, S => match op {
        EQ => Ok(int::<W, S, EQ> as AluFn),
        NE => Ok(int::<W, S, NE> as AluFn),
        LT => Ok(int::<W, S, LT> as AluFn),
        LE => Ok(int::<W, S, LE> as AluFn),
        GT => Ok(int::<W, S, GT> as AluFn),
        _ => Ok(int::<W, S, GE> as AluFn),
    }, _ => unsupported())
}

#[cfg(test)]
mod tests {
    use crate::alu::tests::run;

    const NAN: u64 = 0x7FC0_0000;
    const ONE: u64 = 0x3F80_0000;

    #[test]
    fn integer_comparisons_by_signedness() {
        assert_eq!(run("setp.lt.s32", &[0xFFFF_FFFF, 0]), 1);
        assert_eq!(run("setp.lt.u32", &[0xFFFF_FFFF, 0]), 0);
        assert_eq!(run("setp.lo.u32", &[0, 0xFFFF_FFFF]), 1);
        assert_eq!(run("setp.hs.u64", &[u64::MAX, 1]), 1);
        assert_eq!(run("setp.ge.s64", &[u64::MAX, 0]), 0);
        assert_eq!(run("setp.lt.s16", &[0x8000, 0]), 1);
        assert_eq!(run("setp.eq.s16", &[0xFFFF, 0xFFFF]), 1);
        assert_eq!(run("setp.ne.s16", &[0xFFFF, 0x7FFF]), 1);
        assert_eq!(run("setp.eq.b32", &[5, 5]), 1);
        assert_eq!(run("setp.le.u32", &[3, 3]), 1);
        assert_eq!(run("setp.gt.s32", &[3, 3]), 0);
        assert!(crate::alu::resolve("setp.lt.b32").is_err());
    }

    #[test]
    fn float_comparisons_with_nan() {
        for (cmp, expect) in [
            ("eq", 0),
            ("ne", 0),
            ("lt", 0),
            ("le", 0),
            ("gt", 0),
            ("ge", 0),
            ("equ", 1),
            ("neu", 1),
            ("ltu", 1),
            ("leu", 1),
            ("gtu", 1),
            ("geu", 1),
            ("num", 0),
            ("nan", 1),
        ] {
            assert_eq!(run(&format!("setp.{cmp}.f32"), &[NAN, ONE]), expect, "{cmp} NaN, 1");
            assert_eq!(run(&format!("setp.{cmp}.f32"), &[ONE, NAN]), expect, "{cmp} 1, NaN");
            assert_eq!(run(&format!("setp.{cmp}.f64"), &[0xFFF8_0000_0000_0001, 0]), expect, "{cmp} f64 NaN");
        }
        assert_eq!(run("setp.ltu.f32", &[ONE, 0x4000_0000]), 1);
        assert_eq!(run("setp.ltu.f32", &[0x4000_0000, ONE]), 0);
        assert_eq!(run("setp.num.f32", &[ONE, ONE]), 1);
        assert_eq!(run("setp.neu.f32", &[ONE, ONE]), 0);
    }

    #[test]
    fn zeros_infinities_and_subnormals() {
        assert_eq!(run("setp.eq.f32", &[0, 0x8000_0000]), 1);
        assert_eq!(run("setp.lt.f32", &[0x8000_0000, 0]), 0);
        assert_eq!(run("setp.lt.f32", &[0xFF80_0000, 0xFF7F_FFFF]), 1);
        assert_eq!(run("setp.gt.f64", &[0x7FF0_0000_0000_0000, 0x7FEF_FFFF_FFFF_FFFF]), 1);
        // The smallest subnormal is above zero unless .ftz reads it as zero.
        assert_eq!(run("setp.lt.f32", &[0, 1]), 1);
        assert_eq!(run("setp.lt.ftz.f32", &[0, 1]), 0);
        assert_eq!(run("setp.geu.ftz.f32", &[0x8000_0001, 0]), 1);
        assert_eq!(run("setp.ge.f32", &[0x8000_0001, 0]), 0);
        assert_eq!(run("setp.lt.f32", &[0xBF80_0000, ONE]), 1);
        assert_eq!(run("setp.gt.bf16", &[0x3F80, 0x3F7F]), 1);
        assert_eq!(run("setp.lt.f16", &[0xBC00, 0x3C00]), 1);
    }

    #[test]
    fn testp_classifies() {
        let cases =
            [(0x3F80_0000, "normal"), (0x8000_0001, "subnormal"), (0xFF80_0000, "infinite"), (NAN, "notanumber")];
        for (x, class) in cases {
            for op in ["finite", "infinite", "number", "notanumber", "normal", "subnormal"] {
                let expect = match op {
                    "finite" => class == "normal" || class == "subnormal",
                    "number" => class != "notanumber",
                    _ => op == class,
                };
                assert_eq!(run(&format!("testp.{op}.f32"), &[x]), expect as u64, "testp.{op} of {class}");
            }
        }
        assert_eq!(run("testp.finite.f32", &[0x8000_0000]), 1);
        assert_eq!(run("testp.normal.f32", &[0]), 0);
        assert_eq!(run("testp.subnormal.f64", &[1]), 1);
        assert_eq!(run("testp.notanumber.f64", &[0x7FF0_0000_0000_0001]), 1);
    }
}
