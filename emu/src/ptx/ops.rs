//! One PTX instruction to one `ir::Inst`. Data movement, memory, control and warp-level instructions are lowered
//! here to their own `ir::Op`; everything else is arithmetic and goes through the resolver (`alu::resolve`) as its
//! opcode spelling. Every modifier is checked: one this file does not know is an error.

use super::ast::{Inst, Operand};
use super::lower::FuncLowering;
use super::{Error, intern, value};
use crate::ir::{self, AtomOp, BoolOp, Class, Op, Reg, ShflMode, Space, Ty, VoteMode};

fn space_of(part: &str) -> Option<Space> {
    Some(match part {
        "global" => Space::Global,
        "shared" | "shared::cta" => Space::Shared,
        "local" => Space::Local,
        "param" => Space::Param,
        "const" => Space::Const,
        _ => return None,
    })
}

/// The unsigned type of `bits` width, for packed elements.
fn bits_ty(bits: u32) -> Option<Ty> {
    Some(match bits {
        1 => Ty::Pred,
        8 => Ty::B8,
        16 => Ty::B16,
        32 => Ty::B32,
        64 => Ty::B64,
        _ => return None,
    })
}

/// The source operand types of an arithmetic instruction: mostly its (last) type, but shift amounts, bit-field
/// positions and the like are `.u32`, and `mad.wide`'s addend is twice as wide.
fn alu_src_tys(parts: &[&str], n: usize) -> Option<Vec<Ty>> {
    let tys: Vec<Ty> = parts.iter().filter_map(|p| value::ty(p)).collect();
    let t = *tys.last()?;
    let mut out = match parts[0] {
        "shl" | "shr" => vec![t, Ty::U32],
        "bfe" => vec![t, Ty::U32, Ty::U32],
        "bfi" => vec![t, t, Ty::U32, Ty::U32],
        "shf" => vec![Ty::B32, Ty::B32, Ty::U32],
        "mad" if parts.contains(&"wide") => vec![t, t, value::wide(t)?],
        "dp4a" | "dp2a" if tys.len() == 2 => {
            let sum = if tys.iter().any(|t| t.is_signed()) { Ty::S32 } else { Ty::U32 };
            vec![tys[0], tys[1], sum]
        }
        _ => vec![t; n],
    };
    out.truncate(n);
    (out.len() == n).then_some(out)
}

impl FuncLowering<'_, '_> {
    pub fn inst(&self, inst: &Inst) -> Result<ir::Inst, Error> {
        let line = inst.line;
        let guard = match &inst.guard {
            Some((p, negate)) => Some((self.reg(p, line)?, *negate)),
            None => None,
        };
        let parts: Vec<&str> = inst.opcode.split('.').collect();
        let ops = inst.operands.as_slice();
        let (op, class) = match parts[0] {
            "mov" => (self.mov(&parts, ops, line)?, Class::Arith),
            "selp" => (self.selp(&parts, ops, line)?, Class::Arith),
            "setp" => (self.setp(&parts, ops, line)?, Class::Arith),
            "cvta" => (self.cvta(&parts, ops, line)?, Class::Arith),
            "ld" | "st" => (self.ld_st(&parts, ops, line)?, Class::Memory),
            "atom" | "red" => (self.atom(&parts, ops, line)?, Class::Memory),
            "bra" => (self.bra(&parts, ops, line)?, Class::Control),
            "bar" if parts.get(1) == Some(&"warp") => (self.warp_sync(&parts, ops, line)?, Class::Collective),
            "bar" | "barrier" => (self.bar(&parts, ops, line)?, Class::Control),
            "shfl" => (self.shfl(&parts, ops, line)?, Class::Collective),
            "vote" => (self.vote(&parts, ops, line)?, Class::Collective),
            "match" => (self.match_(&parts, ops, line)?, Class::Collective),
            "mma" => (self.mma(&parts, ops, line)?, Class::Tensor),
            "ldmatrix" => (self.ldmatrix(&parts, ops, line)?, Class::Memory),
            "cp" => (self.cp_async(&parts, ops, line)?, Class::Memory),
            "call" => (self.call(&parts, ops, line)?, Class::Control),
            "ret" | "exit" => (self.ret_exit(&parts, ops, line)?, Class::Control),
            "membar" | "fence" => (self.fence(&parts, ops, line)?, Class::Control),
            _ => self.alu(inst, &parts)?,
        };
        Ok(ir::Inst { op, guard, class, line })
    }

