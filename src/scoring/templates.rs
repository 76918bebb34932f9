//! Prompt templates: text with one class slot, `{}` or `<category>` (the spelling the meta-prompt shows the LLM),
//! where the class name goes. Templates are stored with `{}`.

use anyhow::{Context, Result, bail};
use std::path::Path;

/// The class slot in a template.
pub const SLOT: &str = "{}";
/// The slot as the LLM is shown it, accepted wherever templates are read.
pub const LLM_SLOT: &str = "<category>";

/// A template with its one slot written `{}`; none, or more than one, is an error.
pub fn normalize(template: &str) -> Result<String> {
    let template = template.replace(LLM_SLOT, SLOT);
    match template.matches(SLOT).count() {
        1 => Ok(template),
        0 => bail!("template {template:?} has no class slot ({SLOT} or {LLM_SLOT})"),
        n => bail!("template {template:?} has {n} class slots; a template has one ({SLOT} or {LLM_SLOT})"),
    }
}

/// Fills every slot of a template with the class name.
pub fn fill(template: &str, class: &str) -> String {
    template.replace(SLOT, class)
}

/// Reads a templates file: one template per line, blank lines skipped. A line without exactly one slot is an error
/// naming its line number.
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
        templates.push(normalize(line).with_context(|| format!("line {}", i + 1))?);
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
        let err = format!("{:#}", parse_templates("a photo of a {}.\nno slot here\n").unwrap_err());
        assert!(err.starts_with("line 2:") && err.contains("no slot here") && err.contains("no class slot"), "{err}");
        let t = parse_templates("a photo of a <category>.\n").unwrap();
        assert_eq!(t, vec!["a photo of a {}."]);
        let err = format!("{:#}", parse_templates("a {}.\n\na {} or a <category>\n").unwrap_err());
        assert!(err.starts_with("line 3:") && err.contains("2 class slots"), "{err}");
        assert_eq!(fill("a {} or a {}", "cat"), "a cat or a cat");
    }
}
