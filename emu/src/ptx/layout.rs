//! Per kernel: which functions it links (itself first, then every `.func` it reaches, each once), where each one's
//! instructions start, and where every symbol lives: shared offsets (static variables in declaration order, then
//! the dynamic area), local offsets (`.local` variables, then the parameter and return slots of the callees) and
//! kernel parameter offsets.

use super::Error;
use super::ast::{Func, Module, Operand, Stmt};
use crate::ir::{Param, Space};
use std::collections::HashMap;

/// What a name in an address or operand stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symbol {
    /// A kernel parameter: its offset in the parameter buffer.
    KernelParam(u32),
    /// A `.local` variable: its offset in local memory.
    Local(u32),
    /// A `.param` slot of a callee (parameter or return value), in local memory: offset and size.
    Slot(u32, u32),
    /// A `.shared` variable: its offset and size (`None`: `.extern`, the dynamic shared memory).
    Shared(u32, Option<u32>),
    /// `globals[i]`, in its space (`.global` or `.const`).
    Global(u32, Space),
}

/// A linked function's place in the kernel.
pub struct Linked<'m> {
    pub func: &'m Func,
    /// Index of its first instruction in the kernel's list.
    pub base: u32,
    /// Its own symbols: parameters, return slots, `.local` and function-scope `.shared` variables.
    pub symbols: HashMap<String, Symbol>,
    /// Local offsets and sizes of its parameter and return slots (callees only).
    pub param_slots: Vec<(u32, u32)>,
    pub ret_slots: Vec<(u32, u32)>,
}

pub struct Layout<'m> {
    /// The kernel first, then its callees.
    pub funcs: Vec<Linked<'m>>,
    /// Module-scope symbols: `.shared` (the `.extern` ones at the dynamic offset), `.global` and `.const`.
    pub module_symbols: HashMap<String, Symbol>,
    pub params: Vec<Param>,
    pub param_bytes: u32,
    pub static_shared: u32,
    pub dynamic_shared_offset: u32,
    pub local_bytes: u32,
}

impl Layout<'_> {
    pub fn linked(&self, name: &str) -> Option<&Linked<'_>> {
        self.funcs.iter().find(|l| l.func.name == name)
    }
}

fn align_up(x: u64, align: u32) -> u64 {
    x.next_multiple_of(align as u64)
}

pub fn is_call(opcode: &str) -> bool {
    opcode == "call" || opcode.starts_with("call.")
}

/// The instructions of a body, in order.
pub fn insts(body: &[Stmt]) -> impl Iterator<Item = &super::ast::Inst> {
    body.iter().filter_map(|s| if let Stmt::Inst(i) = s { Some(i) } else { None })
}

/// The function a `call` names.
pub fn callee(inst: &super::ast::Inst) -> Option<&str> {
    inst.operands.iter().find_map(|o| if let Operand::Name(n) = o { Some(n.as_str()) } else { None })
}

fn body(func: &Func) -> Result<&[Stmt], Error> {
    func.body.as_deref().ok_or_else(|| Error::new(func.line, format!("`{}` is declared but never defined", func.name)))
}

/// Depth-first from the kernel: each function once, in the order first reached; a cycle is an error.
fn call_order<'m>(module: &'m Module, kernel: &'m Func) -> Result<Vec<&'m Func>, Error> {
    fn visit<'m>(
        module: &'m Module,
        func: &'m Func,
        stack: &mut Vec<&'m str>,
        order: &mut Vec<&'m Func>,
    ) -> Result<(), Error> {
        order.push(func);
        stack.push(&func.name);
        for inst in insts(body(func)?).filter(|i| is_call(&i.opcode)) {
            let name = callee(inst).ok_or_else(|| Error::new(inst.line, "call without a function name"))?;
            if stack.contains(&name) {
                return Err(Error::new(inst.line, format!("recursive call of `{name}`")));
            }
            let target = module
                .funcs
                .iter()
                .find(|f| f.name == name && !f.entry)
                .ok_or_else(|| Error::new(inst.line, format!("call of unknown function `{name}`")))?;
            if !order.iter().any(|f| f.name == name) {
                visit(module, target, stack, order)?;
            }
        }
        stack.pop();
        Ok(())
    }
    let mut order = Vec::new();
    visit(module, kernel, &mut Vec::new(), &mut order)?;
    Ok(order)
}