    fn alu(&self, inst: &Inst, parts: &[&str]) -> Result<(Op, Class), Error> {
        let line = inst.line;
        let (f, class) = (self.resolve)(&inst.opcode).map_err(|m| Error::new(line, m))?;
        let [dst, srcs @ ..] = inst.operands.as_slice() else {
            return Err(Error::new(line, format!("`{}` without operands", inst.opcode)));
        };
        if srcs.is_empty() || srcs.len() > 4 {
            return Err(Error::new(line, format!("`{}` with {} sources", inst.opcode, srcs.len())));
        }
        let tys = alu_src_tys(parts, srcs.len())
            .ok_or_else(|| Error::new(line, format!("cannot tell the operand types of `{}`", inst.opcode)))?;
        let mut ops = [ir::Operand::Imm(0); 4];
        for (i, (s, t)) in srcs.iter().zip(tys).enumerate() {
            ops[i] = self.src(s, t, line)?;
        }
        let dst = self.dst(dst, line)?;
        Ok((Op::Alu { f, dst, srcs: ops, nsrc: srcs.len() as u8, name: intern(&inst.opcode) }, class))
    }

    fn mov(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        let [_, t] = parts else { return Err(bad_modifiers(parts, line)) };
        let ty = value::ty(t).ok_or_else(|| bad_modifiers(parts, line))?;
        let [dst, src] = ops else { return Err(operand_count(parts, 2, line)) };
        let elem = |n: usize| {
            let bits = ty.bits() / n as u32;
            match bits_ty(bits) {
                Some(t) if n >= 2 && bits * n as u32 == ty.bits() => Ok((bits, t)),
                _ => Err(Error::new(line, format!("cannot split a .{t} into {n} parts"))),
            }
        };
        match (dst, src) {
            (Operand::Vector(dsts), _) => {
                let (elem_bits, _) = elem(dsts.len())?;
                let dsts = dsts.iter().map(|d| self.dst_or_sink(d, line)).collect::<Result<_, _>>()?;
                Ok(Op::Unpack { dsts, src: self.src(src, ty, line)?, elem_bits })
            }
            (_, Operand::Vector(srcs)) => {
                let (elem_bits, et) = elem(srcs.len())?;
                let srcs = srcs.iter().map(|s| self.src(s, et, line)).collect::<Result<_, _>>()?;
                Ok(Op::Pack { dst: self.dst(dst, line)?, srcs, elem_bits })
            }
            _ => Ok(Op::Mov { dst: self.dst(dst, line)?, src: self.src(src, ty, line)? }),
        }
    }

    fn selp(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        let [_, t] = parts else { return Err(bad_modifiers(parts, line)) };
        let ty = value::ty(t).ok_or_else(|| bad_modifiers(parts, line))?;
        let [d, a, b, p] = ops else { return Err(operand_count(parts, 4, line)) };
        Ok(Op::Selp {
            dst: self.dst(d, line)?,
            a: self.src(a, ty, line)?,
            b: self.src(b, ty, line)?,
            pred: self.src(p, Ty::Pred, line)?,
        })
    }

    /// `setp.cmp[.bool][.ftz].ty`: the comparison goes to the resolver without the boolean combination.
    fn setp(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        let (cmp_parts, combine) = match parts {
            [_, cmp, b @ ("and" | "or" | "xor"), rest @ ..] => {
                let op = match *b {
                    "and" => BoolOp::And,
                    "or" => BoolOp::Or,
                    _ => BoolOp::Xor,
                };
                ([&["setp", cmp][..], rest].concat(), Some(op))
            }
            _ => (parts.to_vec(), None),
        };
        let ty = cmp_parts.last().and_then(|t| value::ty(t)).ok_or_else(|| bad_modifiers(parts, line))?;
        let spec = cmp_parts.join(".");
        let (cmp, _) = (self.resolve)(&spec).map_err(|m| Error::new(line, m))?;
        let (dst, a, b, c) = match (ops, combine) {
            ([d, a, b], None) => (d, a, b, None),
            ([d, a, b, c], Some(op)) => (d, a, b, Some((op, c))),
            _ => return Err(operand_count(parts, if combine.is_some() { 4 } else { 3 }, line)),
        };
        let (dst, dst_not) = match dst {
            Operand::Pair(p, q) => (self.reg(p, line)?, Some(self.reg(q, line)?)),
            d => (self.dst(d, line)?, None),
        };
        let combine = match c {
            Some((op, c)) => Some((op, self.src(c, Ty::Pred, line)?)),
            None => None,
        };
        Ok(Op::Setp { cmp, dst, dst_not, a: self.src(a, ty, line)?, b: self.src(b, ty, line)?, combine })
    }

