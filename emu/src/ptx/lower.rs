//! The parsed module to `ir`: per kernel, its functions' bodies linked one after another, with register scopes,
//! labels, call-sequence parameters and symbols resolved. `ops` lowers each instruction.

use super::ast::{self, Operand, RegDecl, Stmt};
use super::layout::{self, Layout, Linked, Symbol};
use super::provenance::{self, Notes};
use super::{Error, Failure, Resolver, value};
use crate::ir::{self, AddrBase, Address, Origin, Reg, Space, Special, Ty};
use crate::memory::{LOCAL_WINDOW, SHARED_WINDOW};
use std::collections::HashMap;

pub fn lower(module: &ast::Module, resolve: Resolver<'_>) -> Result<ir::Module, Failure> {
    let globals = module
        .vars
        .iter()
        .filter(|v| matches!(v.space, Space::Global | Space::Const))
        .map(|v| ir::GlobalVar {
            name: v.name.clone(),
            space: v.space,
            bytes: v.size,
            align: v.align,
            init: v.init.clone(),
        })
        .collect();
    let mut kernels = Vec::new();
    for kernel in module.funcs.iter().filter(|f| f.entry) {
        kernels.push(lower_kernel(module, kernel, resolve)?);
    }
    Ok(ir::Module { version: module.version, target: module.target.clone(), kernels, globals })
}

fn lower_kernel(module: &ast::Module, kernel: &ast::Func, resolve: Resolver<'_>) -> Result<ir::Function, Failure> {
    let layout = layout::layout(module, kernel).map_err(|e| (e, Some(kernel.name.clone())))?;
    let mut regs = Registers::default();
    let mut insts = Vec::new();
    let notes = Notes::default();
    for linked in &layout.funcs {
        let mut f = FuncLowering::new(&layout, linked, resolve, &mut regs, &notes);
        f.body(&mut insts).map_err(|e| (e, Some(linked.func.name.clone())))?;
    }
    let origins = provenance::origins(&insts, regs.names.len(), &notes);
    let mut block_start = vec![false; insts.len()];
    for linked in &layout.funcs {
        if let Some(b) = block_start.get_mut(linked.base as usize) {
            *b = true;
        }
    }
    for inst in &insts {
        if let ir::Op::Bra { target } | ir::Op::Call { target } = inst.op {
            block_start[target as usize] = true;
        }
    }
    Ok(ir::Function {
        name: kernel.name.clone(),
        params: layout.params.clone(),
        param_bytes: layout.param_bytes,
        insts,
        block_start,
        nregs: regs.names.len() as u32,
        reg_names: regs.names,
        static_shared: layout.static_shared,
        dynamic_shared_offset: layout.dynamic_shared_offset,
        local_bytes: layout.local_bytes,
        origins,
        max_threads: kernel.max_threads,
        req_threads: kernel.req_threads,
    })
}

/// The kernel's register file: one slot per declared register of every linked function.
#[derive(Default)]
struct Registers {
    names: Vec<String>,
    /// Declared widths in bits.
    bits: Vec<u32>,
}

impl Registers {
    fn add(&mut self, name: String, bits: u32) -> Reg {
        self.names.push(name);
        self.bits.push(bits);
        self.names.len() as Reg - 1
    }
}

/// The names one `{ }` level declares.
#[derive(Default)]
struct Scope {
    regs: HashMap<String, Reg>,
    /// `%r<46>`: prefix to first register and count.
    ranges: HashMap<String, (Reg, u32)>,
    /// Call-sequence `.param`s.
    symbols: HashMap<String, Symbol>,
}

/// `%r12` as (`%r`, 12); `None` without a trailing number (or with a leading zero).
fn split_index(name: &str) -> Option<(&str, u32)> {
    let digits = name.len() - name.bytes().rev().take_while(u8::is_ascii_digit).count();
    let (prefix, index) = name.split_at(digits);
    if index.is_empty() || (index.len() > 1 && index.starts_with('0')) {
        return None;
    }
    Some((prefix, index.parse().ok()?))
}

