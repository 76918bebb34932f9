//! The lowered form of a PTX module: what `ptx::lower` produces once at module load and `exec` runs.
//!
//! Conventions every layer relies on:
//! - **Registers.** Every PTX register of a kernel (and of the `.func`s it calls, which are linked into the
//!   kernel's instruction list with their own register range) is one `Reg` index into a per-thread file of `u64`
//!   slots. A value is stored zero-extended from its declared width (`.pred`: 0 or 1; `.b16`: low 16 bits; ...).
//!   Every `AluFn` returns its result already masked to the destination's width.
//! - **Immediates** are stored as the bits of the operand's type: `0f3F800000` as `0x3F80_0000`, `-1` in a `.s32`
//!   operand as `0xFFFF_FFFF`, a double as its 64 bits.
//! - **Addresses.** A `.shared` variable's address is its offset in the block's shared memory (static variables
//!   first, laid out in declaration order at their alignment, then the dynamic `.extern .shared` area); a `.local`
//!   variable's address is its offset in the thread's local memory; a kernel parameter's address is its offset in
//!   the parameter buffer. Generic addresses of shared and local memory are those offsets plus
//!   `memory::SHARED_WINDOW` / `memory::LOCAL_WINDOW`; generic global addresses are device addresses.
//! - **Program counters** are indices into `Function::insts`; branch targets are resolved to indices.

/// An index into a thread's register file.
pub type Reg = u32;

/// A per-lane operation on up to four source values: arithmetic, logic, comparison or conversion, with its types
/// and modifiers already chosen. The `bool` is the lane's carry flag (`.cc` writes it, `addc`/`subc`/`madc` read it).
pub type AluFn = fn(&[u64; 4], &mut bool) -> u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    B8,
    B16,
    B32,
    B64,
    U8,
    U16,
    U32,
    U64,
    S8,
    S16,
    S32,
    S64,
    F16,
    F16x2,
    Bf16,
    Bf16x2,
    F32,
    F64,
    Pred,
}

impl Ty {
    /// A type by its PTX name without the dot: `u32`, `bf16x2`, `pred`.
    pub fn from_name(name: &str) -> Option<Ty> {
        Some(match name {
            "b8" => Ty::B8,
            "b16" => Ty::B16,
            "b32" => Ty::B32,
            "b64" => Ty::B64,
            "u8" => Ty::U8,
            "u16" => Ty::U16,
            "u32" => Ty::U32,
            "u64" => Ty::U64,
            "s8" => Ty::S8,
            "s16" => Ty::S16,
            "s32" => Ty::S32,
            "s64" => Ty::S64,
            "f16" => Ty::F16,
            "f16x2" => Ty::F16x2,
            "bf16" => Ty::Bf16,
            "bf16x2" => Ty::Bf16x2,
            "f32" => Ty::F32,
            "f64" => Ty::F64,
            "pred" => Ty::Pred,
            _ => return None,
        })
    }

    /// Width in bits (`.pred`: 1).
    pub fn bits(self) -> u32 {
        match self {
            Ty::Pred => 1,
            Ty::B8 | Ty::U8 | Ty::S8 => 8,
            Ty::B16 | Ty::U16 | Ty::S16 | Ty::F16 | Ty::Bf16 => 16,
            Ty::B32 | Ty::U32 | Ty::S32 | Ty::F32 | Ty::F16x2 | Ty::Bf16x2 => 32,
            Ty::B64 | Ty::U64 | Ty::S64 | Ty::F64 => 64,
        }
    }

    pub fn bytes(self) -> u32 {
        self.bits().div_ceil(8)
    }

    pub fn is_signed(self) -> bool {
        matches!(self, Ty::S8 | Ty::S16 | Ty::S32 | Ty::S64)
    }

    pub fn is_float(self) -> bool {
        matches!(self, Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2 | Ty::F32 | Ty::F64)
    }
}

/// State spaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    Global,
    Shared,
    Local,
    Param,
    Const,
    /// An address whose window decides the space (global, shared or local).
    Generic,
}

/// Special registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Special {
    Tid(u8),
    Ntid(u8),
    Ctaid(u8),
    Nctaid(u8),
    LaneId,
    WarpId,
    NWarpId,
    SmId,
    NSmId,
    GridId,
    LanemaskEq,
    LanemaskLt,
    LanemaskLe,
    LanemaskGt,
    LanemaskGe,
    Clock,
    Clock64,
    GlobalTimer,
    DynamicSmemSize,
    TotalSmemSize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    Reg(Reg),
    /// `!%p` as a source: 1 where the predicate is 0.
    NotPred(Reg),
    Imm(u64),
    Special(Special),
    /// The device address of module variable `globals[i]` (a `.global` or `.const` variable).
    GlobalAddr(u32),
}

