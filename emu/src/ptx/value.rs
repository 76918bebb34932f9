//! Type names and literals: what a literal's bits are once the operand's type is known.

use super::ast::Literal;
use crate::ir::Ty;

/// A type suffix without its dot: `u32`, `bf16x2`, `pred`.
pub fn ty(name: &str) -> Option<Ty> {
    Ty::from_name(name)
}

/// The type twice as wide (the sum operand of `mad.wide`).
pub fn wide(t: Ty) -> Option<Ty> {
    Some(match t {
        Ty::U16 => Ty::U32,
        Ty::S16 => Ty::S32,
        Ty::U32 => Ty::U64,
        Ty::S32 => Ty::S64,
        _ => return None,
    })
}

/// A numeric literal as PTX writes them: decimal, `0x` hex, `0b` binary, octal (leading `0`), each with an
/// optional `U` suffix; `0f`/`0d` hex floats; decimal floats (double precision).
pub fn literal(text: &str) -> Option<Literal> {
    let lower = text.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0f") {
        return (hex.len() == 8).then(|| u32::from_str_radix(hex, 16).ok().map(Literal::F32)).flatten();
    }
    if let Some(hex) = lower.strip_prefix("0d") {
        return (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok().map(Literal::F64)).flatten();
    }
    if lower.contains('.') || lower.contains('e') && !lower.starts_with("0x") {
        return lower.parse::<f64>().ok().map(|v| Literal::F64(v.to_bits()));
    }
    let digits = lower.strip_suffix('u').unwrap_or(&lower);
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16)
    } else if let Some(bin) = digits.strip_prefix("0b") {
        i128::from_str_radix(bin, 2)
    } else if digits.len() > 1 && digits.starts_with('0') {
        i128::from_str_radix(&digits[1..], 8)
    } else {
        digits.parse::<i128>()
    };
    value.ok().filter(|v| *v < 1 << 64).map(Literal::Int)
}

/// The literal's bits in an operand of type `t`: integers in two's complement at `t`'s width (they must fit,
/// signed or unsigned), floats converted to `t`'s precision. Packed and half types take integer bit patterns only.
pub fn bits(lit: Literal, t: Ty) -> Result<u64, String> {
    let width = t.bits();
    let mask = if width == 64 { u64::MAX } else { (1u64 << width) - 1 };
    match (lit, t) {
        (Literal::Int(v), Ty::F32 | Ty::F64) => Err(format!("integer literal {v} where a .{t:?} is expected")),
        // A predicate literal is 0 or true; nvcc writes true as -1.
        (Literal::Int(v), Ty::Pred) if matches!(v, -1..=1) => Ok((v != 0) as u64),
        (Literal::Int(v), _) => {
            let fits = t != Ty::Pred && v >= -(1i128 << (width - 1)) && v < 1i128 << width;
            if fits { Ok(v as u64 & mask) } else { Err(format!("literal {v} does not fit a {width}-bit operand")) }
        }
        (Literal::F32(b), Ty::F32) => Ok(b as u64),
        (Literal::F32(b), Ty::F64) => Ok((f32::from_bits(b) as f64).to_bits()),
        (Literal::F64(b), Ty::F64) => Ok(b),
        (Literal::F64(b), Ty::F32) => Ok((f64::from_bits(b) as f32).to_bits() as u64),
        (_, _) => Err(format!("floating-point literal where a .{t:?} is expected")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_of_each_kind() {
        assert_eq!(literal("0f3F800000"), Some(Literal::F32(0x3F80_0000)));
        assert_eq!(literal("0d3FF0000000000000"), Some(Literal::F64(0x3FF0_0000_0000_0000)));
        assert_eq!(literal("0x1F"), Some(Literal::Int(31)));
        assert_eq!(literal("0xFFFFFFFFFFFFFFFF"), Some(Literal::Int(u64::MAX as i128)));
        assert_eq!(literal("017"), Some(Literal::Int(15)));
        assert_eq!(literal("42U"), Some(Literal::Int(42)));
        assert_eq!(literal("0"), Some(Literal::Int(0)));
        assert_eq!(literal("1.5"), Some(Literal::F64(1.5f64.to_bits())));
        assert_eq!(literal("0f3F80"), None);
        assert_eq!(literal("12ab"), None);
    }

    #[test]
    fn bits_follow_the_operand_type() {
        assert_eq!(bits(Literal::Int(-1), Ty::S32), Ok(0xFFFF_FFFF));
        assert_eq!(bits(Literal::Int(-1), Ty::B16), Ok(0xFFFF));
        assert_eq!(bits(Literal::Int(-4294967296), Ty::B64), Ok(0xFFFF_FFFF_0000_0000));
        assert_eq!(bits(Literal::Int(0xFFFF_FFFF), Ty::U32), Ok(0xFFFF_FFFF));
        assert!(bits(Literal::Int(1 << 32), Ty::U32).is_err());
        assert!(bits(Literal::Int(2), Ty::Pred).is_err());
        assert_eq!(bits(Literal::Int(-1), Ty::Pred), Ok(1));
        assert_eq!(bits(Literal::F32(0x3F80_0000), Ty::F64), Ok(1.0f64.to_bits()));
        assert_eq!(bits(Literal::F64(1.0f64.to_bits()), Ty::F32), Ok(0x3F80_0000));
        assert!(bits(Literal::Int(1), Ty::F32).is_err());
        assert!(bits(Literal::F32(0), Ty::U32).is_err());
    }
}
