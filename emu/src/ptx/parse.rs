//! Tokens to the parsed module (`ast`): module directives, variables, kernel and function headers, and bodies as
//! a flat statement list with `{`/`}` scope markers. Debug sections are skipped; anything else not understood is
//! an error at its line.

use super::ast::{Func, Inst, Literal, Module, Operand, ParamDecl, RegDecl, Stmt, VarDecl};
use super::lexer::{Tok, Token, tokenize};
use super::value;
use super::{Error, Failure};
use crate::ir::{Space, Ty};

/// The module, or an error with the function it is in.
pub fn parse(text: &str) -> Result<Module, Failure> {
    let tokens = tokenize(text).map_err(|e| (e, None))?;
    let mut parser = Parser { tokens, pos: 0, function: None };
    parser.module().map_err(|e| (e, parser.function.take()))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// The function being read.
    function: Option<String>,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.pos + ahead).map(|t| &t.tok)
    }

    /// The line of the next token (or of the last one, at the end).
    fn line(&self) -> u32 {
        self.tokens.get(self.pos).or(self.tokens.last()).map_or(1, |t| t.line)
    }

    fn next(&mut self) -> Result<Tok, Error> {
        let tok = self.peek().cloned().ok_or_else(|| Error::new(self.line(), "unexpected end of the PTX text"))?;
        self.pos += 1;
        Ok(tok)
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let found = self.is_punct(c);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect_punct(&mut self, c: char) -> Result<(), Error> {
        if self.eat_punct(c) { Ok(()) } else { Err(self.unexpected(&format!("`{c}`"))) }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let found = self.is_word(w);
        if found {
            self.pos += 1;
        }
        found
    }

    fn word(&mut self) -> Result<String, Error> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.unexpected("a name")),
        }
    }

    fn unexpected(&self, wanted: &str) -> Error {
        let found = match self.peek() {
            Some(Tok::Word(w)) | Some(Tok::Num(w)) => format!("`{w}`"),
            Some(Tok::Str(s)) => format!("\"{s}\""),
            Some(Tok::Punct(c)) => format!("`{c}`"),
            None => "the end of the text".into(),
        };
        Error::new(self.line(), format!("expected {wanted}, found {found}"))
    }

    fn literal(&mut self) -> Result<Literal, Error> {
        let negative = self.eat_punct('-');
        match self.peek() {
            Some(Tok::Num(text)) => {
                let lit =
                    value::literal(text).ok_or_else(|| Error::new(self.line(), format!("bad literal `{text}`")))?;
                self.pos += 1;
                Ok(match (negative, lit) {
                    (false, lit) => lit,
                    (true, Literal::Int(v)) => Literal::Int(-v),
                    (true, Literal::F32(b)) => Literal::F32(b ^ 0x8000_0000),
                    (true, Literal::F64(b)) => Literal::F64(b ^ (1 << 63)),
                })
            }
            _ => Err(self.unexpected("a number")),
        }
    }

    fn int(&mut self) -> Result<i64, Error> {
        let line = self.line();
        match self.literal()? {
            Literal::Int(v) if i64::try_from(v).is_ok() => Ok(v as i64),
            _ => Err(Error::new(line, "expected an integer")),
        }
    }

    fn uint(&mut self) -> Result<u32, Error> {
        let line = self.line();
        u32::try_from(self.int()?).map_err(|_| Error::new(line, "expected a non-negative 32-bit integer"))
    }

    /// `.u32` and the like.
    fn ty(&mut self) -> Result<Ty, Error> {
        let line = self.line();
        let w = self.word()?;
        w.strip_prefix('.').and_then(value::ty).ok_or_else(|| Error::new(line, format!("expected a type, found `{w}`")))
    }

    fn module(&mut self) -> Result<Module, Error> {
        let mut module = Module { version: (0, 0), target: String::new(), vars: Vec::new(), funcs: Vec::new() };
        while let Some(tok) = self.peek().cloned() {
            let line = self.line();
            let Tok::Word(w) = tok else { return Err(self.unexpected("a directive")) };
            self.pos += 1;
            match w.as_str() {
                ".version" => {
                    let Tok::Num(v) = self.next()? else { return Err(Error::new(line, "bad .version")) };
                    let parsed = v.split_once('.').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                    module.version = parsed.ok_or_else(|| Error::new(line, format!("bad .version `{v}`")))?;
                }
                ".target" => {
                    module.target = self.word()?;
                    if self.eat_punct(',') {
                        let extra = self.word()?;
                        return Err(Error::new(line, format!("unsupported .target option `{extra}`")));
                    }
                }
                ".address_size" => {
                    if self.int()? != 64 {
                        return Err(Error::new(line, "only .address_size 64 is supported"));
                    }
                }
                ".section" => self.skip_section()?,
                ".visible" | ".weak" => {
                    if !(self.is_word(".entry") || self.is_word(".func")) {
                        return Err(self.unexpected(".entry or .func"));
                    }
                }
                ".entry" | ".func" => self.function(&mut module, w == ".entry", line)?,
                ".extern" => {
                    if !self.is_word(".shared") {
                        return Err(Error::new(line, "only .extern .shared variables are supported"));
                    }
                    self.pos += 1;
                    let var = self.var(Space::Shared, true, line)?;
                    module.vars.push(var);
                }
                ".global" => {
                    let var = self.var(Space::Global, false, line)?;
                    module.vars.push(var);
                }
                ".const" => {
                    let var = self.var(Space::Const, false, line)?;
                    module.vars.push(var);
                }
                ".shared" => {
                    let var = self.var(Space::Shared, false, line)?;
                    module.vars.push(var);
                }
                _ => return Err(Error::new(line, format!("unsupported module directive `{w}`"))),
            }
        }
        Ok(module)
    }

    /// `.section .debug_* { ... }`: debug information the emulator has no use for.
    fn skip_section(&mut self) -> Result<(), Error> {
        let line = self.line();
        let name = self.word()?;
        if !name.starts_with(".debug") {
            return Err(Error::new(line, format!("unsupported section `{name}`")));
        }
        self.expect_punct('{')?;
        let mut depth = 1;
        while depth > 0 {
            match self.next()? {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// `[.align N] .type name[[N]] [= init];` after the state space.
    fn var(&mut self, space: Space, external: bool, line: u32) -> Result<VarDecl, Error> {
        let align = if self.eat_word(".align") { Some(self.uint()?) } else { None };
        let ty = self.ty()?;
        let name = self.word()?;
        let mut size = ty.bytes() as u64;
        if self.eat_punct('[') {
            if self.eat_punct(']') {
                if !external {
                    return Err(Error::new(line, format!("array `{name}` without a size")));
                }
                size = 0;
            } else {
                size *= self.uint()? as u64;
                self.expect_punct(']')?;
            }
        } else if external {
            return Err(Error::new(line, "an .extern .shared variable must be an unsized array"));
        }
        let mut init = Vec::new();
        if self.eat_punct('=') {
            if space == Space::Shared {
                return Err(Error::new(line, "a .shared variable cannot be initialised"));
            }
            let braced = self.eat_punct('{');
            loop {
                let lit_line = self.line();
                let bits = value::bits(self.literal()?, ty).map_err(|m| Error::new(lit_line, m))?;
                init.extend_from_slice(&bits.to_le_bytes()[..ty.bytes() as usize]);
                if !braced || !self.eat_punct(',') {
                    break;
                }
            }
            if braced {
                self.expect_punct('}')?;
            }
            if init.len() as u64 > size {
                return Err(Error::new(line, format!("`{name}` has more initialisers than elements")));
            }
        }
        self.expect_punct(';')?;
        let align = align.unwrap_or(ty.bytes());
        if !align.is_power_of_two() {
            return Err(Error::new(line, format!("alignment {align} is not a power of two")));
        }
        Ok(VarDecl { name, space, align, size, external, init, line })
    }

    /// `.param [.align N] .type name[[N]]` (no `;`).
    fn param(&mut self) -> Result<ParamDecl, Error> {
        let line = self.line();
        if !self.eat_word(".param") {
            return Err(self.unexpected(".param"));
        }
        let align = if self.eat_word(".align") { Some(self.uint()?) } else { None };
        let ty = self.ty()?;
        let name = self.word()?;
        let mut size = ty.bytes();
        if self.eat_punct('[') {
            size *= self.uint()?;
            self.expect_punct(']')?;
        }
        let align = align.unwrap_or(ty.bytes());
        if !align.is_power_of_two() {
            return Err(Error::new(line, format!("alignment {align} is not a power of two")));
        }
        Ok(ParamDecl { name, align, size, line })
    }

    fn param_list(&mut self) -> Result<Vec<ParamDecl>, Error> {
        self.expect_punct('(')?;
        let mut params = Vec::new();
        if !self.eat_punct(')') {
            loop {
                params.push(self.param()?);
                if !self.eat_punct(',') {
                    break;
                }
            }
            self.expect_punct(')')?;
        }
        Ok(params)
    }

    fn dims(&mut self) -> Result<[u32; 3], Error> {
        let mut dims = [1; 3];
        dims[0] = self.uint()?;
        for d in dims.iter_mut().skip(1) {
            if !self.eat_punct(',') {
                break;
            }
            *d = self.uint()?;
        }
        Ok(dims)
    }

    fn function(&mut self, module: &mut Module, entry: bool, line: u32) -> Result<(), Error> {
        let rets = if !entry && self.is_punct('(') { self.param_list()? } else { Vec::new() };
        let name = self.word()?;
        self.function = Some(name.clone());
        let params = if self.is_punct('(') { self.param_list()? } else { Vec::new() };
        let mut func = Func { name, entry, params, rets, body: None, max_threads: None, req_threads: None, line };
        loop {
            let dline = self.line();
            if self.eat_word(".maxntid") {
                func.max_threads = Some(self.dims()?);
            } else if self.eat_word(".reqntid") {
                func.req_threads = Some(self.dims()?);
            } else if self.eat_word(".minnctapersm") || self.eat_word(".maxnreg") {
                // Occupancy hints: they change nothing the emulator computes.
                self.uint()?;
            } else if let Some(Tok::Word(w)) = self.peek() {
                return Err(Error::new(dline, format!("unsupported function directive `{w}`")));
            } else {
                break;
            }
        }
        if !self.eat_punct(';') {
            self.expect_punct('{')?;
            func.body = Some(self.body()?);
        }
        self.function = None;
        match module.funcs.iter_mut().find(|f| f.name == func.name) {
            Some(prev) if prev.body.is_some() && func.body.is_some() => {
                Err(Error::new(line, format!("`{}` is defined twice", func.name)))
            }
            Some(prev) if prev.entry != func.entry || prev.params.len() != func.params.len() => {
                Err(Error::new(line, format!("`{}` does not match its earlier declaration", func.name)))
            }
            Some(prev) => {
                if func.body.is_some() {
                    *prev = func;
                }
                Ok(())
            }
            None => {
                module.funcs.push(func);
                Ok(())
            }
        }
    }

    /// Statements up to the `}` that closes the body (the opening `{` already read).
    fn body(&mut self) -> Result<Vec<Stmt>, Error> {
        let mut stmts = Vec::new();
        let mut depth = 1;
        loop {
            let line = self.line();
            match self.peek().cloned() {
                None => return Err(Error::new(line, "unterminated function body")),
                Some(Tok::Punct('{')) => {
                    self.pos += 1;
                    depth += 1;
                    stmts.push(Stmt::Open);
                }
                Some(Tok::Punct('}')) => {
                    self.pos += 1;
                    depth -= 1;
                    if depth == 0 {
                        return Ok(stmts);
                    }
                    stmts.push(Stmt::Close);
                }
                Some(Tok::Punct('@')) => stmts.push(Stmt::Inst(self.inst()?)),
                Some(Tok::Word(w)) if self.peek_at(1) == Some(&Tok::Punct(':')) => {
                    self.pos += 2;
                    stmts.push(Stmt::Label { name: w, line });
                }
                Some(Tok::Word(w)) if w.starts_with('.') => stmts.extend(self.directive(&w, line)?),
                Some(Tok::Word(_)) => stmts.push(Stmt::Inst(self.inst()?)),
                Some(_) => return Err(self.unexpected("an instruction")),
            }
        }
    }

    /// A declaration in a body; `None` for a directive with no effect (`.pragma "nounroll"`).
    fn directive(&mut self, w: &str, line: u32) -> Result<Option<Stmt>, Error> {
        match w {
            ".reg" => {
                self.pos += 1;
                let bits = self.ty()?.bits();
                let mut decls = Vec::new();
                loop {
                    let name = self.word()?;
                    if self.eat_punct('<') {
                        let n = self.uint()?;
                        self.expect_punct('>')?;
                        decls.push(RegDecl::Range(name, n));
                    } else {
                        decls.push(RegDecl::One(name));
                    }
                    if !self.eat_punct(',') {
                        break;
                    }
                }
                self.expect_punct(';')?;
                Ok(Some(Stmt::Reg { bits, decls, line }))
            }
            ".local" | ".shared" => {
                self.pos += 1;
                let space = if w == ".local" { Space::Local } else { Space::Shared };
                Ok(Some(Stmt::Var(self.var(space, false, line)?)))
            }
            ".param" => {
                let p = self.param()?;
                self.expect_punct(';')?;
                Ok(Some(Stmt::Param(p)))
            }
            ".pragma" => {
                self.pos += 1;
                match self.next()? {
                    Tok::Str(s) if s == "nounroll" => {}
                    _ => return Err(Error::new(line, "unsupported .pragma")),
                }
                self.expect_punct(';')?;
                Ok(None)
            }
            _ => Err(Error::new(line, format!("unsupported directive `{w}`"))),
        }
    }

    fn inst(&mut self) -> Result<Inst, Error> {
        let line = self.line();
        let guard = if self.eat_punct('@') {
            let negate = self.eat_punct('!');
            Some((self.word()?, negate))
        } else {
            None
        };
        let opcode = self.word()?;
        let mut operands = Vec::new();
        if !self.eat_punct(';') {
            loop {
                operands.push(self.operand()?);
                if self.eat_punct(';') {
                    break;
                }
                self.expect_punct(',')?;
            }
        }
        Ok(Inst { line, guard, opcode, operands })
    }

    fn operand(&mut self) -> Result<Operand, Error> {
        match self.peek().cloned() {
            Some(Tok::Punct('{')) => {
                self.pos += 1;
                let mut elems = Vec::new();
                loop {
                    elems.push(self.operand()?);
                    if self.eat_punct('}') {
                        break;
                    }
                    self.expect_punct(',')?;
                }
                Ok(Operand::Vector(elems))
            }
            Some(Tok::Punct('[')) => {
                self.pos += 1;
                let base = match self.peek() {
                    Some(Tok::Word(_)) => Some(self.word()?),
                    _ => None,
                };
                // `[base]`, `[base+4]`, `[base+-4]`, `[base-4]` or `[4]`.
                let offset = if base.is_none() || self.eat_punct('+') || self.is_punct('-') { self.int()? } else { 0 };
                self.expect_punct(']')?;
                Ok(Operand::Addr { base, offset })
            }
            Some(Tok::Punct('(')) => {
                self.pos += 1;
                let mut names = Vec::new();
                if !self.eat_punct(')') {
                    loop {
                        names.push(self.word()?);
                        if !self.eat_punct(',') {
                            break;
                        }
                    }
                    self.expect_punct(')')?;
                }
                Ok(Operand::List(names))
            }
            Some(Tok::Punct('!')) => {
                self.pos += 1;
                Ok(Operand::Not(self.word()?))
            }
            Some(Tok::Punct('-')) | Some(Tok::Num(_)) => Ok(Operand::Lit(self.literal()?)),
            Some(Tok::Word(w)) => {
                self.pos += 1;
                if w == "_" {
                    Ok(Operand::Sink)
                } else if self.eat_punct('|') {
                    Ok(Operand::Pair(w, self.word()?))
                } else {
                    Ok(Operand::Name(w))
                }
            }
            _ => Err(self.unexpected("an operand")),
        }
    }
}
