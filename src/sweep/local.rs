//! The local executor: the cells run on this machine, each as its own `glov-cuda optimize` process, as many at once
//! as there are workers (one per visible GPU, or one on the CPU). A finished cell is skipped, an interrupted one
//! resumed, a failed one tried again; a failure keeps its error in the cell's folder and does not stop the others.
//!
//! The processes run in process groups of their own, so that Ctrl-C reaches only the sweep, which passes it on:
//! the first one lets every running cell finish its step and starts no new cell, a second one stops them at once.

use super::cell::{self, State};
use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How to start a cell's process.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The glov-cuda binary.
    pub exe: PathBuf,
    /// One worker per entry, each running its cells with this `--device`.
    pub devices: Vec<String>,
}

/// How one cell's turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// Finished before this sweep started; not run again.
    FinishedEarlier,
    Failed,
    /// Stopped on request (or killed); the next sweep resumes it.
    Interrupted,
    /// Another process holds the cell's lock.
    RunningElsewhere,
    /// Not started: the sweep was asked to stop first.
    NotStarted,
}

impl Outcome {
    fn describe(self) -> &'static str {
        match self {
            Outcome::Finished => "finished",
            Outcome::FinishedEarlier => "finished earlier",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::RunningElsewhere => "running elsewhere",
            Outcome::NotStarted => "not started",
        }
    }
}

/// Every cell's outcome, in the plan's order.
#[derive(Debug)]
pub struct Summary {
    pub outcomes: Vec<(String, Outcome)>,
    /// Ctrl-C was pressed.
    pub stopped: bool,
}

impl Summary {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.outcomes.iter().filter(|(_, o)| *o == outcome).count()
    }

    pub fn text(&self, sweep_dir: &Path) -> String {
        let mut parts = Vec::new();
        for outcome in [
            Outcome::Finished,
            Outcome::FinishedEarlier,
            Outcome::Failed,
            Outcome::Interrupted,
            Outcome::RunningElsewhere,
            Outcome::NotStarted,
        ] {
            let n = self.count(outcome);
            if n > 0 {
                parts.push(format!("{n} {}", outcome.describe()));
            }
        }
        let mut text = format!("{}: {}\n", super::count_cells(self.outcomes.len()), parts.join(", "));
        for (id, outcome) in &self.outcomes {
            if *outcome == Outcome::Failed {
                text.push_str(&format!("failed: {id} (see {})\n", sweep_dir.join(id).join(cell::ERROR).display()));
            }
        }
        text
    }
}

struct Shared {
    queue: Mutex<VecDeque<usize>>,
    outcomes: Mutex<Vec<Outcome>>,
    done: AtomicUsize,
    stop: Arc<AtomicBool>,
    children: Arc<Mutex<Vec<u32>>>,
}

/// Runs every cell (ids below `sweep_dir`) that is not finished yet; one progress line per cell on stdout.
pub fn run(sweep_dir: &Path, cells: &[String], launch: &Launch) -> Result<Summary> {
    let stop = Arc::new(AtomicBool::new(false));
    let children = Arc::new(Mutex::new(Vec::<u32>::new()));
    install_interrupt(stop.clone(), children.clone())?;
    let shared = Shared {
        queue: Mutex::new((0..cells.len()).collect()),
        outcomes: Mutex::new(vec![Outcome::NotStarted; cells.len()]),
        done: AtomicUsize::new(0),
        stop: stop.clone(),
        children,
    };
    std::thread::scope(|scope| {
        for device in &launch.devices {
            let shared = &shared;
            scope.spawn(move || worker(sweep_dir, cells, launch, device, shared));
        }
    });
    let outcomes = shared.outcomes.into_inner().expect("no worker panicked");
    Ok(Summary { outcomes: cells.iter().cloned().zip(outcomes).collect(), stopped: stop.load(Ordering::SeqCst) })
}

fn worker(sweep_dir: &Path, cells: &[String], launch: &Launch, device: &str, shared: &Shared) {
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(index) = shared.queue.lock().expect("queue").pop_front() else { return };
        let id = &cells[index];
        let dir = sweep_dir.join(id);
        let started = Instant::now();
        let outcome = match run_cell(&dir, launch, device, shared) {
            Ok(outcome) => outcome,
            Err(e) => {
                let text = format!("the sweep could not run this cell: {e:#}\n");
                if let Err(write) = crate::atomic_file::write(&dir.join(cell::ERROR), text.as_bytes()) {
                    eprintln!("cell {id}: {e:#} (and {write:#})");
                }
                Outcome::Failed
            }
        };
        shared.outcomes.lock().expect("outcomes")[index] = outcome;
        let done = shared.done.fetch_add(1, Ordering::SeqCst) + 1;
        let detail = match outcome {
            Outcome::Finished | Outcome::FinishedEarlier => result_line(&dir),
            Outcome::Failed => format!("see {}", dir.join(cell::ERROR).display()),
            Outcome::Interrupted => "resumes on the next sweep".to_string(),
            Outcome::RunningElsewhere | Outcome::NotStarted => String::new(),
        };
        let seconds = if outcome == Outcome::FinishedEarlier {
            String::new()
        } else {
            format!("{:.1} s on {device}; ", started.elapsed().as_secs_f64())
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[{done}/{}] {:<17} {id}  ({seconds}{detail})", cells.len(), outcome.describe());
    }
}

