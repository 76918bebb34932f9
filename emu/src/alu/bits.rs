//! Logic and bit manipulation: `and or xor not cnot` (also on `.pred`), `shl shr`, `popc clz brev bfind bfe bfi`
//! `prmt` (default mode) and `lop3`.
//!
//! PTX rules applied here: shift amounts are unsigned and amounts of the register width or more are clamped to
//! the width (`shl`/`shr.u` give 0, `shr.s` gives the sign fill); `popc`/`clz`/`bfind` results are `.u32`, with
//! `clz(0)` the width and `bfind` of no non-sign bit `0xFFFFFFFF`; `bfe/bfi` positions and lengths use their low
//! 8 bits.

use super::Spec;
use super::int::{mask, sx};
use crate::ir::{AluFn, Ty};

fn and(s: &[u64; 4], _: &mut bool) -> u64 {
    s[0] & s[1]
}

fn or(s: &[u64; 4], _: &mut bool) -> u64 {
    s[0] | s[1]
}

fn xor(s: &[u64; 4], _: &mut bool) -> u64 {
    s[0] ^ s[1]
}

fn not<const W: u32>(s: &[u64; 4], _: &mut bool) -> u64 {
    !s[0] & mask(W)
}

fn cnot(s: &[u64; 4], _: &mut bool) -> u64 {
    (s[0] == 0) as u64
}

/// The shift amount operand (`.u32`).
fn amount(b: u64) -> u32 {
    b as u32
}

fn shl<const W: u32>(s: &[u64; 4], _: &mut bool) -> u64 {
    let n = amount(s[1]);
    if n >= W { 0 } else { (s[0] << n) & mask(W) }
}

fn shr<const W: u32, const S: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let n = amount(s[1]);
    if S {
        (sx::<W>(s[0]) >> n.min(63)) as u64 & mask(W)
    } else if n >= W {
        0
    } else {
        (s[0] & mask(W)) >> n
    }
}

fn popc(s: &[u64; 4], _: &mut bool) -> u64 {
    s[0].count_ones() as u64
}

fn clz<const W: u32>(s: &[u64; 4], _: &mut bool) -> u64 {
    ((s[0] & mask(W)).leading_zeros() - (64 - W)) as u64
}

fn brev<const W: u32>(s: &[u64; 4], _: &mut bool) -> u64 {
    (s[0] & mask(W)).reverse_bits() >> (64 - W)
}

/// `bfind`: position of the most significant non-sign bit (negative signed inputs are complemented first);
/// `.shiftamt` gives `msb - position` instead.
fn bfind<const W: u32, const S: bool, const SHIFTAMT: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let a = s[0] & mask(W);
    let a = if S && a >> (W - 1) == 1 { !a & mask(W) } else { a };
    if a == 0 {
        return 0xFFFF_FFFF;
    }
    let pos = 63 - a.leading_zeros() as u64;
    if SHIFTAMT { (W as u64 - 1) - pos } else { pos }
}

/// `bfe`: `len` bits of `a` from `pos`, zero-extended, or for signed types extended with the field's top bit
/// (the input's msb when the field runs past it); zero for `len == 0`.
fn bfe<const W: u32, const S: bool>(s: &[u64; 4], _: &mut bool) -> u64 {
    let a = s[0] & mask(W);
    let (pos, len) = ((s[1] & 0xFF) as u32, (s[2] & 0xFF) as u32);
    if len == 0 {
        return 0;
    }
    let sbit = S && (a >> (pos + len - 1).min(W - 1)) & 1 == 1;
    let field = if pos >= W { 0 } else { (a >> pos) & mask(len.min(W - pos)) };
    let kept = if pos >= W { 0 } else { len.min(W - pos) };
    if sbit { (field | (!0u64 << kept)) & mask(W) } else { field }
}

