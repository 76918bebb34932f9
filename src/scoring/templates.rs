//! Prompt templates: text with `{}` where the class name goes.

use anyhow::{Context, Result, bail};
use std::path::Path;

/// The class slot in a template.
pub const SLOT: &str = "{}";

/// Fills every slot of a template with the class name.
pub fn fill(template: &str, class: &str) -> String {
    template.replace(SLOT, class)
}

/// Reads a templates file: one template per line, blank lines skipped. A line without `{}` is an error naming its
/// line number.
pub fn read_templates(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read templates file {}", path.display()))?;
    let templates = parse_templates(&text).with_context(|| format!("templates file {}", path.display()))?;
    if templates.is_empty() {
        bail!("templates file {} holds no templates", path.display());
    }
    Ok(templates)
}

pub fn parse_templates(text: &str) -> Result<Vec<String>> {
    let mut templates = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !line.contains(SLOT) {
            bail!("line {}: template {line:?} has no {SLOT} class slot", i + 1);
        }
        templates.push(line.to_string());
    }
    Ok(templates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_bad_lines() {
        let t = parse_templates("a photo of a {}.\n\n  itap of a {}  \r\n").unwrap();
        assert_eq!(t, vec!["a photo of a {}.", "itap of a {}"]);
        let err = parse_templates("a photo of a {}.\nno slot here\n").unwrap_err().to_string();
        assert!(err.starts_with("line 2:") && err.contains("no slot here"), "{err}");
        assert_eq!(fill("a {} or a {}", "cat"), "a cat or a cat");
    }
}