fn special(name: &str) -> Option<Special> {
    let axis = |s: &str| match s {
        "x" => Some(0),
        "y" => Some(1),
        "z" => Some(2),
        _ => None,
    };
    if let Some((reg, a)) = name.split_once('.') {
        let a = axis(a)?;
        return Some(match reg {
            "%tid" => Special::Tid(a),
            "%ntid" => Special::Ntid(a),
            "%ctaid" => Special::Ctaid(a),
            "%nctaid" => Special::Nctaid(a),
            _ => return None,
        });
    }
    Some(match name {
        "%laneid" => Special::LaneId,
        "%warpid" => Special::WarpId,
        "%nwarpid" => Special::NWarpId,
        "%smid" => Special::SmId,
        "%nsmid" => Special::NSmId,
        "%gridid" => Special::GridId,
        "%lanemask_eq" => Special::LanemaskEq,
        "%lanemask_lt" => Special::LanemaskLt,
        "%lanemask_le" => Special::LanemaskLe,
        "%lanemask_gt" => Special::LanemaskGt,
        "%lanemask_ge" => Special::LanemaskGe,
        "%clock" => Special::Clock,
        "%clock64" => Special::Clock64,
        "%globaltimer" => Special::GlobalTimer,
        "%dynamic_smem_size" => Special::DynamicSmemSize,
        "%total_smem_size" => Special::TotalSmemSize,
        _ => return None,
    })
}

/// One linked function's lowering: its scopes, labels and call sequences.
pub struct FuncLowering<'a, 'm> {
    pub layout: &'a Layout<'m>,
    pub linked: &'a Linked<'m>,
    pub resolve: Resolver<'a>,
    regs: &'a mut Registers,
    scopes: Vec<Scope>,
    /// Label to instruction index in the kernel's list.
    pub labels: HashMap<String, u32>,
    /// One past the function's last instruction (a label there, such as `$L__func_end0`, cannot be branched to).
    pub end: u32,
    /// (block, name) of each call-sequence `.param` to the callee slot it stands for.
    call_params: HashMap<(usize, String), (u32, u32)>,
    /// Ids of the open `{ }` blocks, innermost last.
    blocks: Vec<usize>,
    /// The variables and parameters the instructions name (`provenance`).
    origins: &'a Notes,
}

impl<'a, 'm> FuncLowering<'a, 'm> {
    fn new(
        layout: &'a Layout<'m>,
        linked: &'a Linked<'m>,
        resolve: Resolver<'a>,
        regs: &'a mut Registers,
        origins: &'a Notes,
    ) -> Self {
        FuncLowering {
            layout,
            linked,
            resolve,
            regs,
            scopes: vec![Scope::default()],
            labels: HashMap::new(),
            end: 0,
            call_params: HashMap::new(),
            blocks: vec![0],
            origins,
        }
    }

