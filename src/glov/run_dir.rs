//! The run directory: what a run has done, kept so that it survives being killed at any moment.
//!
//! - `config.json`: the settings and everything else that fixes what the run computes (written once, atomically);
//! - `history.jsonl`: one line per scored template and trajectory (the baselines first);
//! - `steps.jsonl`: one line per step and trajectory;
//! - `state.json`: how many steps are complete and how many bytes of the two JSONL files they own.
//!
//! A step ends by appending its lines to both JSONL files, syncing them, and then replacing `state.json`
//! atomically. Bytes past the lengths `state.json` records belong to a step that did not complete: opening the
//! run cuts them off, so a resumed run continues from the last completed step and writes what an uninterrupted
//! run writes.
//!
//! Every file of the run is opened without following links and must be a regular file ([`crate::no_follow`]);
//! files replaced atomically are renamed over, which replaces a link rather than what it points to.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.json";
pub const HISTORY: &str = "history.jsonl";
pub const STEPS: &str = "steps.jsonl";
pub const STATE: &str = "state.json";
/// The files a run writes when its steps are done (and the plot, after each step), each replaced atomically.
pub const FINAL_FILES: [&str; 4] = ["results.json", "results.csv", "best_templates.txt", "plot.png"];

/// One scored template of one trajectory.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct HistoryRecord {
    /// The step that proposed it; null for the baseline.
    pub step: Option<usize>,
    pub alpha: f32,
    /// `{}` where the class name goes.
    pub template: String,
    /// Top-1 accuracy (percent) on the few-shot train set.
    pub train_accuracy: f64,
    /// The LLM's answer the template was parsed from; null for the baseline.
    pub raw: Option<String>,
}

/// One step of one trajectory.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct StepRecord {
    pub step: usize,
    pub alpha: f32,
    /// Answers sampled, templates new to this trajectory, answers without a template, and answers whose template
    /// the trajectory already had.
    pub answers: usize,
    pub new_templates: usize,
    pub rejected: usize,
    pub duplicates: usize,
    /// The best template of the trajectory so far and its train accuracy.
    pub best_template: String,
    pub best_train_accuracy: f64,
    /// The step's best templates, ensembled and evaluated on the validation split (empty, and no accuracy, when the
    /// step brought no new template).
    pub ensemble: Vec<String>,
    pub ensemble_val_accuracy: Option<f64>,
    /// Whether this step's generation was steered, and the norm of the offset.
    pub guidance: bool,
    pub offset_norm: Option<f64>,
    /// Seconds spent on the whole step's generation and on its scoring (one batch for all trajectories).
    pub generate_seconds: f64,
    pub score_seconds: f64,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
struct State {
    completed_steps: usize,
    history_bytes: u64,
    steps_bytes: u64,
}

#[derive(Debug)]
pub struct RunDir {
    dir: PathBuf,
    state: State,
}

/// What an existing run directory holds.
pub struct Resumed<C> {
    pub config: C,
    /// `None` when the run never completed its baseline.
    pub history: Vec<HistoryRecord>,
    pub steps: Vec<StepRecord>,
    pub completed_steps: usize,
}

fn append(path: &Path, lines: &[String]) -> Result<u64> {
    let mut file = crate::no_follow::open(path, OpenOptions::new().append(true).create(true))
        .with_context(|| format!("cannot open {} for appending", path.display()))?;
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(file.metadata()?.len())
}

/// A JSONL file of the run, checked against the length `state.json` records for it but not changed yet.
struct Checked<T> {
    path: PathBuf,
    /// Open for writing, with the recorded length, when it holds bytes past it (an incomplete step's).
    excess: Option<(File, u64)>,
    records: Vec<T>,
}

/// Parses the first `len` bytes of `path` (it must hold at least that many), without changing it. A missing file
/// holds nothing.
fn check_lines<T: DeserializeOwned>(path: &Path, len: u64) -> Result<Checked<T>> {
    let Some(file) = crate::no_follow::open_existing(path, OpenOptions::new().read(true).write(true))? else {
        if len > 0 {
            bail!(
                "{} is missing but the run's state.json records {len} bytes: the run directory is damaged",
                path.display()
            );
        }
        return Ok(Checked { path: path.to_path_buf(), excess: None, records: Vec::new() });
    };
    let actual = file.metadata().with_context(|| format!("cannot look at {}", path.display()))?.len();
    if actual < len {
        bail!(
            "{} has {actual} bytes but the run's state.json records {len}: the run directory is damaged",
            path.display()
        );
    }
    let mut records = Vec::new();
    for (i, line) in BufReader::new((&file).take(len)).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        records.push(serde_json::from_str(&line).with_context(|| format!("{} line {}", path.display(), i + 1))?);
    }
    Ok(Checked { path: path.to_path_buf(), excess: (actual > len).then_some((file, len)), records })
}