    fn cvta(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        let (to_generic, space, t) = match parts {
            [_, "to", s, t] => (false, s, t),
            [_, s, t] => (true, s, t),
            _ => return Err(bad_modifiers(parts, line)),
        };
        let space = space_of(space).ok_or_else(|| bad_modifiers(parts, line))?;
        let ty = match *t {
            "u32" => Ty::U32,
            "u64" => Ty::U64,
            _ => return Err(bad_modifiers(parts, line)),
        };
        let [d, a] = ops else { return Err(operand_count(parts, 2, line)) };
        Ok(Op::Cvta { dst: self.dst(d, line)?, src: self.src(a, ty, line)?, space, to_generic, bits: ty.bits() })
    }

    /// `ld[.space][.qualifiers][.vN].ty` and `st...`: cache and ordering qualifiers change nothing here.
    fn ld_st(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        let load = parts[0] == "ld";
        let (t, mods) = parts[1..].split_last().ok_or_else(|| bad_modifiers(parts, line))?;
        let ty = value::ty(t).filter(|t| *t != Ty::Pred).ok_or_else(|| bad_modifiers(parts, line))?;
        let mut space = None;
        let mut count = 1;
        for m in mods {
            match *m {
                "v2" | "v4" if count == 1 => count = if *m == "v2" { 2 } else { 4 },
                "nc" if load => {}
                "ca" | "cg" | "cs" | "lu" | "cv" if load => {}
                "wb" | "cg" | "cs" | "wt" if !load => {}
                "volatile" | "weak" | "relaxed" | "acquire" | "release" | "cta" | "gpu" | "sys" => {}
                "L1::no_allocate"
                | "L1::evict_last"
                | "L1::evict_first"
                | "L1::evict_normal"
                | "L1::evict_unchanged" => {}
                "L2::64B" | "L2::128B" | "L2::256B" | "L2::evict_last" | "L2::evict_first" | "L2::evict_normal" => {}
                s if space.is_none() && space_of(s).is_some() => space = space_of(s),
                _ => return Err(Error::new(line, format!("unsupported modifier `.{m}` of `{}`", parts.join(".")))),
            }
        }
        if parts.contains(&"nc") && space != Some(Space::Global) {
            return Err(Error::new(line, "`.nc` is only for global loads"));
        }
        let space = space.unwrap_or(Space::Generic);
        let [a, b] = ops else { return Err(operand_count(parts, 2, line)) };
        let (value, address) = if load { (a, b) } else { (b, a) };
        let elems = match value {
            Operand::Vector(v) if v.len() == count && count > 1 => v.as_slice(),
            v if count == 1 && !matches!(v, Operand::Vector(_)) => std::slice::from_ref(v),
            _ => return Err(Error::new(line, format!("expected {count} values for `{}`", parts.join(".")))),
        };
        let (addr, space) = self.addr(address, space, line)?;
        if load {
            let dsts: Vec<Option<Reg>> = elems.iter().map(|d| self.dst_or_sink(d, line)).collect::<Result<_, _>>()?;
            let reg_bits = dsts.iter().flatten().map(|&r| self.reg_bits(r)).max().unwrap_or(ty.bits());
            Ok(Op::Ld { space, ty, dsts, addr, reg_bits })
        } else {
            let srcs = elems.iter().map(|s| self.src(s, ty, line)).collect::<Result<_, _>>()?;
            Ok(Op::St { space, ty, srcs, addr })
        }
    }

