//! Every input a fuzz target once found to crash or hang glov-cuda, kept as tests/fixtures/fuzz/TARGET/NAME, run
//! again through that target's own body (fuzz/src/cases.rs, included here as the fuzz targets use it): each must
//! now end within seconds without a panic. Add a find by copying it from fuzz/artifacts/TARGET/ under a name that
//! says what it holds.

#[path = "../fuzz/src/cases.rs"]
mod cases;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// How long one input may take: the fuzzer counts 10 s as a hang, and a test build is slower than a fuzz build.
const LIMIT: Duration = Duration::from_secs(30);

/// The files of one target's folder, in name order.
fn inputs(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", folder.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .collect();
    files.sort();
    files
}

/// Runs `body` on the bytes of `file` in a thread of its own: `Err` says how it failed (a panic or a hang).
fn run(body: fn(&[u8]), file: &Path) -> Result<(), String> {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        body(&bytes);
        let _ = done.send(());
    });
    match finished.recv_timeout(LIMIT) {
        Ok(()) => Ok(()),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("panicked (its message is above)".into()),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("still running after {} s", LIMIT.as_secs())),
    }
}

#[test]
fn every_input_a_fuzzer_found_now_ends_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut ran = 0;
    let mut failures = Vec::new();
    'all: for folder in inputs(&root) {
        let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some(&(_, body)) = cases::TARGETS.iter().find(|(target, _)| *target == name) else {
            panic!("{} is not named after a fuzz target (one of fuzz/src/cases.rs's TARGETS)", folder.display());
        };
        for file in inputs(&folder) {
            ran += 1;
            if let Err(how) = run(body, &file) {
                let hung = how.starts_with("still running");
                failures.push(format!("{}: {how}", file.display()));
                // A body still running would share the scratch files with the next input.
                if hung {
                    break 'all;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(cases::scratch());
    assert!(ran > 0, "no regression input found under {}", root.display());
    assert!(failures.is_empty(), "{} of {ran} regression inputs failed:\n{}", failures.len(), failures.join("\n"));
}
