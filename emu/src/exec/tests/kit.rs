//! Hand-assembled kernels for the executor's tests: a small builder of `ir::Function`s, the few per-lane
//! operations they use (written here, independent of `alu`), and a launcher over a fresh device memory.

use crate::exec::{Fault, Launch, Options, Stats, launch};
use crate::ir::{AddrBase, Address, AluFn, Class, Function, Inst, Module, Op, Operand, Param, Reg, Space, Special, Ty};
use crate::memory::DeviceMemory;

pub use Operand::{Imm, Reg as R};

pub fn add_u32(v: &[u64; 4], _: &mut bool) -> u64 {
    v[0].wrapping_add(v[1]) & 0xFFFF_FFFF
}
/// `mad.lo.u32`.
pub fn mad_u32(v: &[u64; 4], _: &mut bool) -> u64 {
    v[0].wrapping_mul(v[1]).wrapping_add(v[2]) & 0xFFFF_FFFF
}
/// `mad.wide.u32`: a 32 x 32-bit product plus a 64-bit addend.
pub fn mad_wide(v: &[u64; 4], _: &mut bool) -> u64 {
    (v[0] & 0xFFFF_FFFF).wrapping_mul(v[1] & 0xFFFF_FFFF).wrapping_add(v[2])
}
pub fn and_b32(v: &[u64; 4], _: &mut bool) -> u64 {
    v[0] & v[1]
}
pub fn ge_u32(v: &[u64; 4], _: &mut bool) -> u64 {
    (v[0] >= v[1]) as u64
}
pub fn eq_u32(v: &[u64; 4], _: &mut bool) -> u64 {
    (v[0] == v[1]) as u64
}

/// A kernel under construction.
pub struct Kernel {
    f: Function,
    next_reg: u32,
}

impl Kernel {
    /// A kernel whose parameters are `params` 8-byte values.
    pub fn new(name: &str, params: u32) -> Self {
        let params: Vec<Param> =
            (0..params).map(|i| Param { name: format!("p{i}"), offset: i * 8, size: 8, align: 8 }).collect();
        Kernel {
            f: Function {
                name: name.into(),
                param_bytes: params.len() as u32 * 8,
                params,
                insts: Vec::new(),
                block_start: Vec::new(),
                nregs: 0,
                reg_names: Vec::new(),
                static_shared: 0,
                dynamic_shared_offset: 0,
                local_bytes: 0,
                max_threads: None,
                req_threads: None,
                origins: Vec::new(),
            },
            next_reg: 0,
        }
    }

    pub fn reg(&mut self) -> Reg {
        self.next_reg += 1;
        self.f.reg_names.push(format!("%r{}", self.next_reg - 1));
        self.next_reg - 1
    }

    pub fn shared(&mut self, bytes: u32) {
        self.f.static_shared = bytes;
        self.f.dynamic_shared_offset = bytes.next_multiple_of(16);
    }

    /// The program counter of the next instruction.
    pub fn here(&self) -> u32 {
        self.f.insts.len() as u32
    }

    pub fn op(&mut self, op: Op) -> u32 {
        self.emit(op, None)
    }

    /// `@p op` (`@!p` when `negate`).
    pub fn when(&mut self, p: Reg, negate: bool, op: Op) -> u32 {
        self.emit(op, Some((p, negate)))
    }

    fn emit(&mut self, op: Op, guard: Option<(Reg, bool)>) -> u32 {
        let class = match &op {
            Op::Ld { .. } | Op::St { .. } | Op::Atom { .. } => Class::Memory,
            Op::Bra { .. } | Op::Bar { .. } | Op::Call { .. } | Op::Ret | Op::Exit => Class::Control,
            Op::Shfl { .. } | Op::Vote { .. } | Op::Match { .. } | Op::WarpSync { .. } => Class::Collective,
            Op::Mma { .. } => Class::Tensor,
            _ => Class::Arith,
        };
        let pc = self.here();
        self.f.insts.push(Inst { op, guard, class, line: pc + 1 });
        pc
    }

    /// Points the branch at `pc` to `target`.
    pub fn patch(&mut self, pc: u32, target: u32) {
        if let Op::Bra { target: t } | Op::Call { target: t } = &mut self.f.insts[pc as usize].op {
            *t = target;
        }
    }

    pub fn module(mut self) -> Module {
        self.f.nregs = self.next_reg;
        let mut starts = vec![false; self.f.insts.len()];
        starts[0] = true;
        for inst in &self.f.insts {
            if let Op::Bra { target } | Op::Call { target } = inst.op
                && let Some(s) = starts.get_mut(target as usize)
            {
                *s = true;
            }
        }
        self.f.block_start = starts;
        Module { version: (8, 0), target: "sm_80".into(), kernels: vec![self.f], globals: Vec::new() }
    }

    // Instruction shorthands.

    pub fn alu(&mut self, f: AluFn, dst: Reg, srcs: &[Operand]) -> u32 {
        let mut s = [Imm(0); 4];
        s[..srcs.len()].copy_from_slice(srcs);
        self.op(Op::Alu { f, dst, srcs: s, nsrc: srcs.len() as u8, name: "alu" })
    }

    pub fn mov(&mut self, dst: Reg, src: Operand) -> u32 {
        self.op(Op::Mov { dst, src })
    }

