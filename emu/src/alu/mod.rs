//! Per-lane semantics of PTX's arithmetic, logic, comparison and conversion instructions, as the PTX ISA
//! defines them. `resolve` is called once per instruction at module load and picks a monomorphic function; the
//! executor calls that function for every active lane.
//!
//! The runtime choices a spec makes (types, rounding, `.ftz`, `.sat`, ...) become const generic parameters of the
//! instruction functions through the `with_*` macros, which bind a runtime value to a block-local `const` (or
//! `type`) in one arm per possible value; nothing is decided per lane.

use crate::ir::{AluFn, Class, Ty};

/// Binds `$c` to a `const bool` equal to the runtime value of `$v` around `$body`.
macro_rules! with_bool {
    ($v:expr, $c:ident => $body:expr) => {
        if $v {
            const $c: bool = true;
            $body
        } else {
            const $c: bool = false;
            $body
        }
    };
}

/// Binds `$c` to a `const u8` rounding direction (`fp::RN`, `RZ`, `RM`, `RP`) equal to the runtime value `$v`.
macro_rules! with_rm {
    ($v:expr, $c:ident => $body:expr) => {
        match $v {
            crate::alu::fp::RN => {
                const $c: u8 = crate::alu::fp::RN;
                $body
            }
            crate::alu::fp::RZ => {
                const $c: u8 = crate::alu::fp::RZ;
                $body
            }
            crate::alu::fp::RM => {
                const $c: u8 = crate::alu::fp::RM;
                $body
            }
            _ => {
                const $c: u8 = crate::alu::fp::RP;
                $body
            }
        }
    };
}

/// Binds the type `$f` to the `fp` format of the scalar float type `$ty`; other types evaluate `$other`.
macro_rules! with_float {
    ($ty:expr, $f:ident => $body:expr, _ => $other:expr) => {
        match $ty {
            crate::ir::Ty::F16 => {
                type $f = crate::alu::fp::F16;
                $body
            }
            crate::ir::Ty::Bf16 => {
                type $f = crate::alu::fp::Bf16;
                $body
            }
            crate::ir::Ty::F32 => {
                type $f = crate::alu::fp::F32;
                $body
            }
            crate::ir::Ty::F64 => {
                type $f = crate::alu::fp::F64;
                $body
            }
            _ => $other,
        }
    };
}

/// Binds `$w` (`const u32`, the width in bits) and `$s` (`const bool`, signed) for the integer type `$ty`
/// (`.bN` counts as unsigned); other types evaluate `$other`.
macro_rules! with_int {
    ($ty:expr, $w:ident, $s:ident => $body:expr, _ => $other:expr) => {
        match $ty {
            crate::ir::Ty::U8 | crate::ir::Ty::B8 => {
                const $w: u32 = 8;
                const $s: bool = false;
                $body
            }
            crate::ir::Ty::S8 => {
                const $w: u32 = 8;
                const $s: bool = true;
                $body
            }
            crate::ir::Ty::U16 | crate::ir::Ty::B16 => {
                const $w: u32 = 16;
                const $s: bool = false;
                $body
            }
            crate::ir::Ty::S16 => {
                const $w: u32 = 16;
                const $s: bool = true;
                $body
            }
            crate::ir::Ty::U32 | crate::ir::Ty::B32 => {
                const $w: u32 = 32;
                const $s: bool = false;
                $body
            }
            crate::ir::Ty::S32 => {
                const $w: u32 = 32;
                const $s: bool = true;
                $body
            }
            crate::ir::Ty::U64 | crate::ir::Ty::B64 => {
                const $w: u32 = 64;
                const $s: bool = false;
                $body
            }
            crate::ir::Ty::S64 => {
                const $w: u32 = 64;
                const $s: bool = true;
                $body
            }
            _ => $other,
        }
    };
}

mod bits;
mod cmp;
mod cvt;
mod float;
pub mod fp;
mod half;
mod int;
mod special;

