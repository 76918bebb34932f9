//! Per-lane semantics of PTX's arithmetic, logic, comparison and conversion instructions, as the PTX ISA
//! defines them. `resolve` is called once per instruction at module load and picks a monomorphic function; the
//! executor calls that function for every active lane.

use crate::ir::{AluFn, Class};

/// The function for one PTX instruction spelled `opcode` with its modifiers and types joined by dots, as in the
/// PTX text without the operands: `"add.s64"`, `"fma.rn.ftz.f32"`, `"cvt.rn.bf16.f32"`, `"setp.lt.u32"` (a
/// comparison gives 0 or 1; `setp`'s boolean combination is the lowering's), `"mul.wide.s32"`, `"mad.lo.cc.u32"`,
/// `"bfi.b32"` (four sources), `"and.pred"`, `"ex2.approx.ftz.f32"`. Sources arrive zero-extended from their
/// register width; the result is masked to the destination's width. Returns the counter class with it, or a
/// message naming what is not supported.
pub fn resolve(spec: &str) -> Result<(AluFn, Class), String> {
    Err(format!("{spec}: not supported by the emulator"))
}
