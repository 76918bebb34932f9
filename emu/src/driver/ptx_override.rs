//! `GLOV_EMU_PTX_OVERRIDE=DIR`: a module being loaded is replaced by the `.ptx` file in DIR that declares exactly
//! the same kernels, if there is one. The mutation check (`scripts/mutation_check.py`) compiles a kernel file with
//! a planted defect and runs the unchanged binary with it this way.

use std::collections::BTreeSet;
use std::path::Path;

/// The names of the kernels a PTX text declares (`.entry name(`).
fn entries(text: &str) -> BTreeSet<&str> {
    text.lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(".entry ")?;
            rest.split(['(', ' ', '\t']).next().filter(|name| !name.is_empty())
        })
        .collect()
}

/// The text of the PTX file in `dir` that declares the same kernels as `text`, announced on stderr.
pub fn find(dir: &Path, text: &str) -> Option<String> {
    let wanted = entries(text);
    let mut files: Vec<_> = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "ptx")).find_map(|path| {
        let replacement = std::fs::read_to_string(&path).ok()?;
        (entries(&replacement) == wanted).then(|| {
            eprintln!(
                "glov-emu: the module of {} is replaced by {}",
                wanted.iter().next().unwrap_or(&"?"),
                path.display()
            );
            replacement
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_is_replaced_by_the_file_with_the_same_kernels() {
        let dir = std::env::temp_dir().join(format!("glov-emu-override-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.ptx"), ".visible .entry one(\n.visible .entry two(\n// changed").unwrap();
        std::fs::write(dir.join("b.ptx"), ".visible .entry one(\n").unwrap();
        let found = find(&dir, ".visible .entry two(\n.visible .entry one(\n");
        assert_eq!(found.as_deref(), Some(".visible .entry one(\n.visible .entry two(\n// changed"));
        assert_eq!(find(&dir, ".visible .entry three(\n"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