/// `bfi f, a, b, pos, len`: `b` with its bits `pos..pos+len` (clipped at the msb) replaced by the low bits of `a`.
fn bfi<const W: u32>(s: &[u64; 4], _: &mut bool) -> u64 {
    let (a, b) = (s[0], s[1] & mask(W));
    let (pos, len) = ((s[2] & 0xFF) as u32, (s[3] & 0xFF) as u32);
    if len == 0 || pos >= W {
        return b;
    }
    let m = mask(len.min(W - pos)) << pos;
    (b & !m) | ((a << pos) & m)
}

/// `prmt.b32 d, a, b, c` default mode: byte `i` of `d` is byte `c[4i+2:4i]` of the eight bytes `{b, a}` (`a` in
/// the low four), replaced by its sign (0x00 or 0xFF) when `c[4i+3]` is set.
fn prmt(s: &[u64; 4], _: &mut bool) -> u64 {
    let bytes = (s[1] & 0xFFFF_FFFF) << 32 | (s[0] & 0xFFFF_FFFF);
    (0..4).fold(0, |d, i| {
        let sel = (s[2] >> (4 * i)) & 0xF;
        let byte = (bytes >> (8 * (sel & 7))) & 0xFF;
        let byte = if sel & 8 != 0 { if byte & 0x80 != 0 { 0xFF } else { 0 } } else { byte };
        d | byte << (8 * i)
    })
}

/// `lop3.b32 d, a, b, c, immLut`: bit `i` of `d` is bit `(a_i << 2) | (b_i << 1) | c_i` of `immLut` (the table
/// `immLut = F(0xF0, 0xCC, 0xAA)` of the ISA).
fn lop3(s: &[u64; 4], _: &mut bool) -> u64 {
    let (a, b, c, lut) = (s[0], s[1], s[2], s[3]);
    (0..8).filter(|i| (lut >> i) & 1 == 1).fold(0, |d, i| {
        let pick = |x: u64, bit: u32| if i & bit != 0 { x } else { !x };
        d | (pick(a, 4) & pick(b, 2) & pick(c, 1))
    }) & 0xFFFF_FFFF
}

pub(crate) fn resolve(s: &Spec) -> Result<AluFn, String> {
    let ty = s.ty()?;
    s.only(if s.op == "bfind" { &["shiftamt"] } else { &[] })?;
    let unsupported = || Err(s.unsupported());
    let bitwise = matches!(
        ty,
        Ty::Pred | Ty::B16 | Ty::B32 | Ty::B64 | Ty::U16 | Ty::U32 | Ty::U64 | Ty::S16 | Ty::S32 | Ty::S64
    );
    match s.op {
        "and" if bitwise => return Ok(and),
        "or" if bitwise => return Ok(or),
        "xor" if bitwise => return Ok(xor),
        "cnot" if bitwise => return Ok(cnot),
        "not" if ty == Ty::Pred => return Ok(not::<1>),
        "popc" if matches!(ty, Ty::B32 | Ty::B64) => return Ok(popc),
        "prmt" if ty == Ty::B32 => return Ok(prmt),
        "lop3" if ty == Ty::B32 => return Ok(lop3),
        _ => {}
    }
    let shiftamt = s.has("shiftamt");
    with_int!(ty, W, S => match s.op {
        "not" => Ok(not::<W> as AluFn),
        "shl" if matches!(ty, Ty::B16 | Ty::B32 | Ty::B64) => Ok(shl::<W> as AluFn),
        "shr" => Ok(shr::<W, S> as AluFn),
        "clz" if matches!(ty, Ty::B32 | Ty::B64) => Ok(clz::<W> as AluFn),
        "brev" if matches!(ty, Ty::B32 | Ty::B64) => Ok(brev::<W> as AluFn),
        "bfind" if W >= 32 && !matches!(ty, Ty::B32 | Ty::B64) => with_bool!(shiftamt, A => Ok(bfind::<W, S, A> as AluFn)),
        "bfe" if W >= 32 && !matches!(ty, Ty::B32 | Ty::B64) => Ok(bfe::<W, S> as AluFn),
        "bfi" if matches!(ty, Ty::B32 | Ty::B64) => Ok(bfi::<W> as AluFn),
        _ => unsupported(),
    }, _ => unsupported())
}

