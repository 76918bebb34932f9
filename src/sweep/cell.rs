//! A cell's run directory as the sweep sees it: the configuration written before anything runs, the state read
//! from the files the run leaves, the lock held while it runs, and the error a failed attempt leaves.
//!
//! - `cell.toml`: every setting of the run and its `out`; `glov-cuda optimize --config cell.toml` starts it and
//!   `... --resume` continues it, with or without the sweep;
//! - `.lock`: locked (flock) by whatever runs the cell, for as long as it runs;
//! - `optimize.log`: what each attempt printed, appended, each attempt after a header line;
//! - `error.txt`: the exit status and the log's last lines of an attempt that failed (removed when the next one
//!   starts).

use crate::backend::runtime_options;
use crate::glov::run_dir;
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub const CELL_CONFIG: &str = "cell.toml";
pub const LOCK: &str = ".lock";
pub const LOG: &str = "optimize.log";
pub const ERROR: &str = "error.txt";
/// The files a finished run has written last.
const FINAL_FILES: [&str; 3] = ["results.json", "results.csv", "best_templates.txt"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Nothing has run yet.
    Pending,
    /// Something holds the cell's lock.
    Running,
    /// Started, not finished, not running: the next attempt resumes it.
    Interrupted,
    Finished,
    /// The last attempt failed; `error.txt` says how.
    Failed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Interrupted => "interrupted",
            State::Finished => "finished",
            State::Failed => "failed",
        }
    }
}

/// A cell's state and how far its run got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub state: State,
    /// Completed steps, from the run's `state.json` (`None` before the first step).
    pub completed_steps: Option<usize>,
}

/// Reads a cell's state from its folder without changing anything in it. The files the sweep writes there (the
/// log, the lock, the error) and `state.json` must be regular files or absent: a link there is an error naming it,
/// so that no executor writes through it.
pub fn progress(dir: &Path) -> Result<Progress> {
    for name in [LOG, LOCK, ERROR] {
        crate::no_follow::exists(&dir.join(name))?;
    }
    let completed_steps = completed_steps(dir)?;
    let state = if is_locked(dir)? {
        State::Running
    } else if dir.join(ERROR).exists() {
        State::Failed
    } else if FINAL_FILES.iter().all(|name| dir.join(name).exists()) {
        State::Finished
    } else if dir.join(run_dir::CONFIG).exists() {
        State::Interrupted
    } else {
        State::Pending
    };
    Ok(Progress { state, completed_steps })
}

fn completed_steps(dir: &Path) -> Result<Option<usize>> {
    let path = dir.join(run_dir::STATE);
    let Some(text) = crate::no_follow::read_to_string(&path)? else { return Ok(None) };
    let state: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
    Ok(state["completed_steps"].as_u64().map(|n| n as usize))
}

fn flock(file: &File, operation: libc::c_int) -> std::io::Result<bool> {
    // SAFETY: the descriptor belongs to `file`, open for the whole call.
    if unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(false) } else { Err(error) }
}

/// Whether something holds the cell's lock (a shared lock is tried and let go at once).
fn is_locked(dir: &Path) -> Result<bool> {
    let path = dir.join(LOCK);
    let Some(file) = crate::no_follow::open_existing(&path, File::options().read(true))? else { return Ok(false) };
    Ok(!flock(&file, libc::LOCK_SH).with_context(|| format!("cannot lock {}", path.display()))?)
}

/// The cell's lock, held until dropped.
pub struct Lock {
    _file: File,
}

