//! Provenance: which `.shared` variable or pointer parameter each memory instruction's address comes from, where
//! the PTX shows a single one. An access through such an address must stay inside that variable (not overrun into
//! the next `.shared` array) or that parameter's allocation (not walk into another tensor); `exec::place` checks
//! it.
//!
//! The analysis is flow-insensitive: a register's origins are those of every instruction that writes it, joined
//! over the whole kernel, through moves, integer arithmetic, `selp` and `cvta` (a 64-bit `ld.param` of a pointer
//! parameter starts one). A register two origins reach, or none, leaves its accesses unchecked, so the check
//! never fires on code it cannot follow.

use crate::ir::{Inst, Op, Operand, Origin, Reg, Space, Ty};
use std::cell::RefCell;

/// What the lowering of each instruction saw: a variable's address as a source operand, or as the address.
#[derive(Default)]
pub struct Notes {
    current: RefCell<(Option<Origin>, Option<Origin>)>,
    /// `(pc, origin)`: instruction `pc` reads the address of `origin` as a source.
    sources: RefCell<Vec<(u32, Origin)>>,
    /// `(pc, origin)`: instruction `pc` accesses memory at `origin` (plus a constant).
    addresses: RefCell<Vec<(u32, Origin)>>,
}

impl Notes {
    pub fn note_source(&self, o: Origin) {
        self.current.borrow_mut().0 = Some(o);
    }

    pub fn note_address(&self, o: Origin) {
        self.current.borrow_mut().1 = Some(o);
    }

    /// The instruction being lowered is `pc`: files what it noted.
    pub fn finish(&self, pc: u32) {
        let (source, address) = std::mem::take(&mut *self.current.borrow_mut());
        if let Some(o) = source {
            self.sources.borrow_mut().push((pc, o));
        }
        if let Some(o) = address {
            self.addresses.borrow_mut().push((pc, o));
        }
    }
}

/// A register's origins, joined.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Nothing,
    One(Origin),
    Several,
}

impl Tag {
    fn join(self, other: Tag) -> Tag {
        match (self, other) {
            (Tag::Nothing, t) | (t, Tag::Nothing) => t,
            (Tag::One(a), Tag::One(b)) if a == b => Tag::One(a),
            _ => Tag::Several,
        }
    }
}

/// `origins[pc]` for a kernel's instructions (`ir::Function::origins`).
pub fn origins(insts: &[Inst], nregs: usize, notes: &Notes) -> Vec<Option<Origin>> {
    let mut tags = vec![Tag::Nothing; nregs];
    let addresses = notes.addresses.borrow();
    let address_of = |pc: usize| addresses.iter().find(|(p, _)| *p as usize == pc).map(|(_, o)| *o);
    for &(pc, o) in notes.sources.borrow().iter() {
        if let Some(dst) = flow(&insts[pc as usize]).map(|(dst, _)| dst) {
            tags[dst as usize] = tags[dst as usize].join(Tag::One(o));
        }
    }
    for &(pc, o) in addresses.iter() {
        if let (Op::Ld { space: Space::Param, ty, dsts, .. }, Origin::Param(_)) = (&insts[pc as usize].op, o)
            && ty.bytes() == 8
            && let [Some(dst)] = dsts[..]
        {
            tags[dst as usize] = tags[dst as usize].join(Tag::One(o));
        }
    }
    // Every round either changes a tag (each can change at most twice) or ends.
    loop {
        let mut changed = false;
        for inst in insts {
            let Some((dst, srcs)) = flow(inst) else { continue };
            let joined = srcs.iter().fold(tags[dst as usize], |t, &r| t.join(tags[r as usize]));
            if joined != tags[dst as usize] {
                tags[dst as usize] = joined;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut out: Vec<Option<Origin>> = insts
        .iter()
        .enumerate()
        .map(|(pc, inst)| {
            let (space, addr) = match &inst.op {
                Op::Ld { space, addr, .. } | Op::St { space, addr, .. } | Op::Atom { space, addr, .. } => {
                    (*space, addr)
                }
                Op::Ldmatrix { addr, .. } => (Space::Shared, addr),
                // The source: the destination's bounds are checked against the block's shared memory.
                Op::CpAsync { src, .. } => (Space::Global, src),
                _ => return None,
            };
            if space == Space::Param {
                return None;
            }
            if let Some(o) = address_of(pc) {
                return Some(o);
            }
            match addr.base {
                crate::ir::AddrBase::Reg(r) => match tags[r as usize] {
                    Tag::One(o) => Some(o),
                    _ => None,
                },
                _ => None,
            }
        })
        .collect();
    while out.last() == Some(&None) {
        out.pop();
    }
    out
}

/// The register an instruction writes from values that may carry an address, and the registers it reads them from.
fn flow(inst: &Inst) -> Option<(Reg, Vec<Reg>)> {
    let regs =
        |ops: &[&Operand]| ops.iter().filter_map(|o| if let Operand::Reg(r) = o { Some(*r) } else { None }).collect();
    match &inst.op {
        Op::Mov { dst, src } => Some((*dst, regs(&[src]))),
        Op::Alu { dst, srcs, nsrc, name, .. } if is_integer(name) => {
            Some((*dst, regs(&srcs[..*nsrc as usize].iter().collect::<Vec<_>>())))
        }
        Op::Selp { dst, a, b, .. } => Some((*dst, regs(&[a, b]))),
        Op::Cvta { dst, src, .. } => Some((*dst, regs(&[src]))),
        _ => None,
    }
}

/// Whether an arithmetic opcode (`add.s64`, `cvt.rn.f32.s32`) names no floating-point type.
fn is_integer(opcode: &str) -> bool {
    !opcode
        .split('.')
        .filter_map(super::value::ty)
        .any(|t| matches!(t, Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2 | Ty::F32 | Ty::F64))
}