#[cfg(test)]
mod tests {
    use crate::alu::tests::run;

    #[test]
    fn shifts_clamp_at_the_width() {
        assert_eq!(run("shr.s32", &[0x8000_0000, 4]), 0xF800_0000);
        assert_eq!(run("shr.u32", &[0x8000_0000, 4]), 0x0800_0000);
        assert_eq!(run("shr.b32", &[0x8000_0000, 4]), 0x0800_0000);
        assert_eq!(run("shr.s32", &[0x8000_0000, 40]), 0xFFFF_FFFF);
        assert_eq!(run("shr.s32", &[0x7FFF_FFFF, 32]), 0);
        assert_eq!(run("shr.u32", &[0xFFFF_FFFF, 32]), 0);
        assert_eq!(run("shl.b32", &[1, 31]), 0x8000_0000);
        assert_eq!(run("shl.b32", &[1, 32]), 0);
        assert_eq!(run("shl.b32", &[0xFFFF_FFFF, 0xFFFF_FFFF]), 0);
        assert_eq!(run("shl.b64", &[1, 63]), 1 << 63);
        assert_eq!(run("shl.b64", &[1, 64]), 0);
        assert_eq!(run("shr.s64", &[1 << 63, 63]), u64::MAX);
        assert_eq!(run("shr.u64", &[1 << 63, 63]), 1);
        assert_eq!(run("shr.s16", &[0x8000, 1]), 0xC000);
        assert_eq!(run("shl.b16", &[0x8001, 1]), 0x0002);
    }

    #[test]
    fn counting_and_reversal() {
        assert_eq!(run("clz.b32", &[0]), 32);
        assert_eq!(run("clz.b32", &[1]), 31);
        assert_eq!(run("clz.b32", &[0x8000_0000]), 0);
        assert_eq!(run("clz.b64", &[0]), 64);
        assert_eq!(run("clz.b64", &[0x1_0000_0000]), 31);
        assert_eq!(run("popc.b32", &[0xFFFF_FFFF]), 32);
        assert_eq!(run("popc.b64", &[0x8000_0000_0000_0001]), 2);
        assert_eq!(run("brev.b32", &[1]), 0x8000_0000);
        assert_eq!(run("brev.b32", &[0x1234_5678]), 0x1E6A_2C48);
        assert_eq!(run("brev.b64", &[1]), 1 << 63);
    }

    #[test]
    fn bfind_finds_the_top_non_sign_bit() {
        assert_eq!(run("bfind.u32", &[0]), 0xFFFF_FFFF);
        assert_eq!(run("bfind.shiftamt.u32", &[0]), 0xFFFF_FFFF);
        assert_eq!(run("bfind.u32", &[1]), 0);
        assert_eq!(run("bfind.shiftamt.u32", &[1]), 31);
        assert_eq!(run("bfind.u32", &[0x8000_0000]), 31);
        assert_eq!(run("bfind.shiftamt.u32", &[0x0001_0000]), 15);
        assert_eq!(run("bfind.s32", &[0xFFFF_FFFF]), 0xFFFF_FFFF);
        assert_eq!(run("bfind.s32", &[0xFFFF_0000]), 15);
        assert_eq!(run("bfind.s32", &[0x7FFF_FFFF]), 30);
        assert_eq!(run("bfind.u64", &[1 << 40]), 40);
        assert_eq!(run("bfind.shiftamt.s64", &[1]), 63);
    }

