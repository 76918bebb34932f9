//! Logic and bit manipulation: `and or xor not cnot` (also on `.pred`), `shl shr`, `popc clz brev bfind bfe bfi`
//! and `prmt` (default mode).
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
