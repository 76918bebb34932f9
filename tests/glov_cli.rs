//! `glov-cuda optimize` end to end on the tiny example models (`examples/tiny.toml`): the run directory and the
//! report, a run killed (SIGKILL) at several moments and resumed equal to an uninterrupted one, resuming from before
//! the baseline and from before the results, Ctrl-C, the refusals, and the meta-prompt file.
//!
//! Every run happens in its own temporary directory, from the repository root (the paths of the example config are
//! relative to it), without the image-feature cache (`GLOV_CUDA_CACHE` points into the temporary directory, and the
//! tests check that nothing appears there). Unix only: the tests send signals.

#![cfg(unix)]

use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_glov-cuda");
const CLIP: &str = "tests/fixtures/clip-tiny-quickgelu";
const LLM: &str = "examples/tiny-llm";
const DATASET: &str = "examples/tiny-dataset";
const BASELINE: &str = "a photo of a {}.";
/// How long a test waits for a spawned run to reach a step, or to end after a signal.
const PATIENCE: Duration = Duration::from_secs(60);

/// A temporary directory for one test's runs and its (unused) feature cache.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("a temporary directory") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cache(&self) -> PathBuf {
        self.path("feature-cache")
    }

    /// The binary with `args`, run from the repository root.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("GLOV_CUDA_CACHE", self.cache())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the glov-cuda binary runs")
    }

    /// `optimize` on the tiny example config into `out`, with `extra` flags.
    fn optimize(&self, out: &Path, extra: &[&str]) -> Output {
        self.run(&optimize_args(out, extra))
    }

    /// The same, and it must succeed.
    fn optimize_ok(&self, out: &Path, extra: &[&str]) -> Output {
        let output = self.optimize(out, extra);
        assert_success(&output, &format!("optimize {extra:?}"));
        output
    }

    /// A 30-step run into `out`, in the background (stderr kept for the tests to read).
    fn spawn_thirty_steps(&self, out: &Path) -> Child {
        self.command(&optimize_args(out, &["--steps", "30"]))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the glov-cuda binary starts")
    }

    fn assert_no_cache_written(&self) {
        assert!(!self.cache().exists(), "a run with --no-cache wrote the feature cache {}", self.cache().display());
    }
}

fn optimize_args<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let out = out.to_str().expect("a UTF-8 temporary path");
    let mut args = vec!["optimize", "--config", "examples/tiny.toml", "--no-cache", "--out", out, "-q"];
    args.extend(extra);
    args
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// The command failed with exit code 1, with a message (not a panic) holding every one of `needles`.
fn assert_refused(output: &Output, needles: &[&str], what: &str) -> String {
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{what} should fail with exit code 1; stderr:\n{err}");
    assert!(!err.contains("panicked"), "{what} panicked:\n{err}");
    for needle in needles {
        assert!(err.contains(needle), "{what}: expected {needle:?} in the error:\n{err}");
    }
    err
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&read(path)).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn jsonl(path: &Path) -> Vec<Value> {
    text(&read(path))
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{} line {}: {e}: {line}", path.display(), i + 1))
        })
        .collect()
}

/// Every file of a folder (not recursive) and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name().to_string_lossy().into_owned(), read(&entry.path()))
        })
        .collect()
}

fn file_names(dir: &Path) -> Vec<String> {
    snapshot(dir).into_keys().collect()
}

/// `completed_steps` of a run's state.json; `None` while there is none. The file is replaced atomically, so a
/// reader never sees a part of it.
fn completed_steps(run: &Path) -> Option<usize> {
    let path = run.join("state.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let state: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!("state.json read while the run writes it is not JSON ({e}): {}", text(&bytes))
            });
            Some(state["completed_steps"].as_u64().expect("completed_steps") as usize)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