    pub fn setp(&mut self, cmp: AluFn, dst: Reg, a: Operand, b: Operand) -> u32 {
        self.op(Op::Setp { cmp, dst, dst_not: None, a, b, combine: None })
    }

    pub fn param(&mut self, dst: Reg, index: u32) -> u32 {
        self.ld(Space::Param, Ty::U64, dst, Address { base: AddrBase::None, offset: index as i64 * 8 })
    }

    pub fn ld(&mut self, space: Space, ty: Ty, dst: Reg, addr: Address) -> u32 {
        self.op(Op::Ld { space, ty, dsts: vec![Some(dst)], addr, reg_bits: 64 })
    }

    pub fn st(&mut self, space: Space, ty: Ty, addr: Address, src: Operand) -> u32 {
        self.op(Op::St { space, ty, srcs: vec![src], addr })
    }

    pub fn bra(&mut self, target: u32) -> u32 {
        self.op(Op::Bra { target })
    }

    pub fn bar(&mut self) -> u32 {
        self.op(Op::Bar { id: Imm(0), count: None, wait: true, aligned: true })
    }

    pub fn exit(&mut self) -> u32 {
        self.op(Op::Exit)
    }

    /// `%tid.x` into a new register.
    pub fn tid(&mut self) -> Reg {
        let r = self.reg();
        self.mov(r, Operand::Special(Special::Tid(0)));
        r
    }

    /// The global thread index `ctaid.x * ntid.x + tid.x` into a new register.
    pub fn global_index(&mut self) -> Reg {
        let (cta, ntid, tid, g) = (self.reg(), self.reg(), self.tid(), self.reg());
        self.mov(cta, Operand::Special(Special::Ctaid(0)));
        self.mov(ntid, Operand::Special(Special::Ntid(0)));
        self.alu(mad_u32, g, &[R(cta), R(ntid), R(tid)]);
        g
    }

    /// `param[index] + i * size` into a new register: the address of element `i` of a buffer parameter.
    pub fn element(&mut self, index: u32, i: Reg, size: u64) -> Reg {
        let (base, addr) = (self.reg(), self.reg());
        self.param(base, index);
        self.alu(mad_wide, addr, &[R(i), Imm(size), R(base)]);
        addr
    }
}

/// `[r + offset]`.
pub fn at(r: Reg, offset: i64) -> Address {
    Address { base: AddrBase::Reg(r), offset }
}

/// Options for tests: every check, two host threads.
pub fn options() -> Options {
    Options { threads: 2, ..Options::default() }
}

/// Device memory for a test, and helpers over it.
pub struct Device {
    pub memory: DeviceMemory,
}

impl Device {
    pub fn new() -> Self {
        Device { memory: DeviceMemory::new(1 << 30) }
    }

    /// An allocation of `bytes`, written with zeros when `zeroed`.
    pub fn alloc(&self, bytes: u64, zeroed: bool) -> u64 {
        let a = self.memory.alloc(bytes).unwrap();
        if zeroed {
            self.memory.write(a, &vec![0; bytes as usize]).unwrap();
        }
        a
    }

    pub fn read_u32(&self, addr: u64, n: usize) -> Vec<u32> {
        let mut bytes = vec![0u8; n * 4];
        self.memory.read(addr, &mut bytes).unwrap();
        bytes.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    /// Launches kernel 0 of `module` with 8-byte parameters `params`.
    pub fn launch(
        &self,
        module: &Module,
        grid: [u32; 3],
        block: [u32; 3],
        params: &[u64],
        options: &Options,
    ) -> Result<Stats, Fault> {
        self.launch_shared(module, grid, block, 0, params, options)
    }

    /// `launch` with `dynamic_shared` bytes of dynamic shared memory.
    pub fn launch_shared(
        &self,
        module: &Module,
        grid: [u32; 3],
        block: [u32; 3],
        dynamic_shared: u32,
        params: &[u64],
        options: &Options,
    ) -> Result<Stats, Fault> {
        let bytes: Vec<u8> = params.iter().flat_map(|v| v.to_le_bytes()).collect();
        let l = Launch { grid, block, dynamic_shared, params: &bytes };
        launch(module, 0, &self.globals(module), &l, &self.memory, options)
    }

    /// The module's variables, allocated and initialised as a module load does.
    pub fn globals(&self, module: &Module) -> Vec<u64> {
        module
            .globals
            .iter()
            .map(|g| {
                let at = self.alloc(g.bytes, true);
                self.memory.write(at, &g.init).unwrap();
                at
            })
            .collect()
    }
}

/// Runs `module` and expects a fault whose report contains every one of `texts`.
pub fn expect_fault(result: Result<Stats, Fault>, kind: crate::exec::FaultKind, texts: &[&str]) -> String {
    let fault = match result {
        Ok(_) => panic!("expected a {kind:?} fault, the kernel ran to completion"),
        Err(f) => f,
    };
    assert_eq!(fault.kind, kind, "{}", fault.report);
    for t in texts {
        assert!(fault.report.contains(t), "report lacks {t:?}:\n{}", fault.report);
    }
    fault.report
}

/// A module from the PTX text of its functions (the header added), through the loader and `alu`.
pub fn ptx(body: &str) -> Module {
    let text = format!(".version 8.0\n.target sm_80\n.address_size 64\n{body}");
    crate::ptx::load(&text).unwrap_or_else(|e| panic!("{e}"))
}
