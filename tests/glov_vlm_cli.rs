//! `glov-cuda optimize --vlm --matcher` end to end on the CPU with the tiny example (`examples/tiny-llava.toml`):
//! the questions' fitness is what `score --vlm` gives them, the run directory and report are the CLIP path's, and a
//! run killed at any moment resumes to what an uninterrupted run writes.

use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_glov-cuda");
const REFERENCE_START: &str =
    "Describe the category present in this image briefly and also identify the name of the category present.";

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env_remove("RUST_LOG").stdin(Stdio::null());
    command
}

fn run(args: &[&str]) -> Output {
    command(args).output().expect("the glov-cuda binary runs")
}

fn optimize_args<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--device",
        "cpu",
        "optimize",
        "--config",
        "examples/tiny-llava.toml",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    args.extend(extra);
    args
}

fn ok(output: Output, what: &str) -> Output {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_vlm_run_scores_questions_as_score_vlm_does_and_reports_the_best_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let stdout = String::from_utf8(ok(run(&optimize_args(&out, &[])), "optimize --vlm").stdout).unwrap();
    assert!(stdout.contains("GLOV on tiny shapes after 2 steps"), "{stdout}");
    assert!(stdout.contains("the best prompt alone, the reference's result: test accuracy"), "{stdout}");

    let config = json(&out.join("config.json"));
    assert!(config.get("clip").is_none(), "a VLM run has no CLIP model: {config}");
    for model in ["llm", "vlm", "matcher"] {
        assert_eq!(config[model]["checksum"].as_str().map(str::len), Some(64), "{model}: {config}");
    }
    assert_eq!(config["settings"]["top-bottom"], 3, "the path's default");
    let printed = ok(run(&["optimize", "--print-meta-prompt", "vlm"]), "--print-meta-prompt vlm").stdout;
    assert_eq!(config["meta_prompt"].as_str().unwrap(), String::from_utf8(printed).unwrap(), "the built-in one");
    assert!(config["meta_prompt"].as_str().unwrap().contains("vision-language model"));

    let history = jsonl(&out.join("history.jsonl"));
    assert_eq!(history[0]["template"], REFERENCE_START, "the reference's starting question");
    let questions: Vec<&str> = history.iter().map(|h| h["template"].as_str().unwrap()).collect();
    assert!(questions.len() > 2, "the tiny LLM's answers became questions: {questions:?}");

    // Every question's fitness is `score --vlm` on the run's 1-shot train images (seed 1).
    let mut distinct: Vec<&str> = Vec::new();
    for q in &questions {
        if !distinct.contains(q) {
            distinct.push(q);
        }
    }
    let prompts = dir.path().join("prompts.txt");
    std::fs::write(&prompts, distinct.join("\n") + "\n").unwrap();
    let scored = ok(
        run(&[
            "--device",
            "cpu",
            "score",
            "--vlm",
            "tests/fixtures/llava-tiny",
            "--matcher",
            "tests/fixtures/sentence/mpnet-mean",
            "--dataset",
            "examples/tiny-dataset",
            "--split",
            "train",
            "--shots",
            "1",
            "--max-new-tokens",
            "8",
            "--prompts",
            prompts.to_str().unwrap(),
            "--format",
            "json",
        ]),
        "score --vlm",
    );
    let scored: Value = serde_json::from_slice(&scored.stdout).unwrap();
    for row in scored["templates"].as_array().unwrap() {
        let prompt = row["template"].as_str().unwrap();
        let want = row["top1"].as_f64().unwrap();
        for h in history.iter().filter(|h| h["template"] == prompt) {
            assert_eq!(h["train_accuracy"].as_f64(), Some(want), "{prompt:?}");
        }
    }

    // With no memory for image features, every image is encoded again each time it is asked about: the same run.
    let recomputed = dir.path().join("recomputed");
    ok(run(&optimize_args(&recomputed, &["--vlm-feature-memory", "0"])), "optimize --vlm-feature-memory 0");
    for name in ["history.jsonl", "results.json"] {
        assert_eq!(std::fs::read(out.join(name)).unwrap(), std::fs::read(recomputed.join(name)).unwrap(), "{name}");
    }

    let results = json(&out.join("results.json"));
    assert!(results.get("template_set").is_none(), "no CLIP template set for a VLM: {results}");
    for t in results["trajectories"].as_array().unwrap() {
        let single = t["best_test_accuracy"].as_f64().expect("the best prompt alone on the test split");
        assert!((0.0..=100.0).contains(&single));
    }
}

/// Polls state.json until `at_least` steps are complete.
fn wait_for_steps(run: &Path, at_least: usize) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(bytes) = std::fs::read(run.join("state.json")) {
            let state: Value = serde_json::from_slice(&bytes).unwrap();
            if state["completed_steps"].as_u64() >= Some(at_least as u64) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the run did not complete {at_least} steps in 60 s");
}

#[test]
fn a_killed_vlm_run_resumes_to_what_an_uninterrupted_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("whole"), dir.path().join("killed"));
    ok(run(&optimize_args(&a, &["--steps", "12"])), "the uninterrupted run");
    let mut child = command(&optimize_args(&b, &["--steps", "12"])).stdout(Stdio::null()).spawn().unwrap();
    wait_for_steps(&b, 3);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "the run ended before it was killed");
    assert!(!b.join("results.json").exists());
    ok(run(&["--device", "cpu", "optimize", "--out", b.to_str().unwrap(), "--resume", "-q"]), "the resumed run");
    for name in ["config.json", "history.jsonl", "results.json", "results.csv", "best_templates.txt"] {
        assert_eq!(
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
            "{name} of the resumed run"
        );
    }
}

#[test]
fn a_vlm_run_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let cases: [(&[&str], &str); 4] = [
        (&["--matcher", ""], "--matcher is required"),
        (&["--clip", "tests/fixtures/clip-tiny-quickgelu"], "--clip and --vlm are two judges"),
        (&["--baselines", "cupl"], "a --vlm run has none"),
        (&["--method", "llm-opt", "--alphas", "0"], "a --vlm run is GLOV's"),
    ];
    for (extra, needle) in cases {
        let args: Vec<&str> = if extra[0] == "--matcher" {
            let flags = "--device cpu optimize --llm examples/tiny-llm --vlm tests/fixtures/llava-tiny --dataset \
                         examples/tiny-dataset --dataset-name shapes --out";
            flags.split_whitespace().chain([out.to_str().unwrap()]).collect()
        } else {
            optimize_args(&out, extra)
        };
        let output = run(&args);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && err.contains(needle), "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?}: a refused run left {}", out.display());
    }
}