    /// `atom[.sem][.scope][.space].op.ty d, [a], b[, c]` and `red` (no `d`).
    fn atom(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        let is_atom = parts[0] == "atom";
        let (t, mods) = parts[1..].split_last().ok_or_else(|| bad_modifiers(parts, line))?;
        let ty = value::ty(t).filter(|t| *t != Ty::Pred).ok_or_else(|| bad_modifiers(parts, line))?;
        let mut space = None;
        let mut op = None;
        for m in mods {
            let atom_op = match *m {
                "add" => Some(AtomOp::Add),
                "min" => Some(AtomOp::Min),
                "max" => Some(AtomOp::Max),
                "inc" => Some(AtomOp::Inc),
                "dec" => Some(AtomOp::Dec),
                "exch" if is_atom => Some(AtomOp::Exch),
                "cas" if is_atom => Some(AtomOp::Cas),
                "and" => Some(AtomOp::And),
                "or" => Some(AtomOp::Or),
                "xor" => Some(AtomOp::Xor),
                _ => None,
            };
            match (*m, atom_op) {
                (_, Some(o)) if op.is_none() => op = Some(o),
                ("relaxed" | "acquire" | "release" | "acq_rel" | "cta" | "gpu" | "sys", _) => {}
                ("noftz", _) if ty == Ty::F16 || ty == Ty::F16x2 || ty == Ty::Bf16 || ty == Ty::Bf16x2 => {}
                (s, _) if space.is_none() && matches!(space_of(s), Some(Space::Global | Space::Shared)) => {
                    space = space_of(s)
                }
                _ => return Err(Error::new(line, format!("unsupported modifier `.{m}` of `{}`", parts.join(".")))),
            }
        }
        let op = op.ok_or_else(|| bad_modifiers(parts, line))?;
        let space = space.unwrap_or(Space::Generic);
        let (dst, rest) = match (is_atom, ops) {
            (true, [d, rest @ ..]) => (Some(self.dst(d, line)?), rest),
            (false, rest) => (None, rest),
            _ => return Err(operand_count(parts, 3, line)),
        };
        let (address, a, b) = match (op, rest) {
            (AtomOp::Cas, [address, a, b]) => (address, a, Some(b)),
            (AtomOp::Cas, _) => return Err(operand_count(parts, 4, line)),
            (_, [address, a]) => (address, a, None),
            _ => return Err(operand_count(parts, if is_atom { 3 } else { 2 }, line)),
        };
        let (addr, space) = self.addr(address, space, line)?;
        if space == Space::Param || space == Space::Local {
            return Err(Error::new(line, "atomics on parameters or local memory are not supported"));
        }
        let b = match b {
            Some(b) => Some(self.src(b, ty, line)?),
            None => None,
        };
        Ok(Op::Atom { space, op, ty, dst, addr, a: self.src(a, ty, line)?, b })
    }

    fn bra(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        if !matches!(parts, ["bra"] | ["bra", "uni"]) {
            return Err(bad_modifiers(parts, line));
        }
        let [Operand::Name(label)] = ops else { return Err(Error::new(line, "`bra` takes one label")) };
        let target = *self.labels.get(label).ok_or_else(|| Error::new(line, format!("unknown label `{label}`")))?;
        if target >= self.end {
            return Err(Error::new(line, format!("label `{label}` has no instruction after it")));
        }
        Ok(Op::Bra { target })
    }

    /// `bar.sync a[, b]`, `barrier.sync[.aligned] a[, b]`, `bar.arrive a, b`, `barrier.arrive[.aligned] a, b`.
    fn bar(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        // `bar` is `barrier ... .aligned`.
        let (wait, aligned) = match parts {
            ["bar", "sync"] | ["barrier", "sync", "aligned"] => (true, true),
            ["barrier", "sync"] => (true, false),
            ["bar", "arrive"] | ["barrier", "arrive", "aligned"] => (false, true),
            ["barrier", "arrive"] => (false, false),
            _ => return Err(bad_modifiers(parts, line)),
        };
        let (id, count) = match ops {
            [id] if wait => (id, None),
            [id, count] => (id, Some(self.src(count, Ty::U32, line)?)),
            _ => return Err(operand_count(parts, 2, line)),
        };
        Ok(Op::Bar { id: self.src(id, Ty::U32, line)?, count, wait, aligned })
    }

    fn warp_sync(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        if parts != ["bar", "warp", "sync"] {
            return Err(bad_modifiers(parts, line));
        }
        let [mask] = ops else { return Err(operand_count(parts, 1, line)) };
        Ok(Op::WarpSync { mask: self.src(mask, Ty::B32, line)? })
    }

    fn shfl(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        let mode = match parts {
            ["shfl", "sync", "up", "b32"] => ShflMode::Up,
            ["shfl", "sync", "down", "b32"] => ShflMode::Down,
            ["shfl", "sync", "bfly", "b32"] => ShflMode::Bfly,
            ["shfl", "sync", "idx", "b32"] => ShflMode::Idx,
            _ => return Err(bad_modifiers(parts, line)),
        };
        let [d, a, b, c, mask] = ops else { return Err(operand_count(parts, 5, line)) };
        let (dst, dst_pred) = self.dst_pair(d, line)?;
        Ok(Op::Shfl {
            mode,
            dst,
            dst_pred,
            a: self.src(a, Ty::B32, line)?,
            b: self.src(b, Ty::B32, line)?,
            c: self.src(c, Ty::B32, line)?,
            mask: self.src(mask, Ty::B32, line)?,
        })
    }