/// Takes the cell's lock; `None` when something else holds it (after a short wait, as a state reader holds it
/// for an instant).
pub fn lock(dir: &Path) -> Result<Option<Lock>> {
    let path = dir.join(LOCK);
    let file = crate::no_follow::open(&path, File::options().create(true).append(true))
        .with_context(|| format!("cannot create the lock file {}", path.display()))?;
    for _ in 0..20 {
        if flock(&file, libc::LOCK_EX).with_context(|| format!("cannot lock {}", path.display()))? {
            return Ok(Some(Lock { _file: file }));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(None)
}

/// Writes the cell's `cell.toml` (creating its folder): its settings, its folder as `out`, and the runtime options
/// it runs with (`device`, ...). An existing one must hold the same settings, so that a changed plan never mixes
/// runs of two configurations under one folder; its runtime options are replaced by this sweep's.
pub fn write_config(dir: &Path, plan: &Path, id: &str, config: &toml::Table, runtime: &toml::Table) -> Result<PathBuf> {
    let path = dir.join(CELL_CONFIG);
    let mut table = config.clone();
    table.insert("out".into(), toml::Value::String(dir.display().to_string()));
    let mut whole = table.clone();
    whole.extend(runtime.clone());
    if crate::no_follow::exists(&path)? {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut existing: toml::Table =
            toml::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
        let existing_runtime: toml::Table =
            runtime_options::keys().into_iter().filter_map(|k| existing.remove(&k).map(|v| (k, v))).collect();
        if existing != table {
            let mut keys: Vec<&String> = existing.keys().chain(table.keys()).collect();
            keys.sort();
            keys.dedup();
            let differences: Vec<String> = keys
                .into_iter()
                .filter(|k| existing.get(*k) != table.get(*k))
                .map(|k| {
                    let show = |v: Option<&toml::Value>| v.map_or("(unset)".to_string(), |v| v.to_string());
                    format!("{k}: {} there, {} in the plan", show(existing.get(k)), show(table.get(k)))
                })
                .collect();
            bail!(
                "cell {id}: {} was written by another plan (use another --out, or remove the cell's folder to run \
                 it again):\n  {}",
                path.display(),
                differences.join("\n  ")
            );
        }
        if existing_runtime == *runtime {
            return Ok(path);
        }
    }
    let text = format!(
        "# Cell {id} of the sweep planned in {}.\n# Start or re-run it alone: glov-cuda optimize --config {}\n# \
         Continue it: add --resume.\n{}",
        plan.display(),
        path.display(),
        toml::to_string(&whole)?
    );
    crate::atomic_file::write(&path, text.as_bytes())?;
    Ok(path)
}

/// The last `lines` lines of the cell's log, for `error.txt` and messages.
pub fn log_tail(dir: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(dir.join(LOG)).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, names: &[&str]) {
        for name in names {
            std::fs::write(dir.join(name), b"{}").unwrap();
        }
    }

    #[test]
    fn states_follow_the_files_a_run_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path();
        let state = |cell: &Path| progress(cell).unwrap();
        assert_eq!(state(&cell.join("absent")), Progress { state: State::Pending, completed_steps: None });
        touch(cell, &["cell.toml"]);
        assert_eq!(state(cell).state, State::Pending);
        touch(cell, &["config.json", "history.jsonl"]);
        assert_eq!(state(cell), Progress { state: State::Interrupted, completed_steps: None });
        std::fs::write(cell.join("state.json"), br#"{"completed_steps":3,"history_bytes":10,"steps_bytes":20}"#)
            .unwrap();
        assert_eq!(state(cell), Progress { state: State::Interrupted, completed_steps: Some(3) });
        // results.json alone: the run died while writing its results.
        touch(cell, &["results.json"]);
        assert_eq!(state(cell).state, State::Interrupted);
        touch(cell, &["results.csv", "best_templates.txt"]);
        assert_eq!(state(cell), Progress { state: State::Finished, completed_steps: Some(3) });
        touch(cell, &[ERROR]);
        assert_eq!(state(cell).state, State::Failed);
        {
            let _held = lock(cell).unwrap().expect("the lock is free");
            assert_eq!(state(cell).state, State::Running);
            assert!(lock(cell).unwrap().is_none(), "a second holder must be refused");
        }
        assert_eq!(state(cell).state, State::Failed, "the lock is let go when dropped");
        std::fs::write(cell.join("state.json"), b"{\"compl").unwrap();
        assert!(progress(cell).unwrap_err().to_string().contains("state.json is damaged"));
    }

    #[test]
    fn links_among_the_sweep_s_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path().join("cell");
        std::fs::create_dir(&cell).unwrap();
        let target = dir.path().join("elsewhere");
        for name in [LOG, LOCK, ERROR, run_dir::STATE] {
            std::os::unix::fs::symlink(&target, cell.join(name)).unwrap();
            let e = progress(&cell).unwrap_err().to_string();
            assert!(e.contains(&format!("{} is a symbolic link", cell.join(name).display())), "{name}: {e}");
            std::fs::remove_file(cell.join(name)).unwrap();
        }
        std::os::unix::fs::symlink(&target, cell.join(LOCK)).unwrap();
        assert!(format!("{:#}", lock(&cell).err().unwrap()).contains("is a symbolic link"));
        assert!(!target.exists(), "nothing is created through a dangling link");
    }

    #[test]
    fn a_cell_config_is_written_once_and_must_not_change() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path().join("clip/dtd/seed1");
        let config: toml::Table = toml::from_str("seed = 1\nsteps = 4\n").unwrap();
        let cpu: toml::Table = toml::from_str("device = \"cpu\"\n").unwrap();
        let path = write_config(&cell, Path::new("plan.toml"), "clip/dtd/seed1", &config, &cpu).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Cell clip/dtd/seed1 of the sweep planned in plan.toml.\n"), "{text}");
        let read: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(read["out"].as_str(), Some(cell.to_str().unwrap()));
        assert_eq!((read["seed"].as_integer(), read["steps"].as_integer()), (Some(1), Some(4)));
        write_config(&cell, Path::new("plan.toml"), "clip/dtd/seed1", &config, &cpu).unwrap();
        let changed: toml::Table = toml::from_str("seed = 1\nsteps = 5\n").unwrap();
        let e = write_config(&cell, Path::new("plan.toml"), "clip/dtd/seed1", &changed, &cpu).unwrap_err().to_string();
        assert!(e.contains("cell clip/dtd/seed1") && e.contains("steps: 4 there, 5 in the plan"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "a refused plan leaves the file as it was");
        // Another device is not another plan: the cell runs where this sweep runs it.
        let cuda: toml::Table = toml::from_str("device = \"cuda:0\"\nkernels = \"plain\"\n").unwrap();
        write_config(&cell, Path::new("plan.toml"), "clip/dtd/seed1", &config, &cuda).unwrap();
        let read: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!((read["device"].as_str(), read["kernels"].as_str()), (Some("cuda:0"), Some("plain")));
        assert_eq!(read["steps"].as_integer(), Some(4));
    }
}
