//! The parsed form of a PTX module: declarations and instructions as written, names not yet resolved.

use crate::ir::Space;

/// A numeric literal, before the operand's type gives it its bits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Literal {
    Int(i128),
    /// `0fXXXXXXXX`.
    F32(u32),
    /// `0dXXXXXXXXXXXXXXXX` or a decimal floating-point literal.
    F64(u64),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// A register, special register, symbol or label name.
    Name(String),
    /// `!%p`.
    Not(String),
    /// `%a|%b`: the two destinations of `setp` and `shfl`.
    Pair(String, String),
    /// `_`.
    Sink,
    Lit(Literal),
    /// `[base+offset]`; `base` is a register or a symbol, absent for `[offset]`.
    Addr {
        base: Option<String>,
        offset: i64,
    },
    /// `{a, b, ...}`.
    Vector(Vec<Operand>),
    /// `(a, b, ...)`: the return and argument lists of `call`.
    List(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct Inst {
    pub line: u32,
    /// `@%p` (`false`) or `@!%p` (`true`).
    pub guard: Option<(String, bool)>,
    /// The opcode with its modifiers, as written: `ld.global.nc.v4.u32`.
    pub opcode: String,
    pub operands: Vec<Operand>,
}

/// A `.param` of a kernel or function, or of a call sequence.
#[derive(Clone, Debug)]
pub struct ParamDecl {
    pub name: String,
    pub align: u32,
    /// Bytes.
    pub size: u32,
    pub line: u32,
}

/// A `.shared`, `.local`, `.global` or `.const` variable.
#[derive(Clone, Debug)]
pub struct VarDecl {
    pub name: String,
    pub space: Space,
    pub align: u32,
    /// Bytes (0 for `.extern` arrays `name[]`).
    pub size: u64,
    pub external: bool,
    /// Initial bytes, little-endian, as many as were given.
    pub init: Vec<u8>,
    pub line: u32,
}

#[derive(Clone, Debug)]
pub enum RegDecl {
    /// `%r<46>`: `%r0` .. `%r45`.
    Range(String, u32),
    One(String),
}

#[derive(Clone, Debug)]
pub enum Stmt {
    Reg {
        /// Width in bits of the declared type.
        bits: u32,
        decls: Vec<RegDecl>,
        line: u32,
    },
    Var(VarDecl),
    /// A `.param` in a call sequence block.
    Param(ParamDecl),
    /// `{`: a nested register scope.
    Open,
    Close,
    Label {
        name: String,
        line: u32,
    },
    Inst(Inst),
}

#[derive(Clone, Debug)]
pub struct Func {
    pub name: String,
    pub entry: bool,
    pub params: Vec<ParamDecl>,
    /// The return value slots of a `.func`.
    pub rets: Vec<ParamDecl>,
    /// `None` for a prototype.
    pub body: Option<Vec<Stmt>>,
    pub max_threads: Option<[u32; 3]>,
    pub req_threads: Option<[u32; 3]>,
    pub line: u32,
}

#[derive(Clone, Debug)]
pub struct Module {
    pub version: (u32, u32),
    pub target: String,
    /// Module-scope variables in declaration order.
    pub vars: Vec<VarDecl>,
    /// Functions in declaration order; a prototype and its definition are merged into one.
    pub funcs: Vec<Func>,
}