    fn vote(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        let mode = match parts {
            ["vote", "sync", "all", "pred"] => VoteMode::All,
            ["vote", "sync", "any", "pred"] => VoteMode::Any,
            ["vote", "sync", "uni", "pred"] => VoteMode::Uni,
            ["vote", "sync", "ballot", "b32"] => VoteMode::Ballot,
            _ => return Err(bad_modifiers(parts, line)),
        };
        let [d, p, mask] = ops else { return Err(operand_count(parts, 3, line)) };
        Ok(Op::Vote {
            mode,
            dst: self.dst(d, line)?,
            pred: self.src(p, Ty::Pred, line)?,
            mask: self.src(mask, Ty::B32, line)?,
        })
    }

    fn match_(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        let (all, ty) = match parts {
            ["match", m @ ("any" | "all"), "sync", t @ ("b32" | "b64")] => (*m == "all", value::ty(t)),
            _ => return Err(bad_modifiers(parts, line)),
        };
        let ty = ty.ok_or_else(|| bad_modifiers(parts, line))?;
        let [d, a, mask] = ops else { return Err(operand_count(parts, 3, line)) };
        let (dst, dst_pred) = if all { self.dst_pair(d, line)? } else { (self.dst(d, line)?, None) };
        Ok(Op::Match {
            all,
            bits: ty.bits(),
            dst,
            dst_pred,
            a: self.src(a, ty, line)?,
            mask: self.src(mask, Ty::B32, line)?,
        })
    }

    fn mma(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        let bf16 = match parts {
            ["mma", "sync", "aligned", "m16n8k16", "row", "col", "f32", "bf16", "bf16", "f32"] => true,
            ["mma", "sync", "aligned", "m16n8k16", "row", "col", "f32", "f16", "f16", "f32"] => false,
            _ => return Err(bad_modifiers(parts, line)),
        };
        let [Operand::Vector(d), Operand::Vector(a), Operand::Vector(b), Operand::Vector(c)] = ops else {
            return Err(Error::new(line, "`mma` takes four register vectors"));
        };
        let regs = |v: &[Operand]| v.iter().map(|r| self.dst(r, line)).collect::<Result<Vec<Reg>, _>>();
        let wrong = || Error::new(line, "`mma.m16n8k16` takes 4, 4, 2 and 4 registers");
        let c: Vec<ir::Operand> = c.iter().map(|s| self.src(s, Ty::F32, line)).collect::<Result<_, _>>()?;
        Ok(Op::Mma {
            bf16,
            d: regs(d)?.try_into().map_err(|_| wrong())?,
            a: regs(a)?.try_into().map_err(|_| wrong())?,
            b: regs(b)?.try_into().map_err(|_| wrong())?,
            c: c.try_into().map_err(|_| wrong())?,
        })
    }

    /// `ldmatrix.sync.aligned.m8n8.{x1,x2,x4}[.trans][.shared[::cta]].b16 d, [a]`.
    fn ldmatrix(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        let ["ldmatrix", "sync", "aligned", "m8n8", count, rest @ ..] = parts else {
            return Err(bad_modifiers(parts, line));
        };
        let n = match *count {
            "x1" => 1,
            "x2" => 2,
            "x4" => 4,
            _ => return Err(bad_modifiers(parts, line)),
        };
        let (trans, rest) = match rest {
            ["trans", rest @ ..] => (true, rest),
            _ => (false, rest),
        };
        let space = match rest {
            [s, "b16"] if space_of(s) == Some(Space::Shared) => Space::Shared,
            ["b16"] => Space::Generic,
            _ => return Err(bad_modifiers(parts, line)),
        };
        let [d, a] = ops else { return Err(operand_count(parts, 2, line)) };
        let dsts = match d {
            Operand::Vector(v) => v.iter().map(|r| self.dst(r, line)).collect::<Result<Vec<Reg>, _>>()?,
            d => vec![self.dst(d, line)?],
        };
        if dsts.len() != n {
            return Err(Error::new(line, format!("`{}` takes {n} destination registers", parts.join("."))));
        }
        let (addr, space) = self.addr(a, space, line)?;
        Ok(Op::Ldmatrix { dsts, addr, trans, generic: space == Space::Generic })
    }

