//! Run directories that point elsewhere: a file of a run (history.jsonl, steps.jsonl, state.json, config.json, the
//! results, the plot) or of a sweep's cell (its log, lock or error) replaced by a symbolic link to a file outside,
//! or by a dangling one. `optimize --resume`, a new `optimize` into the folder, and a sweep over the cell must end
//! with a clear error naming the file, leave the file outside byte for byte as it was, and create no link's target.
//!
//! The runs are the tiny example's (`examples/tiny.toml`), made from the repository root.

#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_glov-cuda");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const MEMORY_MIB: u64 = 4096;
const SECONDS: u64 = 60;
/// Every file of a run directory.
const RUN_FILES: [&str; 8] = [
    "config.json",
    "state.json",
    "history.jsonl",
    "steps.jsonl",
    "results.json",
    "results.csv",
    "best_templates.txt",
    "plot.png",
];

/// A finished two-step run of the tiny example in `out`.
fn tiny_run(out: &Path) {
    let output = Command::new(BIN)
        .args(["optimize", "--config", "examples/tiny.toml", "--steps", "2", "-q", "--out", out.to_str().unwrap()])
        .current_dir(REPO)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Every entry of a folder (not recursive): a file's bytes, or a link's target.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let meta = path.symlink_metadata().unwrap();
            let content = if meta.is_symlink() {
                std::fs::read_link(&path).unwrap().to_string_lossy().into_owned().into_bytes()
            } else {
                std::fs::read(&path).unwrap()
            };
            (name, content)
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Replaces `dir/name` by a link to `target`.
fn plant(dir: &Path, name: &str, target: &Path) -> PathBuf {
    let link = dir.join(name);
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link).unwrap();
    }
    symlink(target, &link).unwrap();
    link
}

fn resume(out: &Path) -> common::Bounded {
    common::run_bounded(Path::new(REPO), &["optimize", "--out", out.to_str().unwrap(), "--resume"], MEMORY_MIB, SECONDS)
}

#[test]
fn resume_refuses_every_run_file_behind_a_link_and_leaves_its_target_alone() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    tiny_run(&base);
    for name in RUN_FILES {
        let run = dir.path().join(format!("run-{name}"));
        copy_dir(&base, &run);
        // The file outside holds the run's own bytes and more: what a truncation to state.json's lengths would cut.
        let outside = dir.path().join(format!("outside-{name}"));
        let mut bytes = std::fs::read(base.join(name)).unwrap();
        bytes.extend_from_slice(b"\nbytes of someone else's file, past any length the run records\n");
        std::fs::write(&outside, &bytes).unwrap();
        let link = plant(&run, name, &outside);
        let before = snapshot(&run);

        let result = resume(&run);
        common::assert_clear_error(&result, &[link.to_str().unwrap(), "symbolic link"]);
        assert_eq!(std::fs::read(&outside).unwrap(), bytes, "{name}: the file outside changed");
        assert!(snapshot(&run) == before, "{name}: the refused resume changed the run directory");
    }
}

#[test]
fn a_dangling_link_in_a_run_directory_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    tiny_run(&base);
    for name in RUN_FILES {
        let run = dir.path().join(format!("run-{name}"));
        copy_dir(&base, &run);
        let target = dir.path().join(format!("target-{name}"));
        let link = plant(&run, name, &target);
        let result = resume(&run);
        common::assert_clear_error(&result, &[link.to_str().unwrap(), "symbolic link"]);
        assert!(!target.exists(), "{name}: the link's target was created");
    }

    // A new run into a folder that holds only a dangling link.
    for name in ["config.json", "history.jsonl", "state.json", "plot.png"] {
        let fresh = dir.path().join(format!("fresh-{name}"));
        std::fs::create_dir(&fresh).unwrap();
        let target = dir.path().join(format!("fresh-target-{name}"));
        let link = plant(&fresh, name, &target);
        let args = ["optimize", "--config", "examples/tiny.toml", "-q", "--out", fresh.to_str().unwrap()];
        let result = common::run_bounded(Path::new(REPO), &args, MEMORY_MIB, SECONDS);
        common::assert_clear_error(&result, &[link.to_str().unwrap(), "symbolic link"]);
        assert!(!target.exists(), "{name}: a new run created the link's target");
        assert_eq!(snapshot(&fresh).len(), 1, "{name}: a refused run wrote into its folder");
    }
}

#[test]
fn a_sweep_writes_nothing_through_links_in_a_cell() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    // A plan's relative paths are taken from its folder: this one names the repository's files absolutely.
    std::fs::write(
        &plan,
        format!(
            "llm = \"{REPO}/examples/tiny-llm\"\nclip = \"{REPO}/tests/fixtures/clip-tiny-quickgelu\"\nsteps = 1\n\
             samples = 8\nalphas = [1.0, 0.0]\nmax-new-tokens = 24\nlayer = 2\nno-cache = true\n[[datasets]]\n\
             id = \"tiny\"\ndataset-name = \"tiny shapes\"\ndataset = \"{REPO}/examples/tiny-dataset\"\n\
             description = \"Shapes.\"\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("sweep");
    let cell = out.join("tiny");
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, b"not the sweep's\n").unwrap();
    let args = ["sweep", plan.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let list = common::run_bounded(Path::new(REPO), &[&args[..], &["--list"]].concat(), MEMORY_MIB, SECONDS);
    assert!(list.output.status.success(), "{}", String::from_utf8_lossy(&list.output.stderr));

    for (name, target) in [
        ("optimize.log", outside.clone()),
        (".lock", dir.path().join("lock-target")),
        ("state.json", outside.clone()),
        ("history.jsonl", dir.path().join("history-target")),
    ] {
        std::fs::create_dir_all(&cell).unwrap();
        let link = plant(&cell, name, &target);
        let run = common::run_bounded(Path::new(REPO), &args, MEMORY_MIB, SECONDS);
        assert_eq!(run.output.status.code(), Some(1), "{name}: {}", String::from_utf8_lossy(&run.output.stderr));
        let error = std::fs::read_to_string(cell.join("error.txt")).unwrap();
        assert!(error.contains(&format!("{} is a symbolic link", link.display())), "{name}: {error}");
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_file(cell.join("error.txt")).unwrap();
    }
    assert_eq!(std::fs::read(&outside).unwrap(), b"not the sweep's\n");
    assert!(!dir.path().join("lock-target").exists() && !dir.path().join("history-target").exists());
}