    fn stmts(&self) -> &'m [Stmt] {
        self.linked.func.body.as_deref().unwrap_or(&[])
    }

    /// Labels to instruction indices, and the callee slot of every name a `call` passes, by enclosing block.
    fn prescan(&mut self) -> Result<(), Error> {
        let mut pc = self.linked.base;
        let mut blocks = vec![0];
        let mut next_block = 1;
        for s in self.stmts() {
            match s {
                Stmt::Open => {
                    blocks.push(next_block);
                    next_block += 1;
                }
                Stmt::Close => {
                    blocks.pop();
                }
                Stmt::Label { name, line } if self.labels.insert(name.clone(), pc).is_some() => {
                    return Err(Error::new(*line, format!("label `{name}` defined twice")));
                }
                Stmt::Inst(inst) => {
                    pc += 1;
                    if layout::is_call(&inst.opcode) {
                        self.prescan_call(inst, *blocks.last().unwrap_or(&0))?;
                    }
                }
                _ => {}
            }
        }
        self.end = pc;
        Ok(())
    }

    fn prescan_call(&mut self, inst: &ast::Inst, block: usize) -> Result<(), Error> {
        let callee = layout::callee(inst).unwrap_or_default();
        let target = self.layout.linked(callee).ok_or_else(|| Error::new(inst.line, "call of an unknown function"))?;
        let lists: Vec<&Vec<String>> =
            inst.operands.iter().filter_map(|o| if let Operand::List(l) = o { Some(l) } else { None }).collect();
        let (rets, args) = match (inst.operands.first(), lists.as_slice()) {
            (Some(Operand::List(_)), [r, a]) => (r.as_slice(), a.as_slice()),
            (Some(Operand::List(_)), [r]) => (r.as_slice(), &[][..]),
            (_, [a]) => (&[][..], a.as_slice()),
            (_, []) => (&[][..], &[][..]),
            _ => return Err(Error::new(inst.line, "malformed call")),
        };
        if rets.len() != target.ret_slots.len() || args.len() != target.param_slots.len() {
            return Err(Error::new(inst.line, format!("call of `{callee}` with the wrong number of parameters")));
        }
        for (name, slot) in rets.iter().zip(&target.ret_slots).chain(args.iter().zip(&target.param_slots)) {
            self.call_params.insert((block, name.clone()), *slot);
        }
        Ok(())
    }

    fn body(&mut self, out: &mut Vec<ir::Inst>) -> Result<(), Error> {
        self.prescan()?;
        let mut next_block = 1;
        for s in self.stmts() {
            match s {
                Stmt::Reg { bits, decls, line } => self.declare(*bits, decls, *line)?,
                Stmt::Var(_) | Stmt::Label { .. } => {}
                Stmt::Param(p) => {
                    let block = *self.blocks.last().unwrap_or(&0);
                    let (offset, size) = *self
                        .call_params
                        .get(&(block, p.name.clone()))
                        .ok_or_else(|| Error::new(p.line, format!("`.param {}` is not passed to a call", p.name)))?;
                    if size != p.size {
                        return Err(Error::new(p.line, format!("`{}` does not match the callee's parameter", p.name)));
                    }
                    self.scope().symbols.insert(p.name.clone(), Symbol::Slot(offset, size));
                }
                Stmt::Open => {
                    self.blocks.push(next_block);
                    next_block += 1;
                    self.scopes.push(Scope::default());
                }
                Stmt::Close => {
                    self.blocks.pop();
                    self.scopes.pop();
                }
                Stmt::Inst(inst) => {
                    let lowered = self.inst(inst)?;
                    self.origins.finish(out.len() as u32);
                    out.push(lowered);
                }
            }
        }
        Ok(())
    }

    fn scope(&mut self) -> &mut Scope {
        self.scopes.last_mut().expect("the function scope is never closed")
    }

    fn declare(&mut self, bits: u32, decls: &[RegDecl], line: u32) -> Result<(), Error> {
        for d in decls {
            match d {
                RegDecl::One(name) => {
                    let r = self.regs.add(name.clone(), bits);
                    if self.scope().regs.insert(name.clone(), r).is_some() {
                        return Err(Error::new(line, format!("register `{name}` declared twice")));
                    }
                }
                RegDecl::Range(prefix, n) => {
                    let first = self.regs.names.len() as Reg;
                    for i in 0..*n {
                        self.regs.add(format!("{prefix}{i}"), bits);
                    }
                    if self.scope().ranges.insert(prefix.clone(), (first, *n)).is_some() {
                        return Err(Error::new(line, format!("registers `{prefix}<..>` declared twice")));
                    }
                }
            }
        }
        Ok(())
    }

    fn lookup_reg(&self, name: &str) -> Option<Reg> {
        let split = split_index(name);
        for scope in self.scopes.iter().rev() {
            if let Some(r) = scope.regs.get(name) {
                return Some(*r);
            }
            if let Some((prefix, i)) = split
                && let Some((first, n)) = scope.ranges.get(prefix)
                && i < *n
            {
                return Some(first + i);
            }
        }
        None
    }

    fn lookup_symbol(&self, name: &str) -> Option<Symbol> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.symbols.get(name))
            .or_else(|| self.linked.symbols.get(name))
            .or_else(|| self.layout.module_symbols.get(name))
            .copied()
    }

    /// A declared register.
    /// The declared width of register `r`, in bits.
    pub fn reg_bits(&self, r: Reg) -> u32 {
        self.regs.bits[r as usize]
    }

    pub fn reg(&self, name: &str, line: u32) -> Result<Reg, Error> {
        self.lookup_reg(name).ok_or_else(|| Error::new(line, format!("`{name}` is not a declared register")))
    }

    /// A destination register operand.
    pub fn dst(&self, op: &Operand, line: u32) -> Result<Reg, Error> {
        match op {
            Operand::Name(n) => self.reg(n, line),
            _ => Err(Error::new(line, format!("expected a destination register, found {op:?}"))),
        }
    }

    /// A destination register or `_`.
    pub fn dst_or_sink(&self, op: &Operand, line: u32) -> Result<Option<Reg>, Error> {
        match op {
            Operand::Sink => Ok(None),
            _ => self.dst(op, line).map(Some),
        }
    }

    /// A source operand of type `ty`: a register, `!%p`, a literal, a special register or a symbol's address.
    pub fn src(&self, op: &Operand, ty: Ty, line: u32) -> Result<ir::Operand, Error> {
        match op {
            Operand::Name(n) => {
                if let Some(r) = self.lookup_reg(n) {
                    return Ok(ir::Operand::Reg(r));
                }
                if let Some(s) = special(n) {
                    return Ok(ir::Operand::Special(s));
                }
                match self.lookup_symbol(n) {
                    Some(Symbol::KernelParam(o) | Symbol::Local(o)) => Ok(ir::Operand::Imm(o as u64)),
                    Some(Symbol::Shared(o, bytes)) => {
                        self.origins.note_source(Origin::Shared { offset: o, bytes });
                        Ok(ir::Operand::Imm(o as u64))
                    }
                    Some(Symbol::Global(i, _)) => Ok(ir::Operand::GlobalAddr(i)),
                    Some(Symbol::Slot(..)) => Err(Error::new(line, format!("`{n}` can only be used by ld/st.param"))),
                    None => Err(Error::new(line, format!("unknown name `{n}`"))),
                }
            }
            Operand::Not(n) => Ok(ir::Operand::NotPred(self.reg(n, line)?)),
            Operand::Lit(lit) => value::bits(*lit, ty).map(ir::Operand::Imm).map_err(|m| Error::new(line, m)),
            _ => Err(Error::new(line, format!("unsupported source operand {op:?}"))),
        }
    }

    /// The address `[...]` of an access in `space`, and the space the access is made in (`.param` symbols of call
    /// sequences and callees live in local memory).
    pub fn addr(&self, op: &Operand, space: Space, line: u32) -> Result<(Address, Space), Error> {
        let Operand::Addr { base, offset } = op else {
            return Err(Error::new(line, format!("expected an address, found {op:?}")));
        };
        let offset = *offset;
        let Some(name) = base else { return Ok((Address { base: AddrBase::None, offset }, space)) };
        if let Some(r) = self.lookup_reg(name) {
            return Ok((Address { base: AddrBase::Reg(r), offset }, space));
        }
        let at = |o: u32, space| Ok((Address { base: AddrBase::None, offset: o as i64 + offset }, space));
        let symbol = self.lookup_symbol(name).ok_or_else(|| Error::new(line, format!("unknown name `{name}`")))?;
        match symbol {
            Symbol::Shared(o, bytes) => self.origins.note_address(Origin::Shared { offset: o, bytes }),
            Symbol::KernelParam(o) => self.origins.note_address(Origin::Param(o)),
            _ => {}
        }
        match (symbol, space) {
            (Symbol::KernelParam(o), Space::Param) => at(o, Space::Param),
            (Symbol::Slot(o, _), Space::Param) => at(o, Space::Local),
            (Symbol::Local(o), Space::Local) => at(o, Space::Local),
            (Symbol::Local(o), Space::Generic) => at(o, Space::Generic).map(|(a, s)| (windowed(a, LOCAL_WINDOW), s)),
            (Symbol::Shared(o, _), Space::Shared) => at(o, Space::Shared),
            (Symbol::Shared(o, _), Space::Generic) => {
                at(o, Space::Generic).map(|(a, s)| (windowed(a, SHARED_WINDOW), s))
            }
            (Symbol::Global(i, var), _) if var == space || space == Space::Generic => {
                Ok((Address { base: AddrBase::Global(i), offset }, space))
            }
            _ => Err(Error::new(line, format!("`{name}` is not in the {space:?} space"))),
        }
    }
}

fn windowed(a: Address, window: u64) -> Address {
    Address { offset: a.offset + window as i64, ..a }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_names_split_into_prefix_and_index() {
        assert_eq!(split_index("%r12"), Some(("%r", 12)));
        assert_eq!(split_index("%rd0"), Some(("%rd", 0)));
        assert_eq!(split_index("%r012"), None);
        assert_eq!(split_index("%SP"), None);
    }

    #[test]
    fn special_registers() {
        assert_eq!(special("%tid.y"), Some(Special::Tid(1)));
        assert_eq!(special("%nctaid.z"), Some(Special::Nctaid(2)));
        assert_eq!(special("%laneid"), Some(Special::LaneId));
        assert_eq!(special("%tid.w"), None);
        assert_eq!(special("%r1"), None);
    }
}