    /// `cp.async.{ca,cg}.shared[::cta].global[.L2::{64,128,256}B] [d], [s], size[, src_size]`,
    /// `cp.async.commit_group`, `cp.async.wait_group n`, `cp.async.wait_all`.
    fn cp_async(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        match parts {
            ["cp", "async", "commit_group"] if ops.is_empty() => return Ok(Op::CpAsyncCommit),
            ["cp", "async", "wait_all"] if ops.is_empty() => return Ok(Op::CpAsyncWait { n: 0, all: true }),
            ["cp", "async", "wait_group"] => {
                let [n] = ops else { return Err(operand_count(parts, 1, line)) };
                let ir::Operand::Imm(n) = self.src(n, Ty::U32, line)? else {
                    return Err(Error::new(line, "`cp.async.wait_group` takes an immediate count"));
                };
                return Ok(Op::CpAsyncWait { n: n as u32, all: false });
            }
            ["cp", "async", "commit_group" | "wait_all"] => return Err(operand_count(parts, 0, line)),
            _ => {}
        }
        let ["cp", "async", level @ ("ca" | "cg"), dst_space, "global", prefetch @ ..] = parts else {
            return Err(bad_modifiers(parts, line));
        };
        if space_of(dst_space) != Some(Space::Shared) || !matches!(prefetch, [] | ["L2::64B" | "L2::128B" | "L2::256B"])
        {
            return Err(bad_modifiers(parts, line));
        }
        let (d, s, size, src_size) = match ops {
            [d, s, size] => (d, s, size, None),
            [d, s, size, n] => (d, s, size, Some(self.src(n, Ty::U32, line)?)),
            _ => return Err(operand_count(parts, 4, line)),
        };
        let size = match self.src(size, Ty::U32, line)? {
            ir::Operand::Imm(n @ (4 | 8 | 16)) => n as u32,
            _ => return Err(Error::new(line, "`cp.async` copies 4, 8 or 16 bytes (an immediate)")),
        };
        if *level == "cg" && size != 16 {
            return Err(Error::new(line, "`cp.async.cg` copies 16 bytes"));
        }
        let (src, _) = self.addr(s, Space::Global, line)?;
        let (dst, _) = self.addr(d, Space::Shared, line)?;
        Ok(Op::CpAsync { dst, src, size, src_size })
    }

    /// `call[.uni] [(rets),] f[, (args)]`: the parameters were bound to the callee's slots by their `.param`s.
    fn call(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        if !matches!(parts, ["call"] | ["call", "uni"]) {
            return Err(bad_modifiers(parts, line));
        }
        let name = ops
            .iter()
            .find_map(|o| if let Operand::Name(n) = o { Some(n) } else { None })
            .ok_or_else(|| Error::new(line, "call without a function name"))?;
        let callee = self.layout.linked(name).ok_or_else(|| Error::new(line, format!("unknown function `{name}`")))?;
        Ok(Op::Call { target: callee.base })
    }

    fn ret_exit(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        if !ops.is_empty() {
            return Err(operand_count(parts, 0, line));
        }
        match parts {
            ["ret"] | ["ret", "uni"] => Ok(Op::Ret),
            ["exit"] => Ok(Op::Exit),
            _ => Err(bad_modifiers(parts, line)),
        }
    }

    fn fence(&self, parts: &[&str], ops: &[Operand], line: u32) -> Result<Op, Error> {
        if !ops.is_empty() {
            return Err(operand_count(parts, 0, line));
        }
        match parts {
            ["membar", "cta" | "gl" | "sys"] => Ok(Op::Fence),
            ["fence", "sc" | "acq_rel", "cta" | "gpu" | "sys"] => Ok(Op::Fence),
            _ => Err(bad_modifiers(parts, line)),
        }
    }

    /// `d` or `d|p`.
    fn dst_pair(&self, op: &Operand, line: u32) -> Result<(Reg, Option<Reg>), Error> {
        match op {
            Operand::Pair(d, p) => Ok((self.reg(d, line)?, Some(self.reg(p, line)?))),
            d => Ok((self.dst(d, line)?, None)),
        }
    }
}

fn bad_modifiers(parts: &[&str], line: u32) -> Error {
    Error::new(line, format!("unsupported instruction `{}`", parts.join(".")))
}

fn operand_count(parts: &[&str], n: usize, line: u32) -> Error {
    Error::new(line, format!("`{}` expects {n} operands", parts.join(".")))
}
