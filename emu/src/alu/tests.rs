//! Every ALU spec that occurs in the built kernels' PTX resolves.

use super::resolve;
use std::collections::BTreeSet;
use std::path::Path;

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
    let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/build");
    let mut specs = BTreeSet::new();
    let dirs = std::fs::read_dir(&build).into_iter().flatten().flatten();
    for dir in dirs.filter(|d| d.file_name().to_string_lossy().starts_with("glov-cuda-")) {
        for file in std::fs::read_dir(dir.path().join("out")).into_iter().flatten().flatten() {
            if file.path().extension().is_some_and(|e| e == "ptx") {
                let text = std::fs::read_to_string(file.path()).unwrap();
                specs.extend(text.lines().filter_map(spec_of));
            }
        }
    }
    if specs.is_empty() {
        eprintln!("skipped: no built PTX under {} (build the root package first)", build.display());
        return;
    }
    let failed: Vec<String> = specs.iter().filter_map(|s| resolve(s).err()).collect();
    assert!(failed.is_empty(), "{} of {} specs unsupported:\n{}", failed.len(), specs.len(), failed.join("\n"));
    eprintln!("{} distinct ALU specs resolve", specs.len());
}