/// Every name used as an operand or address base in a body.
fn names_used(body: &[Stmt]) -> Vec<&str> {
    fn operand<'a>(o: &'a Operand, out: &mut Vec<&'a str>) {
        match o {
            Operand::Name(n) => out.push(n),
            Operand::Addr { base: Some(n), .. } => out.push(n),
            Operand::Vector(v) => v.iter().for_each(|e| operand(e, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    insts(body).for_each(|i| i.operands.iter().for_each(|o| operand(o, &mut out)));
    out
}

pub fn layout<'m>(module: &'m Module, kernel: &'m Func) -> Result<Layout<'m>, Error> {
    let order = call_order(module, kernel)?;

    let mut params = Vec::new();
    let mut param_bytes = 0u64;
    for p in &kernel.params {
        let offset = align_up(param_bytes, p.align);
        params.push(Param { name: p.name.clone(), offset: offset as u32, size: p.size, align: p.align });
        param_bytes = offset + p.size as u64;
    }

    // Shared: the module-scope variables the linked functions name and their own demoted ones, by declaration.
    let used: Vec<&str> = order.iter().map(|f| body(f).map(names_used)).collect::<Result<Vec<_>, _>>()?.concat();
    let mut statics: Vec<(&str, u32, u64, u32, Option<usize>)> = Vec::new();
    for v in module.vars.iter().filter(|v| v.space == Space::Shared && !v.external) {
        if used.contains(&v.name.as_str()) {
            statics.push((&v.name, v.align, v.size, v.line, None));
        }
    }
    for (i, f) in order.iter().enumerate() {
        for s in body(f)? {
            if let Stmt::Var(v) = s
                && v.space == Space::Shared
            {
                statics.push((&v.name, v.align, v.size, v.line, Some(i)));
            }
        }
    }
    statics.sort_by_key(|s| s.3);
    let mut module_symbols = HashMap::new();
    let mut func_symbols: Vec<HashMap<String, Symbol>> = vec![HashMap::new(); order.len()];
    let mut shared = 0u64;
    for (name, align, size, _, owner) in statics {
        let offset = align_up(shared, align);
        shared = offset + size;
        let symbols = match owner {
            Some(i) => &mut func_symbols[i],
            None => &mut module_symbols,
        };
        symbols.insert(name.to_owned(), Symbol::Shared(offset as u32, u32::try_from(size).ok()));
    }
    let externs = module.vars.iter().filter(|v| v.space == Space::Shared && v.external);
    let dynamic_align = externs.clone().map(|v| v.align).fold(16, u32::max);
    let dynamic_shared_offset = align_up(shared, dynamic_align);
    for v in externs {
        module_symbols.insert(v.name.clone(), Symbol::Shared(dynamic_shared_offset as u32, None));
    }
    let globals = module.vars.iter().filter(|v| matches!(v.space, Space::Global | Space::Const));
    for (i, v) in globals.enumerate() {
        module_symbols.insert(v.name.clone(), Symbol::Global(i as u32, v.space));
    }

    // Local: every linked function's `.local` variables, then the callees' parameter and return slots.
    let mut local = 0u64;
    for (i, f) in order.iter().enumerate() {
        for s in body(f)? {
            if let Stmt::Var(v) = s
                && v.space == Space::Local
            {
                let offset = align_up(local, v.align);
                local = offset + v.size;
                func_symbols[i].insert(v.name.clone(), Symbol::Local(offset as u32));
            }
        }
    }
    let mut funcs = Vec::new();
    let mut base = 0u32;
    for (f, mut symbols) in order.into_iter().zip(func_symbols) {
        let mut slots = |decls: &[super::ast::ParamDecl], symbols: &mut HashMap<String, Symbol>| {
            let mut out = Vec::new();
            for p in decls {
                let offset = align_up(local, p.align);
                local = offset + p.size as u64;
                out.push((offset as u32, p.size));
                symbols.insert(p.name.clone(), Symbol::Slot(offset as u32, p.size));
            }
            out
        };
        let (param_slots, ret_slots) = if f.entry {
            for p in &params {
                symbols.insert(p.name.clone(), Symbol::KernelParam(p.offset));
            }
            (Vec::new(), Vec::new())
        } else {
            (slots(&f.params, &mut symbols), slots(&f.rets, &mut symbols))
        };
        funcs.push(Linked { func: f, base, symbols, param_slots, ret_slots });
        base += insts(body(f)?).count() as u32;
    }

    let fits = |x: u64, what: &str| {
        u32::try_from(x).map_err(|_| Error::new(kernel.line, format!("{what} of `{}` exceeds 4 GiB", kernel.name)))
    };
    Ok(Layout {
        funcs,
        module_symbols,
        params,
        param_bytes: fits(param_bytes, "the parameters")?,
        static_shared: fits(shared, "the shared memory")?,
        dynamic_shared_offset: fits(dynamic_shared_offset, "the shared memory")?,
        local_bytes: fits(local, "the local memory")?,
    })
}