fn end(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `run`'s state.json until `at_least` steps are complete; returns the count seen.
fn wait_for_steps(child: &mut Child, run: &Path, at_least: usize) -> usize {
    let start = Instant::now();
    loop {
        if let Some(done) = completed_steps(run)
            && done >= at_least
        {
            return done;
        }
        if let Some(status) = child.try_wait().expect("the run's status") {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            panic!(
                "the run ended ({status}) before completing {at_least} steps (seen {:?}):\n{err}",
                completed_steps(run)
            );
        }
        if start.elapsed() > PATIENCE {
            end(child);
            panic!(
                "the run did not complete {at_least} steps within {PATIENCE:?} (seen {:?}); raise the patience or lower \
                 the step count",
                completed_steps(run)
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits for a signalled child to end, killing it (and failing) after [`PATIENCE`].
fn wait_with_patience(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("the run's status") {
            return status;
        }
        if start.elapsed() > PATIENCE {
            end(child);
            panic!("the run did not end within {PATIENCE:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A steps.jsonl line without its timings, the only fields a resumed run may write differently.
fn without_timings(mut line: Value) -> Value {
    let object = line.as_object_mut().expect("a steps.jsonl line is an object");
    for key in ["generate_seconds", "score_seconds"] {
        assert!(object.remove(key).is_some_and(|v| v.is_f64()), "steps.jsonl line without {key}: {object:?}");
    }
    line
}

/// Run `b` wrote what the uninterrupted run `a` wrote.
fn assert_same_run(a: &Path, b: &Path, what: &str) {
    for name in ["config.json", "history.jsonl", "results.json", "results.csv", "best_templates.txt"] {
        let (x, y) = (read(&a.join(name)), read(&b.join(name)));
        assert!(
            x == y,
            "{what}: {name} differs from the uninterrupted run's:\n--- uninterrupted\n{}\n--- {what}\n{}",
            text(&x),
            text(&y)
        );
    }
    // state.json records the byte length of steps.jsonl, whose timings differ in length from run to run.
    let (x, y) = (json(&a.join("state.json")), json(&b.join("state.json")));
    assert_eq!(x["completed_steps"], y["completed_steps"], "{what}: state.json");
    assert_eq!(x["history_bytes"], y["history_bytes"], "{what}: state.json");
    assert_eq!(y["steps_bytes"], read(&b.join("steps.jsonl")).len(), "{what}: state.json");
    let (x, y) = (jsonl(&a.join("steps.jsonl")), jsonl(&b.join("steps.jsonl")));
    assert_eq!(x.len(), y.len(), "{what}: steps.jsonl line count");
    for (i, (x, y)) in x.into_iter().zip(y).enumerate() {
        assert_eq!(without_timings(x), without_timings(y), "{what}: steps.jsonl line {}", i + 1);
    }
}

fn is_hex_checksum(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn as_alpha(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("alpha {value} is not a number"))
}

fn assert_accuracy(value: &Value, what: &str) -> f64 {
    let accuracy = value.as_f64().unwrap_or_else(|| panic!("{what}: {value} is not a number"));
    assert!((0.0..=100.0).contains(&accuracy), "{what}: accuracy {accuracy} is not a percentage");
    accuracy
}

#[test]
fn a_three_step_run_writes_its_directory_and_report() {
    let sandbox = Sandbox::new();
    let run = sandbox.path("run");
    let output = sandbox.optimize_ok(&run, &["--steps", "3", "--alphas", "1,0"]);
    sandbox.assert_no_cache_written();

    // The summary table.
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("GLOV on tiny shapes after 3 steps")), "no title line:\n{stdout}");
    let first_word = |word: &str| lines.iter().filter(|l| l.split_whitespace().next() == Some(word)).count();
    assert_eq!(first_word("baseline"), 1, "baseline row:\n{stdout}");
    assert_eq!(first_word("1*"), 1, "row of alpha 1, chosen:\n{stdout}");
    assert_eq!(first_word("0"), 1, "row of alpha 0:\n{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("chosen alpha (*): 1;")), "chosen alpha line:\n{stdout}");
    assert!(stdout.contains(&format!("run directory: {}", run.display())), "{stdout}");

    // Exactly the files of a finished run, no temporary file left behind.
    let mut want = vec![
        "best_templates.txt",
        "config.json",
        "history.jsonl",
        "plot.png",
        "results.csv",
        "results.json",
        "state.json",
        "steps.jsonl",
    ];
    want.sort_unstable();
    assert_eq!(file_names(&run), want);
    assert!(read(&run.join("plot.png")).starts_with(b"\x89PNG\r\n\x1a\n"), "plot.png is not a PNG");

    // config.json: the settings, flags over the file, and the model checksums.
    let config = json(&run.join("config.json"));
    let settings = &config["settings"];
    assert_eq!(settings["steps"], 3);
    assert_eq!(settings["samples"], 8);
    assert_eq!(settings["alphas"], serde_json::json!([1.0, 0.0]));
    assert_eq!(settings["no-cache"], true);
    assert_eq!(settings["dataset-name"], "tiny shapes");
    for (key, dir) in [("llm", LLM), ("clip", CLIP)] {
        assert!(is_hex_checksum(&config[key]["checksum"]), "{key} checksum: {}", config[key]);
        let recorded = PathBuf::from(config[key]["dir"].as_str().unwrap());
        assert!(recorded.is_absolute() && recorded.ends_with(dir), "{key} dir: {}", recorded.display());
    }
    assert_eq!(config["images"]["classes"], 5);

    // state.json: three steps owning the whole of both JSONL files.
    let state = json(&run.join("state.json"));
    assert_eq!(state["completed_steps"], 3);
    assert_eq!(state["history_bytes"], read(&run.join("history.jsonl")).len());
    assert_eq!(state["steps_bytes"], read(&run.join("steps.jsonl")).len());

    // history.jsonl: the baseline of each alpha, then the templates of the steps in order.
    let history = jsonl(&run.join("history.jsonl"));
    assert!(history.len() >= 2, "history.jsonl has {} lines", history.len());
    for (line, alpha) in history.iter().zip([1.0, 0.0]) {
        assert_eq!(line["step"], Value::Null, "baseline line: {line}");
        assert_eq!(as_alpha(&line["alpha"]), alpha, "baseline line: {line}");
        assert_eq!(line["template"], BASELINE, "baseline line: {line}");
        assert_eq!(line["raw"], Value::Null, "baseline line: {line}");
        assert_accuracy(&line["train_accuracy"], "baseline");
    }
    assert_eq!(history[0]["train_accuracy"], history[1]["train_accuracy"]);
    let mut seen = HashSet::new();
    let mut last_step = 0;
    let mut new_per_step: BTreeMap<(u64, String), usize> = BTreeMap::new();
    for (i, line) in history.iter().enumerate() {
        let alpha = as_alpha(&line["alpha"]);
        assert!(alpha == 1.0 || alpha == 0.0, "line {}: alpha {alpha}", i + 1);
        let template = line["template"].as_str().expect("a template");
        assert!(seen.insert((alpha.to_bits(), template.to_string())), "line {}: ({alpha}, {template:?}) again", i + 1);
        assert_accuracy(&line["train_accuracy"], &format!("history line {}", i + 1));
        if i < 2 {
            continue;
        }
        let step = line["step"].as_u64().unwrap_or_else(|| panic!("line {}: step {}", i + 1, line["step"]));
        assert!(step < 3 && step >= last_step, "line {}: step {step} after step {last_step}", i + 1);
        last_step = step;
        assert!(template.contains("{}"), "line {}: template {template:?} has no slot", i + 1);
        assert!(line["raw"].as_str().is_some_and(|raw| !raw.is_empty()), "line {}: raw answer {}", i + 1, line["raw"]);
        *new_per_step.entry((step, alpha.to_string())).or_default() += 1;
    }

    // steps.jsonl: one line per step and alpha, every answer accounted for.
    let steps = jsonl(&run.join("steps.jsonl"));
    assert_eq!(steps.len(), 3 * 2, "steps.jsonl lines");
    for (i, line) in steps.iter().enumerate() {
        let (step, alpha) = (i as u64 / 2, [1.0, 0.0][i % 2]);
        assert_eq!(line["step"], step, "steps.jsonl line {}", i + 1);
        assert_eq!(as_alpha(&line["alpha"]), alpha, "steps.jsonl line {}", i + 1);
        let count = |key: &str| line[key].as_u64().unwrap_or_else(|| panic!("steps.jsonl line {}: {key}", i + 1));
        assert_eq!(count("answers"), 8, "steps.jsonl line {}", i + 1);
        assert_eq!(
            count("new_templates") + count("rejected") + count("duplicates"),
            8,
            "steps.jsonl line {}: {line}",
            i + 1
        );
        let new = new_per_step.get(&(step, alpha.to_string())).copied().unwrap_or(0);
        assert_eq!(count("new_templates") as usize, new, "steps.jsonl line {}: history.jsonl has {new}", i + 1);
        let ensemble = line["ensemble"].as_array().expect("ensemble");
        assert_eq!(ensemble.is_empty(), line["ensemble_val_accuracy"].is_null(), "steps.jsonl line {}", i + 1);
        assert!(ensemble.len() <= 3, "steps.jsonl line {}", i + 1);
        assert!(line["best_template"].as_str().is_some_and(|t| t.contains("{}")), "steps.jsonl line {}", i + 1);
        if alpha == 0.0 {
            assert_eq!(line["guidance"], false, "alpha 0 is never steered: {line}");
        }
    }

    // results.json: alpha 1 is the only guided one, so it is chosen; alpha 0 gives the result without guidance.
    let results = json(&run.join("results.json"));
    assert_eq!(results["steps"], 3);
    assert_eq!(results["dataset"], "tiny shapes");
    assert_eq!(results["baseline"]["template"], BASELINE);
    assert_eq!(as_alpha(&results["chosen_alpha"]), 1.0);
    let trajectories = results["trajectories"].as_array().expect("trajectories");
    assert_eq!(trajectories.len(), 2);
    let (guided, unguided) = (&trajectories[0], &trajectories[1]);
    assert_eq!((as_alpha(&guided["alpha"]), as_alpha(&unguided["alpha"])), (1.0, 0.0));
    assert_eq!(results["test_accuracy"], guided["ensemble_test_accuracy"]);
    assert_eq!(results["final_ensemble"], guided["ensemble"]);
    let without = assert_accuracy(&results["test_accuracy_without_guidance"], "without guidance");
    assert_eq!(without, assert_accuracy(&unguided["ensemble_test_accuracy"], "alpha 0 test"));
    let test_accuracy = assert_accuracy(&results["test_accuracy"], "test");
    let csv = text(&read(&run.join("results.csv")));
    assert_eq!(csv.lines().count(), 1 + 1 + 2, "results.csv: header, baseline and two alphas:\n{csv}");
    assert!(csv.starts_with("alpha,chosen,"), "{csv}");

    // best_templates.txt is a templates file for `score`, whose ensemble on the test split is the result.
    let final_ensemble: Vec<&str> =
        results["final_ensemble"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let best = run.join("best_templates.txt");
    assert_eq!(text(&read(&best)).lines().collect::<Vec<_>>(), final_ensemble);
    let best = best.to_str().unwrap();
    let scored = sandbox.run(&[
        "score",
        "--clip",
        CLIP,
        "--dataset",
        DATASET,
        "--split",
        "test",
        "--templates",
        best,
        "--ensemble",
        "--no-cache",
        "--format",
        "json",
    ]);
    assert_success(&scored, "score best_templates.txt");
    let report: Value = serde_json::from_slice(&scored.stdout).expect("score --format json");
    assert_eq!(report["templates"].as_array().unwrap().len(), final_ensemble.len());
    let top1 = report["ensemble"]["top1"].as_f64().expect("the ensemble's top-1");
    assert!((top1 - test_accuracy).abs() < 1e-9, "score says {top1}, results.json {test_accuracy}");
    sandbox.assert_no_cache_written();
}

/// Runs B until `kill_after` steps are complete (waiting `delay` more), kills it with SIGKILL, resumes it with
/// `--out B --resume` alone, and compares it with the uninterrupted run `a`. With `torn`, the killed run is made to
/// look as if it died in the middle of writing a step's lines (half a line past the last completed step in both
/// JSONL files, and a stray temporary file of an atomic write).
fn kill_and_resume(sandbox: &Sandbox, a: &Path, kill_after: usize, delay: Duration, torn: bool) {
    let what = format!("killed after {kill_after} steps (+{delay:?}{}) and resumed", if torn { ", torn" } else { "" });
    let b = sandbox.path(&format!("killed-{kill_after}"));
    let mut child = sandbox.spawn_thirty_steps(&b);
    wait_for_steps(&mut child, &b, kill_after);
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("the killed run's status");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{what}: the run ended before it was killed ({status})");
    let done = completed_steps(&b).expect("state.json");
    assert!((kill_after..30).contains(&done), "{what}: {done} steps complete");
    assert!(!b.join("results.json").exists(), "{what}: the run finished before it was killed");
    if torn {
        for name in ["history.jsonl", "steps.jsonl"] {
            let mut file = std::fs::OpenOptions::new().append(true).open(b.join(name)).unwrap();
            file.write_all(format!("{{\"step\":{done},\"alpha\":1.0,\"templ").as_bytes()).unwrap();
        }
        std::fs::write(b.join(".tmpXq3Zr9"), b"{\"completed_st").unwrap();
    }

    let b_str = b.to_str().unwrap();
    let resumed = sandbox.run(&["optimize", "--out", b_str, "--resume"]);
    assert_success(&resumed, &what);
    if torn {
        let err = text(&resumed.stderr);
        assert!(err.contains("cutting off an incomplete step"), "{what}: the torn lines were not cut off:\n{err}");
    }
    assert!(text(&resumed.stdout).contains("GLOV on tiny shapes after 30 steps"), "{}", text(&resumed.stdout));
    assert_same_run(a, &b, &what);
}

#[test]
fn a_killed_run_resumes_to_what_an_uninterrupted_run_writes() {
    let sandbox = Sandbox::new();
    let a = sandbox.path("uninterrupted");
    sandbox.optimize_ok(&a, &["--steps", "30"]);
    assert_eq!(completed_steps(&a), Some(30));
    let guided = jsonl(&a.join("steps.jsonl")).iter().any(|s| s["guidance"] == true && s["step"].as_u64() < Some(7));
    assert!(guided, "guidance should be on before step 7, so that resuming has to rebuild the offsets");
    // Right after a step was saved (before guidance starts); during a guided step, and with a step's lines
    // half-written; and right after a saved step again.
    kill_and_resume(&sandbox, &a, 1, Duration::ZERO, false);
    kill_and_resume(&sandbox, &a, 7, Duration::from_millis(40), true);
    kill_and_resume(&sandbox, &a, 15, Duration::ZERO, false);
    sandbox.assert_no_cache_written();
}

#[test]
fn ctrl_c_stops_after_a_step_and_the_run_resumes() {
    let sandbox = Sandbox::new();
    let b = sandbox.path("interrupted");
    let mut child = sandbox.spawn_thirty_steps(&b);
    let seen = wait_for_steps(&mut child, &b, 2);
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) with the pid of our own child, not yet reaped, and a valid signal number.
    let sent = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(sent, 0, "kill(SIGINT) failed: {}", std::io::Error::last_os_error());
    let status = wait_with_patience(&mut child);
    let mut err = String::new();
    child.stderr.take().expect("piped stderr").read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(130), "exit status after Ctrl-C: {status}; stderr:\n{err}");
    assert!(err.contains("--resume") && err.contains(b.to_str().unwrap()), "stderr after Ctrl-C:\n{err}");
    assert!(!err.contains("panicked"), "{err}");

    let done = completed_steps(&b).expect("state.json");
    assert!((seen..30).contains(&done), "{done} steps complete after Ctrl-C (seen {seen} before it)");
    let steps = jsonl(&b.join("steps.jsonl"));
    assert_eq!(steps.len(), done * 3, "steps.jsonl holds {} lines for {done} steps of 3 alphas", steps.len());
    assert!(steps.iter().all(|s| s["step"].as_u64().is_some_and(|step| (step as usize) < done)));
    let state = json(&b.join("state.json"));
    assert_eq!(state["history_bytes"], read(&b.join("history.jsonl")).len(), "history.jsonl past its last step");
    assert!(!b.join("results.json").exists(), "an interrupted run wrote results.json");
    assert!(err.contains(&format!("after step {done} of 30")), "stderr after Ctrl-C:\n{err}");

    let resumed = sandbox.run(&["optimize", "--out", b.to_str().unwrap(), "--resume"]);
    assert_success(&resumed, "the resumed run");
    let a = sandbox.path("uninterrupted");
    sandbox.optimize_ok(&a, &["--steps", "30"]);
    assert_eq!(read(&a.join("history.jsonl")), read(&b.join("history.jsonl")), "history.jsonl");
    assert_same_run(&a, &b, "interrupted by Ctrl-C and resumed");
    sandbox.assert_no_cache_written();
}

#[test]
fn a_run_resumes_from_before_its_baseline_and_from_before_its_results() {
    let sandbox = Sandbox::new();
    let a = sandbox.path("uninterrupted");
    let stdout = text(&sandbox.optimize_ok(&a, &["--steps", "3", "--alphas", "1,0"]).stdout);

    // Killed right after writing config.json: the run starts from its baseline.
    let b = sandbox.path("config-only");
    std::fs::create_dir(&b).unwrap();
    std::fs::copy(a.join("config.json"), b.join("config.json")).unwrap();
    let resumed = sandbox.run(&["optimize", "--out", b.to_str().unwrap(), "--resume"]);
    assert_success(&resumed, "resuming a run that has only its config.json");
    assert_same_run(&a, &b, "resumed from its config.json alone");

    // Killed after its last step, before the results: resuming writes them, and prints the same summary.
    let c = sandbox.path("no-results");
    std::fs::create_dir(&c).unwrap();
    for name in ["config.json", "history.jsonl", "steps.jsonl", "state.json"] {
        std::fs::copy(a.join(name), c.join(name)).unwrap();
    }
    let resumed = sandbox.run(&["optimize", "--out", c.to_str().unwrap(), "--resume"]);
    assert_success(&resumed, "resuming a run whose steps are all complete");
    assert_eq!(text(&resumed.stdout).replace(c.to_str().unwrap(), "RUN"), stdout.replace(a.to_str().unwrap(), "RUN"));
    assert_same_run(&a, &c, "resumed after its last step");
    for name in ["history.jsonl", "steps.jsonl", "state.json"] {
        assert_eq!(read(&a.join(name)), read(&c.join(name)), "{name} of a finished run changed on resume");
    }
    sandbox.assert_no_cache_written();
}

#[test]
fn refusals_leave_the_run_directory_alone() {
    let sandbox = Sandbox::new();
    let run = sandbox.path("run");
    let run_str = run.to_str().unwrap();
    sandbox.optimize_ok(&run, &["--steps", "3", "--alphas", "1,0"]);
    let before = snapshot(&run);

    // Starting again into a run.
    let out = sandbox.optimize(&run, &["--steps", "3", "--alphas", "1,0"]);
    assert_refused(&out, &["already holds a run", "--resume"], "a second start into the run");
    assert!(snapshot(&run) == before, "a refused start changed the run directory");

    // Resuming with another step count.
    let out = sandbox.run(&["optimize", "--out", run_str, "--resume", "--steps", "5"]);
    let err = assert_refused(&out, &["steps"], "--resume --steps 5 on a 3-step run");
    let line = err.lines().find(|l| l.contains("steps:")).unwrap_or_else(|| panic!("no line on steps in:\n{err}"));
    assert!(line.contains('3') && line.contains('5'), "the steps line names neither value: {line}");
    assert!(snapshot(&run) == before, "a refused resume changed the run directory");

    // Resuming in a folder without a run, empty or missing.
    let empty = sandbox.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = sandbox.run(&["optimize", "--out", empty.to_str().unwrap(), "--resume"]);
    assert_refused(&out, &["holds no run"], "--resume on an empty folder");
    assert!(file_names(&empty).is_empty(), "a refused resume wrote into the empty folder: {:?}", file_names(&empty));
    let missing = sandbox.path("missing");
    let out = sandbox.run(&["optimize", "--out", missing.to_str().unwrap(), "--resume"]);
    assert_refused(&out, &["holds no run"], "--resume on a missing folder");
    assert!(!missing.exists(), "a refused resume created {}", missing.display());

    // No --dataset-name (no config file).
    let fresh = sandbox.path("fresh");
    let fresh_str = fresh.to_str().unwrap();
    let flags = ["optimize", "--llm", LLM, "--clip", CLIP, "--dataset", DATASET, "--no-cache", "--out", fresh_str];
    let out = sandbox.run(&flags);
    assert_refused(&out, &["--dataset-name"], "no --dataset-name");
    assert!(!fresh.exists(), "a refused start created {}", fresh.display());

    // A dataset name without a built-in description, and no --description.
    let out = sandbox.run(&[&flags[..], &["--dataset-name", "tiny shapes"]].concat());
    assert_refused(&out, &["--description", "tiny shapes"], "an unknown dataset without --description");
    assert!(!fresh.exists(), "a refused start created {}", fresh.display());

    // An unknown key in a config file.
    let config = sandbox.path("bad.toml");
    let tiny = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tiny.toml")).unwrap();
    std::fs::write(&config, format!("{tiny}stepz = 3\n")).unwrap();
    let config_str = config.to_str().unwrap();
    let out = sandbox.run(&["optimize", "--config", config_str, "--out", fresh_str]);
    assert_refused(&out, &["stepz", config_str], "an unknown key in the config file");
    assert!(!fresh.exists(), "a refused start created {}", fresh.display());
    sandbox.assert_no_cache_written();
}

#[test]
fn the_meta_prompt_prints_and_its_variables_are_checked() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["optimize", "--print-meta-prompt"]);
    assert_success(&out, "--print-meta-prompt");
    let meta = text(&out.stdout);
    assert!(meta.starts_with("[system]"), "{meta}");
    assert!(meta.contains("\n[user]\n") && meta.contains("{{ dataset_name }}"), "{meta}");

    let file = sandbox.path("meta.txt");
    std::fs::write(&file, "[system]\nYou write templates.\n[user]\nImages of {{ dataset_name }} and {{ foo }}.\n")
        .unwrap();
    let file_str = file.to_str().unwrap();
    let run = sandbox.path("run");
    let out = sandbox.optimize(&run, &["--meta-prompt", file_str]);
    assert_refused(&out, &["foo", file_str], "a meta-prompt with {{ foo }}");
    assert!(!run.exists(), "a refused start created {}", run.display());
}

#[test]
fn llm_opt_runs_with_its_meta_prompt_and_without_guidance() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["optimize", "--print-meta-prompt", "llm-opt"]);
    assert_success(&out, "--print-meta-prompt llm-opt");
    assert!(text(&out.stdout).contains("Here is the list of bad templates:"), "{}", text(&out.stdout));

    let run = sandbox.path("llm-opt");
    // The example config asks for three alphas: LLM-OPT has no guidance.
    let out = sandbox.optimize(&run, &["--method", "llm-opt"]);
    assert_refused(&out, &["llm-opt has no guidance"], "llm-opt with alphas 1, 0.5, 0");
    assert!(!run.exists(), "a refused start created {}", run.display());

    let out = sandbox.optimize_ok(&run, &["--method", "llm-opt", "--alphas", "0", "--steps", "2"]);
    assert!(text(&out.stdout).starts_with("LLM-OPT on tiny shapes after 2 steps"), "{}", text(&out.stdout));
    let config = json(&run.join("config.json"));
    assert_eq!(config["settings"]["method"], "llm-opt");
    assert_eq!(config["settings"]["top-bottom"], 3);
    assert!(config["meta_prompt"].as_str().unwrap().contains("Hi ChatGPT, I have two lists of templates"));
    let steps = jsonl(&run.join("steps.jsonl"));
    assert!(!steps.is_empty() && steps.iter().all(|s| as_alpha(&s["alpha"]) == 0.0), "{steps:?}");

    // Alone, it is a block of its own, named after its method.
    let out = sandbox.run(&["report", run.to_str().unwrap()]);
    assert_success(&out, "report");
    let report = text(&out.stdout);
    assert!(
        report.lines().any(|l| l.starts_with("dataset") && l.contains("LLM-OPT") && !l.contains("GLOV")),
        "{report}"
    );

    // Beside a GLOV run of the same settings but the method's, it is that block's LLM-OPT column.
    let glov = sandbox.path("glov");
    sandbox.optimize_ok(&glov, &["--steps", "2"]);
    let out = sandbox.run(&["report", sandbox.dir.path().to_str().unwrap(), "--format", "json"]);
    assert_success(&out, "report");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let blocks = report["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1, "{report}");
    let row = &blocks[0]["rows"][0];
    let llm_opt = json(&run.join("results.json"))["test_accuracy"].as_f64().unwrap();
    assert_eq!(row["llm_opt"]["values"], serde_json::json!([llm_opt]), "{row}");
    assert_eq!(row["llm_opt_runs"].as_array().unwrap().len(), 1);
    assert_eq!(blocks[0]["mean"]["llm_opt"].as_f64(), Some(llm_opt));
    let out = sandbox.run(&["report", sandbox.dir.path().to_str().unwrap()]);
    let table = text(&out.stdout);
    assert!(table.lines().any(|l| l.starts_with("dataset") && l.contains("LLM-OPT") && l.contains("GLOV")), "{table}");
}

#[test]
fn description_baselines_are_scored_with_the_run_s_llm_as_score_scores_them() {
    let sandbox = Sandbox::new();
    // The scoring fixture's dataset, on which descriptions and templates score apart (its classes as one split).
    let dataset = "tests/fixtures/scoring/dataset";
    let run = sandbox.path("baselines");
    let extra = ["--dataset", dataset, "--steps", "1", "--seed", "0", "--baselines", "waffle,cupl,dclip"];
    let out = sandbox.optimize_ok(&run, &extra);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("CuPL: ") && stdout.contains("WaffleCLIP: 15 pairs"), "{stdout}");
    let results = json(&run.join("results.json"));
    let d = &results["descriptions"];
    assert_eq!(json(&run.join("config.json"))["settings"]["baselines"], serde_json::json!(["waffle", "cupl", "dclip"]));

    let score = |extra: &[&str]| -> Value {
        let mut args = vec!["score", "--clip", CLIP, "--dataset", dataset, "--format", "json", "--no-cache"];
        args.extend(extra);
        let out = sandbox.run(&args);
        assert_success(&out, &format!("score {extra:?}"));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // CuPL: the descriptions file the run kept, scored by `score` with CuPL's aggregation.
    assert_eq!(d["cupl"]["file"], "descriptions-cupl.json");
    assert_eq!(d["cupl"]["classes_without_sentence"], serde_json::json!([]), "{d}");
    let cupl = run.join("descriptions-cupl.json");
    let written: BTreeMap<String, Vec<String>> = serde_json::from_slice(&read(&cupl)).unwrap();
    assert_eq!(written.len(), 6);
    assert_eq!(d["cupl"]["sentences"].as_u64(), Some(written.values().map(Vec::len).sum::<usize>() as u64));
    let scored = score(&["--descriptions", cupl.to_str().unwrap(), "--aggregate", "embedding"]);
    assert_eq!(d["cupl"]["test_accuracy"], scored["descriptions"]["accuracy"]["top1"], "{d}");
    // DCLIP: the random LLM writes no `- ` line, so every class falls back to the baseline template, whose one
    // sentence scores as the template does.
    let dclip = &d["dclip"];
    let fallen: Vec<String> = serde_json::from_value(dclip["classes_without_sentence"].clone()).unwrap();
    let dclip_file: BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&read(&run.join("descriptions-dclip.json"))).unwrap();
    let empty: Vec<String> = dclip_file.iter().filter(|(_, s)| s.is_empty()).map(|(c, _)| c.clone()).collect();
    assert_eq!(fallen, empty);
    if fallen.len() == 6 {
        assert_eq!(dclip["test_accuracy"], results["baseline"]["test_accuracy"], "{d}");
    }
    // Waffle: seed 0's runs are `score --waffle`'s.
    let waffle = score(&["--waffle", "15", "--waffle-runs", "7"]);
    assert_eq!(d["waffle"]["seeds"], serde_json::json!([0, 1, 2, 3, 4, 5, 6]));
    assert_eq!(d["waffle"]["test_accuracy"], waffle["waffle"]["mean"]["top1"], "{d}");
    assert_eq!(d["waffle"]["std"], waffle["waffle"]["std"]["top1"], "{d}");

    // The report shows them as columns.
    let out = sandbox.run(&["report", run.to_str().unwrap()]);
    assert_success(&out, "report");
    let table = text(&out.stdout);
    let header = table.lines().find(|l| l.starts_with("dataset") && l.contains("GLOV")).expect("a header");
    let columns: Vec<&str> = header.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(columns, ["dataset", "runs", "baseline", "CuPL", "DCLIP", "Waffle", "GLOV alpha=0", "GLOV", "gain"]);

    // A baseline named twice, or one that does not exist, is refused before anything runs.
    let twice = sandbox.path("twice");
    let out = sandbox.optimize(&twice, &["--baselines", "cupl,cupl"]);
    assert_refused(&out, &["baselines: cupl is given twice"], "a baseline twice");
    let out = sandbox.optimize(&twice, &["--baselines", "clip"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
    assert!(err.contains("'clip'") && err.contains("cupl, dclip, waffle"), "{err}");
    assert!(!twice.exists());
}