/// A spec split into its opcode, its modifiers and its types, in the order written.
pub(crate) struct Spec<'a> {
    pub text: &'a str,
    pub op: &'a str,
    pub mods: Vec<&'a str>,
    pub tys: Vec<Ty>,
}

impl<'a> Spec<'a> {
    fn parse(text: &'a str) -> Spec<'a> {
        let mut parts = text.split('.');
        let op = parts.next().unwrap_or("");
        let (mut mods, mut tys) = (Vec::new(), Vec::new());
        for p in parts {
            match Ty::from_name(p) {
                Some(t) => tys.push(t),
                None => mods.push(p),
            }
        }
        Spec { text, op, mods, tys }
    }

    pub fn has(&self, m: &str) -> bool {
        self.mods.contains(&m)
    }

    pub fn err(&self, why: &str) -> String {
        format!("{}: {why}", self.text)
    }

    /// Fails unless every modifier is one of `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), String> {
        match self.mods.iter().find(|m| !allowed.contains(m)) {
            Some(m) => Err(self.err(&format!("modifier .{m} not supported by the emulator"))),
            None => Ok(()),
        }
    }

    /// The single type of the spec.
    pub fn ty(&self) -> Result<Ty, String> {
        match self.tys[..] {
            [t] => Ok(t),
            _ => Err(self.err("expected exactly one type")),
        }
    }

    /// The IEEE rounding modifier (`.rn .rz .rm .rp`), if any.
    pub fn frnd(&self) -> Option<u8> {
        self.mods.iter().find_map(|m| match *m {
            "rn" => Some(fp::RN),
            "rz" => Some(fp::RZ),
            "rm" => Some(fp::RM),
            "rp" => Some(fp::RP),
            _ => None,
        })
    }

    /// The integer rounding modifier (`.rni .rzi .rmi .rpi`), if any.
    pub fn irnd(&self) -> Option<u8> {
        self.mods.iter().find_map(|m| match *m {
            "rni" => Some(fp::RN),
            "rzi" => Some(fp::RZ),
            "rmi" => Some(fp::RM),
            "rpi" => Some(fp::RP),
            _ => None,
        })
    }

    pub fn unsupported(&self) -> String {
        self.err("not supported by the emulator")
    }
}

/// The function for one PTX instruction spelled `opcode` with its modifiers and types joined by dots, as in the
/// PTX text without the operands: `"add.s64"`, `"fma.rn.ftz.f32"`, `"cvt.rn.bf16.f32"`, `"setp.lt.u32"` (a
/// comparison gives 0 or 1; `setp`'s boolean combination is the lowering's), `"mul.wide.s32"`, `"mad.lo.cc.u32"`,
/// `"bfi.b32"` (four sources), `"and.pred"`, `"ex2.approx.ftz.f32"`. Sources arrive zero-extended from their
/// register width; the result is masked to the destination's width. Returns the counter class with it, or a
/// message naming what is not supported.
pub fn resolve(spec: &str) -> Result<(AluFn, Class), String> {
    let s = Spec::parse(spec);
    let float = s.tys.iter().any(|t| t.is_float());
    let f = match s.op {
        "setp" => cmp::resolve(&s)?,
        "testp" => cmp::resolve_testp(&s)?,
        "cvt" => cvt::resolve(&s)?,
        "and" | "or" | "xor" | "not" | "cnot" | "shl" | "shr" | "popc" | "clz" | "brev" | "bfind" | "bfe" | "bfi"
        | "prmt" | "lop3" => bits::resolve(&s)?,
        "ex2" | "lg2" | "sin" | "cos" | "tanh" | "rsqrt" => return Ok((special::resolve(&s)?, Class::SpecialFn)),
        "rcp" | "sqrt" | "div" if s.has("approx") || s.has("full") => {
            return Ok((special::resolve(&s)?, Class::SpecialFn));
        }
        _ if matches!(s.tys[..], [Ty::F16x2 | Ty::Bf16x2]) => half::resolve(&s)?,
        _ if float => float::resolve(&s)?,
        _ => int::resolve(&s)?,
    };
    Ok((f, Class::Arith))
}

#[cfg(test)]
mod tests;