/// The test accuracy and the baseline's, from a finished cell's results.json.
fn result_line(dir: &Path) -> String {
    let results: Option<serde_json::Value> =
        std::fs::read(dir.join("results.json")).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
    match results {
        Some(r) => format!(
            "test {:.2}%, baseline {:.2}%",
            r["test_accuracy"].as_f64().unwrap_or(f64::NAN),
            r["baseline"]["test_accuracy"].as_f64().unwrap_or(f64::NAN)
        ),
        None => "no results.json".to_string(),
    }
}

fn run_cell(dir: &Path, launch: &Launch, device: &str, shared: &Shared) -> Result<Outcome> {
    match cell::progress(dir)?.state {
        State::Finished => return Ok(Outcome::FinishedEarlier),
        State::Running => return Ok(Outcome::RunningElsewhere),
        State::Pending | State::Interrupted | State::Failed => {}
    }
    let Some(_lock) = cell::lock(dir)? else { return Ok(Outcome::RunningElsewhere) };
    let resume = dir.join(crate::glov::run_dir::CONFIG).exists();
    // The cell's runtime options are in its cell.toml; the worker's device pins the GPU.
    let mut args: Vec<String> = ["--device", device, "optimize", "--config"].map(str::to_string).into();
    args.push(dir.join(cell::CELL_CONFIG).display().to_string());
    if resume {
        args.push("--resume".to_string());
    }

    let log_path = dir.join(cell::LOG);
    let mut log = crate::no_follow::open(&log_path, File::options().create(true).append(true))?;
    writeln!(log, "== glov-cuda sweep (local): {}", args.join(" "))?;
    remove_if_present(&dir.join(cell::ERROR))?;
    let mut command = Command::new(&launch.exe);
    command.args(&args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
    let mut child = command.spawn().with_context(|| format!("cannot start {}", launch.exe.display()))?;
    shared.children.lock().expect("children").push(child.id());
    let status = child.wait();
    shared.children.lock().expect("children").retain(|&pid| pid != child.id());
    let status = status.context("waiting for the cell's process")?;

    let outcome = classify(status);
    if outcome == Outcome::Failed {
        let text = format!(
            "glov-cuda optimize failed ({status}) on {device}\nlast lines of {}:\n{}\n",
            log_path.display(),
            cell::log_tail(dir, 20)
        );
        crate::atomic_file::write(&dir.join(cell::ERROR), text.as_bytes())?;
    }
    Ok(outcome)
}

/// Success, a stop on request (exit 130, or killed by SIGINT, SIGTERM or SIGKILL), or a failure.
fn classify(status: ExitStatus) -> Outcome {
    if status.success() {
        return Outcome::Finished;
    }
    match (status.code(), status.signal()) {
        (Some(130), _) => Outcome::Interrupted,
        (None, Some(libc::SIGINT | libc::SIGTERM | libc::SIGKILL)) => Outcome::Interrupted,
        _ => Outcome::Failed,
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Ctrl-C: stop starting cells and pass the signal on to the running ones (each stops after its step; a second
/// Ctrl-C passed on stops them at once).
fn install_interrupt(stop: Arc<AtomicBool>, children: Arc<Mutex<Vec<u32>>>) -> Result<()> {
    ctrlc::set_handler(move || {
        if !stop.swap(true, Ordering::SeqCst) {
            eprintln!("\nstopping: the running cells finish their step, no new cell starts (Ctrl-C again: stop now)");
        }
        if let Ok(pids) = children.lock() {
            for &pid in pids.iter() {
                // SAFETY: sending a signal has no memory effects; a pid that has just ended is answered with ESRCH.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
            }
        }
    })
    .context("cannot install the Ctrl-C handler")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_are_classified() {
        let exited = |code: i32| ExitStatus::from_raw(code << 8);
        let signalled = |signal: i32| ExitStatus::from_raw(signal);
        assert_eq!(classify(exited(0)), Outcome::Finished);
        assert_eq!(classify(exited(1)), Outcome::Failed);
        assert_eq!(classify(exited(130)), Outcome::Interrupted);
        assert_eq!(classify(signalled(libc::SIGKILL)), Outcome::Interrupted);
        assert_eq!(classify(signalled(libc::SIGTERM)), Outcome::Interrupted);
        assert_eq!(classify(signalled(libc::SIGSEGV)), Outcome::Failed);
    }

    #[test]
    fn the_summary_counts_and_names_failures() {
        let summary = Summary {
            outcomes: vec![
                ("a/seed1".into(), Outcome::Finished),
                ("a/seed2".into(), Outcome::Failed),
                ("b/seed1".into(), Outcome::FinishedEarlier),
                ("b/seed2".into(), Outcome::Finished),
            ],
            stopped: false,
        };
        assert_eq!(
            summary.text(Path::new("/runs/s")),
            "4 cells: 2 finished, 1 finished earlier, 1 failed\nfailed: a/seed2 (see /runs/s/a/seed2/error.txt)\n"
        );
    }
}
