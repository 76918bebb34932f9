//! PTX text to `ir::Module`: the parser and the lowering (registers numbered, labels and symbols resolved, `.func`
//! callees linked into each kernel, every arithmetic instruction resolved through `alu::resolve`). An instruction
//! or directive the emulator does not support is an error naming the kernel and the line.
//!
//! Stages: `lexer` (tokens), `parse` (the `ast`: declarations and instructions as written), `layout` (per kernel:
//! the functions it links, their shared, local and parameter offsets), `lower` and `ops` (instructions to `ir`).

mod ast;
mod layout;
mod lexer;
mod lower;
mod ops;
mod parse;
mod provenance;
#[cfg(test)]
mod tests;
mod value;

use crate::ir::{AluFn, Class, Module};
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// A PTX module that cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The kernel or function being read, when inside one.
    pub function: Option<String>,
    /// 1-based line of the PTX text.
    pub line: u32,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.function {
            Some(name) => write!(f, "PTX line {} (in {name}): {}", self.line, self.message),
            None => write!(f, "PTX line {}: {}", self.line, self.message),
        }
    }
}

/// An error at a line, before the function it is in and the line's text are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error {
    pub line: u32,
    pub message: String,
}

impl Error {
    pub fn new(line: u32, message: impl Into<String>) -> Self {
        Error { line, message: message.into() }
    }

    /// The `LoadError` for this error in `text`, quoting the offending line.
    fn in_text(self, text: &str, function: Option<&str>) -> LoadError {
        let source = text.lines().nth(self.line.saturating_sub(1) as usize).map(str::trim).unwrap_or("");
        let message = if source.is_empty() { self.message } else { format!("{} in `{source}`", self.message) };
        LoadError { function: function.map(str::to_owned), line: self.line, message }
    }
}

/// An error and the function it happened in.
pub(crate) type Failure = (Error, Option<String>);

/// What gives each arithmetic instruction its function: `alu::resolve` in production.
pub(crate) type Resolver<'a> = &'a dyn Fn(&str) -> Result<(AluFn, Class), String>;

/// Parses and lowers one PTX module.
pub fn load(text: &str) -> Result<Module, LoadError> {
    load_with(text, &crate::alu::resolve)
}

/// `load` with the arithmetic instructions resolved by `resolve`.
pub(crate) fn load_with(text: &str, resolve: Resolver<'_>) -> Result<Module, LoadError> {
    let in_text = |(e, function): Failure| e.in_text(text, function.as_deref());
    let module = parse::parse(text).map_err(in_text)?;
    lower::lower(&module, resolve).map_err(in_text)
}

/// The instruction spelling as a `&'static str` for `ir::Op::Alu::name`: each distinct spelling is leaked once.
pub(crate) fn intern(spec: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    match names.get(spec) {
        Some(name) => name,
        None => {
            let name: &'static str = Box::leak(spec.to_owned().into_boxed_str());
            names.insert(name);
            name
        }
    }
}