impl<T> Checked<T> {
    /// Cuts off the bytes past the recorded length.
    fn cut(self) -> Result<Vec<T>> {
        if let Some((file, len)) = self.excess {
            let path = self.path.display();
            let dropped_bytes = file.metadata().with_context(|| format!("cannot look at {path}"))?.len() - len;
            tracing::info!(file = %path, dropped_bytes, "cutting off an incomplete step");
            file.set_len(len).and_then(|()| file.sync_all()).with_context(|| format!("cannot truncate {path}"))?;
        }
        Ok(self.records)
    }
}

impl RunDir {
    /// Starts a new run in `dir` (created if needed); refuses a folder that already holds one.
    pub fn create<C: Serialize>(dir: &Path, config: &C) -> Result<Self> {
        if crate::no_follow::exists(&dir.join(CONFIG))? {
            bail!("{} already holds a run: continue it with --resume, or choose another --out", dir.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the run directory {}", dir.display()))?;
        for name in FINAL_FILES {
            crate::no_follow::exists(&dir.join(name))?;
        }
        for name in [HISTORY, STEPS, STATE] {
            if crate::no_follow::exists(&dir.join(name))? {
                bail!("{} holds {name} but no {CONFIG}: choose an empty or new --out", dir.display());
            }
        }
        crate::atomic_file::write(&dir.join(CONFIG), (serde_json::to_string_pretty(config)? + "\n").as_bytes())?;
        Ok(Self { dir: dir.to_path_buf(), state: State::default() })
    }

    /// Opens an existing run, cutting off anything an interrupted step left behind. Every file of the run must be
    /// a regular file (see [`crate::no_follow`]), and both JSONL files are checked against `state.json` and parsed
    /// before either is cut: a run directory that does not hold together is refused unchanged.
    pub fn open<C: DeserializeOwned>(dir: &Path) -> Result<(Self, Resumed<C>)> {
        for name in [HISTORY, STEPS].into_iter().chain(FINAL_FILES) {
            crate::no_follow::exists(&dir.join(name))?;
        }
        let config_path = dir.join(CONFIG);
        let Some(config) = crate::no_follow::read_to_string(&config_path)? else {
            bail!("{} holds no run ({CONFIG} is missing): start one without --resume", dir.display());
        };
        let config = serde_json::from_str(&config)
            .with_context(|| format!("{} is not a run configuration of this version", config_path.display()))?;
        let state_path = dir.join(STATE);
        let state: State = match crate::no_follow::read_to_string(&state_path)? {
            Some(text) => {
                serde_json::from_str(&text).with_context(|| format!("{} is damaged", state_path.display()))?
            }
            None => State::default(),
        };
        let history = check_lines(&dir.join(HISTORY), state.history_bytes)?;
        let steps = check_lines(&dir.join(STEPS), state.steps_bytes)?;
        let resumed =
            Resumed { config, history: history.cut()?, steps: steps.cut()?, completed_steps: state.completed_steps };
        Ok((Self { dir: dir.to_path_buf(), state }, resumed))
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn completed_steps(&self) -> usize {
        self.state.completed_steps
    }

    /// Makes the baseline lines durable (before the first step).
    pub fn commit_baseline(&mut self, history: &[HistoryRecord]) -> Result<()> {
        self.commit(history, &[], 0)
    }

    /// Makes one step durable: its lines first, then the state that owns them.
    pub fn commit_step(&mut self, history: &[HistoryRecord], steps: &[StepRecord]) -> Result<()> {
        self.commit(history, steps, 1)
    }

    fn commit(&mut self, history: &[HistoryRecord], steps: &[StepRecord], advance: usize) -> Result<()> {
        let lines = |v: Vec<Result<String, serde_json::Error>>| v.into_iter().collect::<Result<Vec<String>, _>>();
        let history_lines = lines(history.iter().map(serde_json::to_string).collect())?;
        let step_lines = lines(steps.iter().map(serde_json::to_string).collect())?;
        let state = State {
            completed_steps: self.state.completed_steps + advance,
            history_bytes: append(&self.dir.join(HISTORY), &history_lines)?,
            steps_bytes: append(&self.dir.join(STEPS), &step_lines)?,
        };
        crate::atomic_file::write(&self.dir.join(STATE), serde_json::to_string(&state)?.as_bytes())?;
        self.state = state;
        Ok(())
    }

    /// Writes a file of the run (results, plot) atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        crate::atomic_file::write(&self.dir.join(name), bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: Option<usize>, template: &str) -> HistoryRecord {
        HistoryRecord { step, alpha: 1.0, template: template.into(), train_accuracy: 12.5, raw: None }
    }

    #[test]
    fn an_incomplete_step_is_cut_off_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let run_path = dir.path().join("run");
        let mut run = RunDir::create(&run_path, &serde_json::json!({"x": 1})).unwrap();
        run.commit_baseline(&[record(None, "a {}")]).unwrap();
        run.commit_step(&[record(Some(0), "b {}")], &[]).unwrap();
        let whole = std::fs::read(run_path.join(HISTORY)).unwrap();
        // A step that appended its lines (one of them half) but died before state.json.
        let mut f = OpenOptions::new().append(true).open(run_path.join(HISTORY)).unwrap();
        f.write_all(b"{\"step\":1,\"alpha\":1.0,\"templ").unwrap();
        drop(f);
        let (run, resumed) = RunDir::open::<serde_json::Value>(&run_path).unwrap();
        assert_eq!(run.completed_steps(), 1);
        assert_eq!(resumed.history, vec![record(None, "a {}"), record(Some(0), "b {}")]);
        assert_eq!(std::fs::read(run_path.join(HISTORY)).unwrap(), whole);
        assert!(RunDir::create(&run_path, &serde_json::json!({})).unwrap_err().to_string().contains("--resume"));
    }

    #[test]
    fn nothing_is_cut_before_both_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = RunDir::create(dir.path(), &serde_json::json!({"x": 1})).unwrap();
        run.commit_baseline(&[record(None, "a {}")]).unwrap();
        let mut f = OpenOptions::new().append(true).open(dir.path().join(HISTORY)).unwrap();
        f.write_all(b"{\"step\":0,\"alp").unwrap();
        drop(f);
        let history = std::fs::read(dir.path().join(HISTORY)).unwrap();
        // steps.jsonl shorter than state.json records: refused, and history.jsonl keeps its incomplete step.
        let state = State { steps_bytes: 5, ..run.state };
        std::fs::write(dir.path().join(STATE), serde_json::to_string(&state).unwrap()).unwrap();
        let e = RunDir::open::<serde_json::Value>(dir.path()).err().unwrap().to_string();
        assert!(e.contains("steps.jsonl has 0 bytes but the run's state.json records 5"), "{e}");
        assert_eq!(std::fs::read(dir.path().join(HISTORY)).unwrap(), history);
    }