    #[test]
    fn bit_fields() {
        assert_eq!(run("bfe.u32", &[0xF0F0_F0F0, 4, 8]), 0x0F);
        assert_eq!(run("bfe.s32", &[0xF0, 4, 4]), 0xFFFF_FFFF);
        assert_eq!(run("bfe.s32", &[0x70, 4, 4]), 7);
        assert_eq!(run("bfe.u32", &[0xFFFF_FFFF, 4, 0]), 0);
        assert_eq!(run("bfe.s32", &[0x8000_0000, 31, 5]), 0xFFFF_FFFF);
        assert_eq!(run("bfe.u32", &[0x8000_0000, 31, 5]), 1);
        assert_eq!(run("bfe.s32", &[0x8000_0000, 40, 5]), 0xFFFF_FFFF);
        assert_eq!(run("bfe.u32", &[0x8000_0000, 40, 5]), 0);
        // Only the low 8 bits of the position and length count.
        assert_eq!(run("bfe.u32", &[0xF0F0_F0F0, 0x104, 0x108]), 0x0F);
        assert_eq!(run("bfe.s64", &[0x0000_8000_0000_0000, 32, 16]), 0xFFFF_FFFF_FFFF_8000);
        assert_eq!(run("bfi.b32", &[0xF, 0, 4, 4]), 0xF0);
        assert_eq!(run("bfi.b32", &[0xFF, 0xFFFF_0000, 28, 8]), 0xFFFF_0000 | 0xF000_0000);
        assert_eq!(run("bfi.b32", &[0xF, 0x1234, 4, 0]), 0x1234);
        assert_eq!(run("bfi.b32", &[0xF, 0x1234, 32, 4]), 0x1234);
        assert_eq!(run("bfi.b64", &[0xFFFF, 0, 56, 16]), 0xFF00_0000_0000_0000);
    }

    #[test]
    fn prmt_selects_bytes() {
        let (a, b) = (0x3322_1100, 0x7766_5544);
        assert_eq!(run("prmt.b32", &[a, b, 0x3210]), a);
        assert_eq!(run("prmt.b32", &[a, b, 0x7654]), b);
        assert_eq!(run("prmt.b32", &[a, b, 0x0123]), 0x0011_2233);
        assert_eq!(run("prmt.b32", &[a, b, 0x5140]), 0x5511_4400);
        // Bit 3 of a selector replicates the selected byte's sign.
        assert_eq!(run("prmt.b32", &[0x80, 0, 0x0008]), 0x8080_80FF);
    }

    #[test]
    fn logic() {
        assert_eq!(run("not.b32", &[0]), 0xFFFF_FFFF);
        assert_eq!(run("not.b16", &[0x00FF]), 0xFF00);
        assert_eq!(run("not.b64", &[0]), u64::MAX);
        assert_eq!(run("not.pred", &[1]), 0);
        assert_eq!(run("not.pred", &[0]), 1);
        assert_eq!(run("cnot.b32", &[5]), 0);
        assert_eq!(run("cnot.b32", &[0]), 1);
        assert_eq!(run("and.pred", &[1, 0]), 0);
        assert_eq!(run("or.pred", &[1, 0]), 1);
        assert_eq!(run("xor.pred", &[1, 1]), 0);
        assert_eq!(run("and.b32", &[0xF0F0, 0xFF00]), 0xF000);
        assert_eq!(run("or.b64", &[1 << 63, 1]), (1 << 63) | 1);
        assert_eq!(run("xor.b32", &[0xFFFF_FFFF, 0x0F0F_0F0F]), 0xF0F0_F0F0);
    }

    #[test]
    fn lop3_applies_its_truth_table() {
        let (a, b, c) = (0xF0F0_F0F0, 0xCCCC_CCCC, 0xAAAA_AAAA);
        // Fed the ISA's canonical operands, lop3 returns its table replicated.
        for lut in [0x00, 0xFF, 0x80, 0x96, 0xE8, 0x1E] {
            assert_eq!(run("lop3.b32", &[a, b, c, lut]), lut * 0x0101_0101, "{lut:#x}");
        }
        // 0x80 = a & b & c, 0xFE = a | b | c, 0x96 = a ^ b ^ c.
        assert_eq!(run("lop3.b32", &[0b1100, 0b1010, 0b1111, 0x80]), 0b1000);
        assert_eq!(run("lop3.b32", &[0b1000, 0b0100, 0b0001, 0xFE]), 0b1101);
        assert_eq!(run("lop3.b32", &[0b1100, 0b1010, 0b0110, 0x96]), 0b0000);
    }
}