/// `[base + offset]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrBase {
    /// The offset alone is the address (shared, local and parameter symbols are folded into it).
    None,
    Reg(Reg),
    /// Module variable `globals[i]`'s device address.
    Global(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    pub base: AddrBase,
    pub offset: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoolOp {
    And,
    Or,
    Xor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtomOp {
    Add,
    Min,
    Max,
    Inc,
    Dec,
    Exch,
    Cas,
    And,
    Or,
    Xor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteMode {
    All,
    Any,
    Uni,
    Ballot,
}

/// What an instruction counts as, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// Loads, stores and atomics of every state space except `.param`.
    Memory,
    /// Integer, logic and floating-point arithmetic, comparisons, conversions, moves.
    Arith,
    /// Special-function unit: `ex2`, `lg2`, `rcp/sqrt/rsqrt.approx`, `sin`, `cos`, `tanh`, `div.approx` ...
    SpecialFn,
    /// Tensor-core `mma`.
    Tensor,
    /// `shfl`, `vote`, `match`, `bar.warp.sync`.
    Collective,
    /// Branches, barriers, calls, returns, exits.
    Control,
}

#[derive(Clone, Debug)]
pub enum Op {
    /// `dst = src` (also `mov` of an address, `cvta`-free moves between same-width types).
    Mov { dst: Reg, src: Operand },
    /// `mov.bN dst, {a, b, ...}`: packs `srcs` (each `elem_bits` wide, first in the low bits).
    Pack { dst: Reg, srcs: Vec<Operand>, elem_bits: u32 },
    /// `mov.bN {a, b, ...}, src`: unpacks (first destination from the low bits); `None` for a `_` sink.
    Unpack { dsts: Vec<Option<Reg>>, src: Operand, elem_bits: u32 },
    /// Arithmetic, logic, conversion (`cvt`), comparison results already combined: `dst = f(srcs, carry)`.
    /// `name` is the PTX opcode with its modifiers, for reports.
    Alu { f: AluFn, dst: Reg, srcs: [Operand; 4], nsrc: u8, name: &'static str },
    /// `setp.cmp[.bop].ty p[|q], a, b[, c]`: `t = cmp(a, b)` (an `AluFn` giving 0 or 1);
    /// `p = t bop c`, `q = !t bop c` (without `bop`: `p = t`, `q = !t`).
    Setp { cmp: AluFn, dst: Reg, dst_not: Option<Reg>, a: Operand, b: Operand, combine: Option<(BoolOp, Operand)> },
    /// `selp dst, a, b, p`: `p ? a : b`.
    Selp { dst: Reg, a: Operand, b: Operand, pred: Operand },
    /// `cvta.space`: generic from space address (`to_generic`), or the reverse (`cvta.to.space`); `bits` 32 or 64.
    Cvta { dst: Reg, src: Operand, space: Space, to_generic: bool, bits: u32 },
    /// `ld[.space][.nc][.vN].ty`: `dsts.len()` elements of `ty.bytes()` each from consecutive addresses. Elements
    /// narrower than their registers (declared `reg_bits` wide) are zero-extended, or sign-extended for `.sN`.
    Ld { space: Space, ty: Ty, dsts: Vec<Option<Reg>>, addr: Address, reg_bits: u32 },
    /// `st[.space][.vN].ty`.
    St { space: Space, ty: Ty, srcs: Vec<Operand>, addr: Address },
    /// `atom.space.op.ty dst, [addr], a[, b]` (`b`: the new value of `cas`); `red` has no `dst`.
    Atom { space: Space, op: AtomOp, ty: Ty, dst: Option<Reg>, addr: Address, a: Operand, b: Option<Operand> },
    /// `bra[.uni] target`.
    Bra { target: u32 },
    /// `bar.sync a[, b]` / `barrier.sync` / `bar.arrive` (`wait` false): barrier `id`, `count` threads (`None`: all
    /// threads of the block). `aligned`: every thread of a warp executes this same instruction (`bar.sync`,
    /// `barrier.sync.aligned`), else undefined.
    Bar { id: Operand, count: Option<Operand>, wait: bool, aligned: bool },
    /// `bar.warp.sync mask`.
    WarpSync { mask: Operand },
    /// `shfl.sync.mode.b32 dst[|pred], a, b, c, mask`.
    Shfl { mode: ShflMode, dst: Reg, dst_pred: Option<Reg>, a: Operand, b: Operand, c: Operand, mask: Operand },
    /// `vote.sync.mode dst, pred, mask` (`dst` is `.b32` for ballot, `.pred` otherwise).
    Vote { mode: VoteMode, dst: Reg, pred: Operand, mask: Operand },
    /// `match.any.sync.bN dst, a, mask` / `match.all.sync.bN dst[|pred], a, mask`.
    Match { all: bool, bits: u32, dst: Reg, dst_pred: Option<Reg>, a: Operand, mask: Operand },
    /// `mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32 d, a, b, c`, fragments per the PTX ISA.
    Mma { bf16: bool, d: [Reg; 4], a: [Reg; 4], b: [Reg; 2], c: [Operand; 4] },
    /// `ldmatrix.sync.aligned.m8n8.xN[.trans].shared.b16 {d..}, [addr]`: `dsts.len()` (1, 2 or 4) 8 x 8 matrices
    /// of 16-bit elements, row `r` of matrix `j` at the address lane `8 j + r` gives; lane `l` receives row `l / 4`,
    /// elements `2 (l % 4)` and `2 (l % 4) + 1` of each matrix (column `l / 4`, rows `2 (l % 4)`, `2 (l % 4) + 1`
    /// with `.trans`), the first in the low half. `generic`: the address is generic (it must point at shared memory).
    Ldmatrix { dsts: Vec<Reg>, addr: Address, trans: bool, generic: bool },
    /// `cp.async.{ca,cg}.shared.global [dst], [src], size[, src_size]`: `size` bytes (4, 8 or 16) copied from
    /// global to shared memory in the background; only `src_size` of them are read (the rest are zeros). The copy
    /// belongs to the thread's open group and lands when a `CpAsyncWait` waits for that group.
    CpAsync { dst: Address, src: Address, size: u32, src_size: Option<Operand> },
    /// `cp.async.commit_group`: closes the thread's open group of copies.
    CpAsyncCommit,
    /// `cp.async.wait_group n` (`all` false): lands every committed group of the thread but the newest `n`;
    /// `cp.async.wait_all` (`all`): commits the open group and lands everything.
    CpAsyncWait { n: u32, all: bool },
    /// `call target`: pushes the return point and jumps to the callee's first instruction (linked into this list).
    Call { target: u32 },
    /// `ret`: returns to the caller, or ends the thread in the kernel's own body.
    Ret,
    /// `exit`.
    Exit,
    /// `membar` / `fence`: orders nothing in the emulator (every access is visible at once), counted.
    Fence,
}

#[derive(Clone, Debug)]
pub struct Inst {
    pub op: Op,
    /// `@%p` (`false`) or `@!%p` (`true`).
    pub guard: Option<(Reg, bool)>,
    pub class: Class,
    /// The line of the PTX text (1-based) the instruction came from.
    pub line: u32,
}

#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub offset: u32,
    pub size: u32,
    pub align: u32,
}

/// Where an address comes from, when the PTX shows it (`ptx::provenance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A `.shared` variable: its offset and size (`None`: the dynamic shared memory, to the end of the block's).
    Shared { offset: u32, bytes: Option<u32> },
    /// The 64-bit kernel parameter at this offset of the parameter buffer (a pointer the host passed).
    Param(u32),
}

/// A kernel (`.entry`), with every `.func` it calls linked after its own instructions.
#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    pub params: Vec<Param>,
    pub param_bytes: u32,
    pub insts: Vec<Inst>,
    /// `block_start[pc]`: a branch or call target or a function's first instruction, where diverged lanes may meet.
    pub block_start: Vec<bool>,
    pub nregs: u32,
    /// Register names, for reports (`reg_names[r]`).
    pub reg_names: Vec<String>,
    /// Bytes of static `.shared` variables this kernel (and its callees) uses; dynamic shared memory follows at
    /// `dynamic_shared_offset`.
    pub static_shared: u32,
    pub dynamic_shared_offset: u32,
    /// Bytes of local memory per thread (`.local` variables of the kernel and its callees).
    pub local_bytes: u32,
    /// `.maxntid` / `.reqntid`, when given.
    pub max_threads: Option<[u32; 3]>,
    pub req_threads: Option<[u32; 3]>,
    /// `origins[pc]`: for a memory instruction, the one variable or parameter its address comes from, where the
    /// PTX shows a single one (an access that leaves it is a memcheck error); shorter than `insts` when none
    /// follows.
    pub origins: Vec<Option<Origin>>,
}

/// A module-scope `.global` or `.const` variable: allocated in device memory when the module is loaded.
#[derive(Clone, Debug)]
pub struct GlobalVar {
    pub name: String,
    pub space: Space,
    pub bytes: u64,
    pub align: u32,
    /// Initial bytes (zeros past its end up to `bytes`).
    pub init: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Module {
    /// `.version major.minor`.
    pub version: (u32, u32),
    /// `.target`, e.g. `sm_80`.
    pub target: String,
    pub kernels: Vec<Function>,
    pub globals: Vec<GlobalVar>,
}

impl Module {
    pub fn kernel(&self, name: &str) -> Option<usize> {
        self.kernels.iter().position(|k| k.name == name)
    }
}
