//! Every command in a ```sh block of README.md and docs/*.md is one that works as written: a glov-cuda command line
//! (run directly, through `cargo run --release --`, `scripts/emulated.sh`, `nsys` or `compute-sanitizer`) parses
//! with the command line as it is now; a script it names exists; any other program is one of the few the pages may
//! show. The README's two commands are its main job and its test command, which `.ci/run` runs as written.

use clap::Parser;
use glov_cuda::cli::Cli;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page under docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The commands of the ```sh blocks of `text`, continuation lines joined, with their line numbers.
fn sh_commands(text: &str) -> Vec<(usize, String)> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if !in_block {
            in_block = trimmed == "```sh";
            continue;
        }
        if trimmed == "```" {
            assert!(pending.is_none(), "line {}: a continued command runs into the end of its block", i + 1);
            in_block = false;
            continue;
        }
        let (start, mut command) = pending.take().unwrap_or((i + 1, String::new()));
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                command.push_str(part.trim_end());
                command.push(' ');
                pending = Some((start, command));
            }
            None if trimmed.is_empty() || trimmed.starts_with('#') => {}
            None => {
                command.push_str(trimmed);
                commands.push((start, command));
            }
        }
    }
    assert!(!in_block, "a ```sh block is not closed");
    commands
}

/// The words of a simple shell command: quotes removed, `$(...)` kept whole within its word.
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = command.chars().peekable();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                in_word = true;
                let mut depth = 0;
                for c in chars.by_ref() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        '"' if depth == 0 => break,
                        _ => {}
                    }
                    word.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The commands run inside `$(...)` in `word`.
fn substitutions(word: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = word;
    while let Some(start) = rest.find("$(") {
        let inner = &rest[start + 2..];
        let mut depth = 1;
        let end = inner
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("an unclosed $( in {word:?}"));
        found.push(inner[..end].to_string());
        rest = &inner[end + 1..];
    }
    found
}

/// Checks one glov-cuda command line (`args` after the program name).
fn check_glov(args: &[String]) -> Result<(), String> {
    let argv = std::iter::once("glov-cuda".to_string()).chain(args.iter().cloned());
    Cli::try_parse_from(argv).map(|_| ()).map_err(|e| format!("does not parse: {e}"))
}

/// Checks a simple command (no pipe), after its variable assignments.
fn check_simple(command: &str) -> Result<(), String> {
    let words = words(command);
    for word in &words {
        for inner in substitutions(word) {
            check_command(&inner)?;
        }
    }
    let words: Vec<String> = words.into_iter().skip_while(|w| is_assignment(w)).collect();
    let Some(program) = words.first() else { return Ok(()) };
    let args = &words[1..];
    let exists = |path: &str| {
        if root().join(path).is_file() { Ok(()) } else { Err(format!("{path} does not exist")) }
    };
    match program.as_str() {
        "glov-cuda" | "./glov-cuda" | "target/release/glov-cuda" => check_glov(args),
        "cargo" => match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["run", "--release", "--", rest @ ..] | ["run", "--release", "--locked", "--", rest @ ..] => {
                check_glov(&rest.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            }
            ["test", "--release", "--locked"] | ["build", "--release"] | ["build", "--release", "--locked"] => Ok(()),
            other => Err(format!("an unexpected cargo command: {other:?}")),
        },
        "bash" | "python3" => {
            let script = args.first().ok_or("no script")?;
            exists(script)?;
            if script == "scripts/emulated.sh" { check_simple(&args[1..].join(" ")) } else { Ok(()) }
        }
        "nsys" | "compute-sanitizer" => {
            let at = args.iter().position(|a| a.ends_with("glov-cuda")).ok_or("runs no glov-cuda")?;
            check_glov(&args[at + 1..])
        }
        "tail" => Ok(()),
        other => Err(format!("{other}: not a program these pages may show")),
    }
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.starts_with('-')
    })
}

/// Checks a command of one or more pipe stages (split at the `|` outside quotes and substitutions).
fn check_command(command: &str) -> Result<(), String> {
    let (mut stages, mut stage) = (Vec::new(), String::new());
    let (mut quote, mut depth) = (None, 0);
    for c in command.chars() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (c, Some(q)) if c == q && depth == 0 => quote = None,
            ('(', _) => depth += 1,
            (')', _) => depth -= 1,
            ('|', None) if depth == 0 => {
                stages.push(std::mem::take(&mut stage));
                continue;
            }
            _ => {}
        }
        stage.push(c);
    }
    stages.push(stage);
    stages.iter().try_for_each(|s| check_simple(s))
}

#[test]
fn every_shell_command_in_the_readme_and_docs_works_as_written() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        for (line, command) in sh_commands(&text) {
            checked += 1;
            if let Err(e) = check_command(&command) {
                failures.push(format!("{name}:{line}: `{command}`: {e}"));
            }
        }
    }
    assert!(checked > 20, "only {checked} commands found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The README shows the two commands `.ci/run` runs, each on a line of its own.
#[test]
fn the_readme_shows_the_main_job_and_the_test_command_that_ci_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    for command in
        ["cargo run --release -- optimize --config examples/tiny.toml --out runs/tiny", "cargo test --release --locked"]
    {
        assert!(readme.lines().any(|l| l == command), "README.md does not show `{command}`");
        assert!(ci.contains(&format!("'{command}'")), ".ci/run does not run `{command}`");
    }
}

#[test]
fn the_checker_refuses_what_does_not_work() {
    assert!(check_command("glov-cuda optimize --no-such-flag").is_err());
    assert!(check_command("glov-cuda frobnicate").is_err());
    assert!(check_command("cargo run --release -- score --templates").is_err());
    assert!(check_command("bash scripts/no-such-script.sh").is_err());
    assert!(check_command("X=\"$(bash scripts/missing.sh | tail -n 1)\" cargo test --release --locked").is_err());
    assert!(check_command("rm -rf runs").is_err());
    assert!(check_command("glov-cuda --device cuda selftest --quick").is_ok());
    assert!(Path::new(&root().join("scripts/emulated.sh")).is_file());
    assert!(check_command("bash scripts/emulated.sh target/release/glov-cuda --device cuda selftest --bogus").is_err());
    let block = "```sh\nglov-cuda score \\\n    --clip m\n```\n";
    assert_eq!(sh_commands(block), [(2, "glov-cuda score --clip m".to_string())]);
}
