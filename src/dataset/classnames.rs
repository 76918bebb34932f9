//! Class names of a class-folder dataset.
//!
//! By default a class's name is its folder name with every `_` replaced by a space (`golden_retriever` ->
//! `golden retriever`). A `classnames.txt` in the dataset root overrides that, in one of two forms:
//!
//! - **Mapping form** (ImageNet style): lines `<folder> <class name>`, e.g. `n01440764 tench`. The file is read in
//!   this form when every non-blank line has at least two whitespace-separated tokens and its first token is the
//!   name of a class folder. Every folder must be listed exactly once; the order of the lines does not matter.
//! - **List form**: one class name per line, in the sorted order of the class folders; the number of names must
//!   equal the number of class folders.
//!
//! In both forms blank lines are skipped, leading and trailing white space is trimmed, and the name is taken
//! verbatim (no `_` replacement; a mapping line's name is everything after the first token). A file where more
//! than half of the lines look like mapping lines but not all do is rejected as a broken mapping (a typo in a
//! folder name would otherwise silently turn the whole file into list-form names such as `n01440764 tench`).

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::Path;

/// The file name of the class-name override in a class-folder dataset's root.
pub const CLASSNAMES_FILE: &str = "classnames.txt";

/// The default class name of a folder: the folder name with `_` replaced by a space.
pub fn default_name(folder: &str) -> String {
    folder.replace('_', " ")
}

/// The class names of `folders` (sorted class-folder names) for a dataset rooted at `root`: from
/// `root/classnames.txt` when it exists, otherwise [`default_name`] of each folder.
pub fn for_folders(root: &Path, folders: &[String]) -> Result<Vec<String>> {
    let file = root.join(CLASSNAMES_FILE);
    if !file.is_file() {
        return Ok(folders.iter().map(|f| default_name(f)).collect());
    }
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    parse(&text, folders, &file)
}

/// Parses the text of a `classnames.txt` (`file`, for error messages) for the sorted class folders `folders`.
pub fn parse(text: &str, folders: &[String], file: &Path) -> Result<Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().map(|(i, line)| (i + 1, line.trim())).filter(|(_, line)| !line.is_empty()).collect();
    let index: HashMap<&str, usize> = folders.iter().enumerate().map(|(i, f)| (f.as_str(), i)).collect();

    // (folder index, class name) when the line reads `<folder> <name>`.
    let mapping = |line: &str| -> Option<(usize, String)> {
        let (first, rest) = line.split_once(char::is_whitespace)?;
        let rest = rest.trim();
        (!rest.is_empty()).then_some(())?;
        index.get(first).map(|&i| (i, rest.to_string()))
    };
    let mapped: Vec<Option<(usize, String)>> = lines.iter().map(|(_, line)| mapping(line)).collect();
    let mapped_count = mapped.iter().filter(|m| m.is_some()).count();

    if !lines.is_empty() && mapped_count == lines.len() {
        let mut names: Vec<Option<(usize, String)>> = vec![None; folders.len()];
        for ((line_no, _), entry) in lines.iter().zip(mapped) {
            let (folder, name) = entry.expect("every line maps");
            if let Some((first_line, _)) = &names[folder] {
                bail!(
                    "{}: class folder `{}` is listed twice (lines {} and {})",
                    file.display(),
                    folders[folder],
                    first_line,
                    line_no
                );
            }
            names[folder] = Some((*line_no, name));
        }
        let missing: Vec<&str> =
            names.iter().zip(folders).filter(|(n, _)| n.is_none()).map(|(_, f)| f.as_str()).collect();
        if !missing.is_empty() {
            bail!(
                "{}: {} of {} class folders have no line: {}{}",
                file.display(),
                missing.len(),
                folders.len(),
                missing.iter().take(5).map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "),
                if missing.len() > 5 { ", ..." } else { "" }
            );
        }
        return Ok(names.into_iter().map(|n| n.expect("checked above").1).collect());
    }

    if mapped_count * 2 > lines.len() {
        let (line_no, line) = lines.iter().zip(&mapped).find(|(_, m)| m.is_none()).expect("not all lines map").0;
        let first = line.split_whitespace().next().unwrap_or_default();
        if index.contains_key(first) {
            bail!(
                "{}: line {} (`{}`) names class folder `{}` but no class name; expected `<folder> <class name>` \
                 like the other lines",
                file.display(),
                line_no,
                line,
                first
            );
        }
        bail!(
            "{}: line {} (`{}`) starts with `{}`, which is not a class folder; the other lines read \
             `<folder> <class name>`",
            file.display(),
            line_no,
            line,
            first
        );
    }

    if lines.len() != folders.len() {
        bail!(
            "{} has {} class names (one per non-blank line) but the dataset has {} class folders",
            file.display(),
            lines.len(),
            folders.len()
        );
    }
    Ok(lines.into_iter().map(|(_, line)| line.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folders(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn parse_ok(text: &str, f: &[&str]) -> Vec<String> {
        parse(text, &folders(f), Path::new("classnames.txt")).unwrap()
    }

    fn parse_err(text: &str, f: &[&str]) -> String {
        parse(text, &folders(f), Path::new("/data/x/classnames.txt")).unwrap_err().to_string()
    }

    #[test]
    fn default_names_replace_underscores() {
        assert_eq!(default_name("golden_retriever"), "golden retriever");
        assert_eq!(default_name("n01440764"), "n01440764");
    }

    #[test]
    fn list_form_in_folder_order() {
        assert_eq!(parse_ok("tench\ngoldfish\n\n", &["a", "b"]), ["tench", "goldfish"]);
        assert_eq!(
            parse_ok("\u{feff} great white shark \r\nhammerhead\r\n", &["a", "b"]),
            ["great white shark", "hammerhead"]
        );
        // A single-token line equal to a folder name is a plain name, not a mapping line.
        assert_eq!(parse_ok("red\nred apple\n", &["red", "red_apple"]), ["red", "red apple"]);
    }

    #[test]
    fn mapping_form_any_order() {
        let f = ["n01440764", "n01443537"];
        assert_eq!(
            parse_ok("n01443537 goldfish\nn01440764\ttench, Tinca tinca\n", &f),
            ["tench, Tinca tinca", "goldfish"]
        );
    }

    #[test]
    fn list_form_wrong_count() {
        let err = parse_err("a\nb\nc\n", &["x", "y"]);
        assert!(err.contains("/data/x/classnames.txt") && err.contains("3 class names") && err.contains("2 class"));
        let err = parse_err("\n\n", &["x"]);
        assert!(err.contains("0 class names") && err.contains("1 class folders"), "{err}");
    }

    #[test]
    fn mapping_form_duplicate_and_missing() {
        let f = ["n1", "n2", "n3"];
        let err = parse_err("n1 one\nn2 two\nn1 uno\n", &f);
        assert!(err.contains("`n1` is listed twice (lines 1 and 3)") && err.contains("classnames.txt"), "{err}");
        let err = parse_err("n1 one\nn3 three\n", &f);
        assert!(err.contains("1 of 3 class folders have no line: `n2`"), "{err}");
    }

    #[test]
    fn mapping_form_unknown_folder() {
        let f = ["n1", "n2", "n3"];
        let err = parse_err("n1 one\nn2 two\nn4 three\n", &f);
        assert!(err.contains("line 3") && err.contains("`n4`") && err.contains("not a class folder"), "{err}");
        let err = parse_err("n1 one\nn2\nn3 three\n", &f);
        assert!(err.contains("line 2") && err.contains("no class name"), "{err}");
    }
}