    #[test]
    fn files_behind_links_are_never_touched() {
        let dir = tempfile::tempdir().unwrap();
        let run_path = dir.path().join("run");
        let mut run = RunDir::create(&run_path, &serde_json::json!({"x": 1})).unwrap();
        run.commit_baseline(&[record(None, "a {}")]).unwrap();
        let outside = dir.path().join("outside.txt");
        let text = b"someone else's file, longer than the run's history records\n".repeat(4);
        std::fs::write(&outside, &text).unwrap();
        for name in [HISTORY, STEPS, STATE, CONFIG, "results.json", "plot.png"] {
            let path = run_path.join(name);
            let kept = std::fs::read(&path).ok();
            std::fs::remove_file(&path).ok();
            std::os::unix::fs::symlink(&outside, &path).unwrap();
            let e = RunDir::open::<serde_json::Value>(&run_path).err().unwrap().to_string();
            assert!(e.contains(&format!("{} is a symbolic link", path.display())), "{name}: {e}");
            std::fs::remove_file(&path).unwrap();
            if let Some(kept) = kept {
                std::fs::write(&path, kept).unwrap();
            }
        }
        assert_eq!(std::fs::read(&outside).unwrap(), text);
        // A dangling link where a step appends: refused, and its target is not created.
        let (mut run, _) = RunDir::open::<serde_json::Value>(&run_path).unwrap();
        let target = dir.path().join("created-elsewhere");
        std::fs::remove_file(run_path.join(STEPS)).unwrap();
        std::os::unix::fs::symlink(&target, run_path.join(STEPS)).unwrap();
        let e = format!("{:#}", run.commit_step(&[], &[]).unwrap_err());
        assert!(e.contains("steps.jsonl is a symbolic link"), "{e}");
        assert!(!target.exists());
    }

    #[test]
    fn a_run_killed_before_its_baseline_restarts_empty() {
        let dir = tempfile::tempdir().unwrap();
        RunDir::create(dir.path(), &serde_json::json!({"x": 1})).unwrap();
        std::fs::write(dir.path().join(HISTORY), b"{\"partial").unwrap();
        let (run, resumed) = RunDir::open::<serde_json::Value>(dir.path()).unwrap();
        assert_eq!((run.completed_steps(), resumed.history.len()), (0, 0));
        assert_eq!(std::fs::read(dir.path().join(HISTORY)).unwrap(), b"");
        let err = RunDir::open::<serde_json::Value>(&dir.path().join("none")).err().unwrap().to_string();
        assert!(err.contains("without --resume"), "{err}");
    }
}
