//! Values written into a job script: the one place that decides how a value from a plan, a flag or a path becomes
//! part of a bash word, an `#SBATCH` directive or a comment line.
//!
//! A value may hold anything but a control character (a newline, a carriage return, NUL, ...): those are refused
//! with an error naming the value's field, so that nothing a plan or a flag holds can end a line of the script.
//! Paths must be UTF-8, so that the script names the very file the value names. Then:
//! - in a bash word, the value is single-quoted (a `'` closed, escaped and reopened), so that bash reads quotes,
//!   `$`, backticks, `;`, spaces and globs in it as themselves;
//! - in an `#SBATCH` directive, which bash reads as a comment but sbatch parses (splitting at white space, grouping
//!   with `'` or `"`, escaping with `\` and ending at an unquoted `#`), the value is double-quoted for sbatch with
//!   `"` and `\` escaped whenever it holds one of those characters;
//! - an extra sbatch option, written as the user gave it, must be exactly one sbatch argument that starts with `-`.

use anyhow::{Result, bail};
use std::path::Path;

/// `value` itself, when it holds no control character.
pub fn text<'a>(field: &str, value: &'a str) -> Result<&'a str> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        bail!("{field}: {value:?} holds the control character {c:?}, which a job script cannot hold");
    }
    Ok(value)
}

/// A path's text, when it is UTF-8 and holds no control character.
pub fn path<'a>(field: &str, path: &'a Path) -> Result<&'a str> {
    match path.to_str() {
        Some(value) => text(field, value),
        None => bail!("{field}: {} is not UTF-8, which a job script cannot name exactly", path.display()),
    }
}

/// `value` as one bash word: `'text'`, with any `'` closed, escaped and reopened.
pub fn word(field: &str, value: &str) -> Result<String> {
    Ok(format!("'{}'", text(field, value)?.replace('\'', r"'\''")))
}

/// The `#SBATCH` option `--name=value`, with the value quoted for sbatch where it needs it.
pub fn directive(field: &str, name: &str, value: &str) -> Result<String> {
    let value = text(field, value)?;
    if value.contains(|c: char| c.is_whitespace() || "'\"\\#".contains(c)) {
        Ok(format!("--{name}=\"{}\"", value.replace('\\', r"\\").replace('"', "\\\"")))
    } else {
        Ok(format!("--{name}={value}"))
    }
}

/// An extra sbatch option as the plan or a flag gives it (`--qos=high`, or a whole `#SBATCH --qos=high` line),
/// kept as written when sbatch reads it as exactly one option.
pub fn sbatch_option(field: &str, line: &str) -> Result<String> {
    let option = text(field, line)?.trim();
    let option = option.strip_prefix("#SBATCH").unwrap_or(option).trim();
    match sbatch_arguments(option).as_deref() {
        Some([argument]) if argument.starts_with('-') => Ok(option.to_string()),
        _ => bail!("{field}: {line:?} is not one sbatch option such as \"--qos=high\""),
    }
}

/// The arguments sbatch reads from the rest of an `#SBATCH` line, as its parser does; `None` when a quote is left
/// open.
fn sbatch_arguments(line: &str) -> Option<Vec<String>> {
    let mut arguments = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Some(arguments),
            Some(_) => {}
        }
        let mut argument = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            if quote.is_none() && (c.is_whitespace() || c == '#') {
                break;
            }
            chars.next();
            match c {
                '\\' => argument.extend(chars.next()),
                c if Some(c) == quote => quote = None,
                '"' | '\'' if quote.is_none() => quote = Some(c),
                c => argument.push(c),
            }
        }
        if quote.is_some() {
            return None;
        }
        arguments.push(argument);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a'b\"c $(touch x) `touch y`; d\\e #f";

    #[test]
    fn control_characters_are_refused_by_field() {
        for bad in ["a\nb", "a\rb", "a\0b", "a\x1bb"] {
            let e = word("slurm job-name", bad).unwrap_err().to_string();
            assert!(e.starts_with("slurm job-name: ") && e.contains("control character"), "{e}");
            assert!(directive("slurm partition", "partition", bad).unwrap_err().to_string().contains("partition"));
            assert!(sbatch_option("slurm sbatch[0]", bad).unwrap_err().to_string().contains("sbatch[0]"));
        }
        use std::os::unix::ffi::OsStrExt;
        let not_utf8 = Path::new(std::ffi::OsStr::from_bytes(b"/runs/\xff"));
        assert!(path("--out", not_utf8).unwrap_err().to_string().contains("--out: /runs/"));
    }

    #[test]
    fn bash_reads_a_word_as_the_value() {
        let script = format!("printf '%s' {}", word("w", HOSTILE).unwrap());
        let output = std::process::Command::new("bash").args(["-c", &script]).output().unwrap();
        assert_eq!(String::from_utf8(output.stdout).unwrap(), HOSTILE);
    }

    #[test]
    fn sbatch_reads_a_directive_as_one_option() {
        assert_eq!(directive("f", "mem", "64G").unwrap(), "--mem=64G");
        let option = directive("f", "job-name", HOSTILE).unwrap();
        assert_eq!(sbatch_arguments(&option), Some(vec![format!("--job-name={HOSTILE}")]));
        assert_eq!(sbatch_option("f", "#SBATCH --comment=\"two words\"").unwrap(), "--comment=\"two words\"");
        assert_eq!(sbatch_option("f", "--qos=high # the queue").unwrap(), "--qos=high # the queue");
        for bad in ["qos=high", "--qos=high --requeue", "--comment=\"open", "", "# --qos=high"] {
            let e = sbatch_option("slurm sbatch[1]", bad).unwrap_err().to_string();
            assert!(e.contains("slurm sbatch[1]") && e.contains("is not one sbatch option"), "{e}");
        }
    }
}
