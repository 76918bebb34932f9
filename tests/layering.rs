//! The layers import only from below (see ARCHITECTURE.md): nothing under `src/backend` names the models,
//! generation, the optimizer, scoring, the command line or the selftest harness. A scan of the sources: every path
//! that starts at the crate root (`crate::`, or enough `super::` to climb to it), in `use` declarations and in code
//! alike, with comments skipped.

use std::path::{Path, PathBuf};

/// The top-level modules above the backend.
const ABOVE_THE_BACKEND: [&str; 7] = ["models", "generation", "describe", "glov", "scoring", "cli", "selftest"];

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// How many modules below the crate root the file `src/<relative>` is (`backend/mod.rs`: 1, `backend/cpu/x.rs`: 3).
fn module_depth(relative: &Path) -> usize {
    let parts = relative.components().count();
    if relative.file_name().is_some_and(|n| n == "mod.rs") { parts - 1 } else { parts }
}

/// The text without `//` and `/* */` comments.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('/') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        if tail.starts_with("//") {
            rest = tail.find('\n').map_or("", |end| &tail[end..]);
        } else if tail.starts_with("/*") {
            rest = tail.find("*/").map_or("", |end| &tail[end + 2..]);
        } else {
            out.push('/');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The first name of each path of a use tree that follows a root: `models::clip` gives `models`; a group such as
/// `{backend::Backend, models::{self, clip}}` gives `backend` and `models`.
fn first_names(tree: &str) -> Vec<String> {
    let tree = tree.trim_start();
    let Some(group) = tree.strip_prefix('{') else {
        return vec![tree.chars().take_while(|&c| is_ident(c)).collect()];
    };
    let (mut names, mut depth, mut item_start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                names.extend(first_names(&group[item_start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                names.extend(first_names(&group[item_start..i]));
                item_start = i + 1;
            }
            _ => {}
        }
    }
    names.retain(|n: &String| !n.is_empty());
    names
}

/// The crate-root modules that `code` names, for a file `depth` modules below the root.
fn root_modules(code: &str, depth: usize) -> Vec<String> {
    let mut found = Vec::new();
    let mut previous = ' ';
    let mut i = 0;
    while let Some(c) = code[i..].chars().next() {
        let rest = &code[i..];
        let at_path_start = !is_ident(previous) && previous != ':';
        if at_path_start && let Some(tree) = rest.strip_prefix("crate::") {
            found.extend(first_names(tree));
        } else if at_path_start && rest.starts_with("super::") {
            let supers = (0..).take_while(|&n| rest[n * 7..].starts_with("super::")).count();
            if supers >= depth {
                found.extend(first_names(&rest[supers * 7..]));
            }
            i += supers * 7;
            previous = ':';
            continue;
        }
        previous = c;
        i += c.len_utf8();
    }
    found
}

#[test]
fn nothing_under_src_backend_imports_from_the_layers_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src.join("backend"));
    assert!(files.len() >= 10, "only {} files found under src/backend", files.len());
    let mut violations = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&src).unwrap();
        let code = without_comments(&std::fs::read_to_string(path).unwrap());
        for module in root_modules(&code, module_depth(relative)) {
            if ABOVE_THE_BACKEND.contains(&module.as_str()) {
                violations.push(format!("src/{}: crate::{module}", relative.display()));
            }
        }
    }
    assert!(violations.is_empty(), "the backend imports from the layers above it:\n{}", violations.join("\n"));
}

#[test]
fn the_scan_sees_every_form_of_path() {
    let code = without_comments(
        "use crate::models::clip::Clip;\n\
         use crate::{backend::Backend, generation::{self, generate}};\n\
         use super::super::super::scoring::Scorer;\n\
         use super::ops::DTensor;\n\
         // use crate::cli;\n\
         /* crate::glov */ fn f() { crate::selftest::run(); my_crate::glov::x(); }\n",
    );
    assert_eq!(root_modules(&code, 3), ["models", "backend", "generation", "scoring", "selftest"]);
    assert_eq!(root_modules("use super::super::models;", 2), ["models"]);
    assert!(root_modules("use super::super::models;", 3).is_empty(), "super::super from depth 3 is not the root");
    assert_eq!(module_depth(Path::new("backend/mod.rs")), 1);
    assert_eq!(module_depth(Path::new("backend/cuda/runtime.rs")), 3);
}
