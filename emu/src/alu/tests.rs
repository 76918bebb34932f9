//! Every ALU spec that occurs in the built kernels' PTX resolves.

use super::resolve;
use std::collections::BTreeSet;

/// Opcodes `resolve` is responsible for (moves, selects, memory, control and collectives are lowered elsewhere).
const ALU_OPS: &[&str] = &[
    "add", "sub", "mul", "mad", "addc", "subc", "madc", "div", "rem", "min", "max", "abs", "neg", "sad", "and", "or",
    "xor", "not", "cnot", "shl", "shr", "popc", "clz", "brev", "bfind", "bfe", "bfi", "prmt", "setp", "cvt", "fma",
    "rcp", "sqrt", "rsqrt", "ex2", "lg2", "sin", "cos", "tanh", "copysign",
];

/// The instruction spec of a PTX line, without a guard or the braces of an inline-assembly block; `setp`'s
/// boolean combination (`.and/.or/.xor` before the type) is dropped, as the lowering does.
fn spec_of(line: &str) -> Option<String> {
    let mut text = line.split("//").next()?.trim().trim_start_matches('{').trim();
    if text.starts_with('@') {
        text = text.split_once(char::is_whitespace)?.1.trim();
    }
    let token = text.split(|c: char| c.is_whitespace() || c == ';').next()?;
    let op = token.split('.').next()?;
    if !ALU_OPS.contains(&op) {
        return None;
    }
    if op == "setp" {
        let parts: Vec<&str> = token.split('.').filter(|p| !matches!(*p, "and" | "or" | "xor")).collect();
        return Some(parts.join("."));
    }
    Some(token.to_string())
}

#[test]
fn every_spec_of_the_built_kernels_resolves() {
    let Some(modules) = crate::project_kernels::all() else { return };
    let specs: BTreeSet<String> = modules.iter().flat_map(|m| m.ptx.lines().filter_map(spec_of)).collect();
    assert!(!specs.is_empty(), "the kernels use arithmetic");
    let failed: Vec<String> = specs.iter().filter_map(|s| resolve(s).err()).collect();
    assert!(failed.is_empty(), "{} of {} specs unsupported:\n{}", failed.len(), specs.len(), failed.join("\n"));
    eprintln!("{} distinct ALU specs resolve", specs.len());
}

/// Runs the resolved `spec` on `srcs` with carry flag `cf`.
pub(super) fn run_cc(spec: &str, srcs: &[u64], cf: &mut bool) -> u64 {
    let (f, _) = resolve(spec).unwrap_or_else(|e| panic!("{e}"));
    let mut s = [0; 4];
    s[..srcs.len()].copy_from_slice(srcs);
    f(&s, cf)
}

pub(super) fn run(spec: &str, srcs: &[u64]) -> u64 {
    run_cc(spec, srcs, &mut false)
}

/// A small deterministic generator (xorshift64*) for property tests.
pub(super) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn unknown_specs_are_refused_by_name() {
    for spec in ["frobnicate.f32", "add.f32.f32", "fma.f32", "add.ftz.f64", "cvt.f32.s32", "cvt.s32.f32", "setp.lo.s32"]
    {
        let err = resolve(spec).err().unwrap_or_else(|| panic!("{spec} resolved"));
        assert!(err.starts_with(spec), "{err}");
    }
}

#[test]
fn counter_classes() {
    use crate::ir::Class;
    for spec in ["ex2.approx.ftz.f32", "tanh.approx.f32", "div.approx.ftz.f32", "div.full.f32", "rsqrt.approx.f32"] {
        assert_eq!(resolve(spec).unwrap().1, Class::SpecialFn, "{spec}");
    }
    for spec in ["div.rn.f32", "sqrt.rn.f32", "add.s64", "cvt.rn.bf16.f32", "setp.lt.u32"] {
        assert_eq!(resolve(spec).unwrap().1, Class::Arith, "{spec}");
    }
}

/// A finite float as `m * 2^e` with a signed integer `m` (`bits` wide format with `prec` significand bits).
pub(super) fn exact(x: u64, bits: u32, prec: u32) -> (i128, i32) {
    let ebits = bits - prec;
    let bias = (1i32 << (ebits - 1)) - 1;
    let field = ((x >> (prec - 1)) & ((1 << ebits) - 1)) as i32;
    let frac = (x & ((1 << (prec - 1)) - 1)) as i128;
    let (m, e) = if field == 0 {
        (frac, 2 - bias - prec as i32)
    } else {
        (frac | 1 << (prec - 1), field - bias - (prec as i32 - 1))
    };
    (if x >> (bits - 1) == 1 { -m } else { m }, e)
}

/// The sign of `sum(m_i * 2^e_i)`, computed exactly (the test inputs keep it within 127 bits).
pub(super) fn sum_sign(terms: &[(i128, i32)]) -> std::cmp::Ordering {
    let terms: Vec<_> = terms.iter().filter(|t| t.0 != 0).collect();
    let Some(emin) = terms.iter().map(|t| t.1).min() else {
        return std::cmp::Ordering::Equal;
    };
    let total = terms.iter().fold(0i128, |acc, &(m, e)| {
        let shifted = m
            .checked_mul(1i128.checked_shl((e - emin) as u32).expect("test term too wide"))
            .expect("test term too wide");
        acc.checked_add(shifted).expect("test sum too wide")
    });
    total.cmp(&0)
}

/// The result in rounding direction `rm` ("rn", "rz", "rm", "rp"), given the correctly rounded-to-nearest result
/// `rn` of a format with sign bit `sign` and how `rn` compares with the exact value: the directed result is `rn`
/// or its neighbour on the exact value's side.
pub(super) fn directed(rn: u64, rn_vs_exact: std::cmp::Ordering, rm: &str, sign: u64) -> u64 {
    use std::cmp::Ordering::*;
    let neg = rn & sign != 0;
    let down = |x: u64| {
        if x == 0 {
            sign | 1
        } else if x & sign != 0 {
            x + 1
        } else {
            x - 1
        }
    };
    let up = |x: u64| {
        if x == sign {
            1
        } else if x & sign != 0 {
            x - 1
        } else {
            x + 1
        }
    };
    match (rn_vs_exact, rm) {
        (Equal, _) | (_, "rn") => rn,
        (Greater, "rp") | (Less, "rm") => rn,
        (Greater, "rm") => down(rn),
        (Less, "rp") => up(rn),
        (Greater, _) => {
            if neg {
                rn
            } else {
                down(rn)
            }
        }
        (Less, _) => {
            if neg {
                up(rn)
            } else {
                rn
            }
        }
    }
}
