//! The command line as users of HF transformers, vLLM, llama.cpp and Slurm expect it, run as a user would: a config
//! file works from any directory, the device can sit in it, missing arguments are named at once, unknown keys get
//! "did you mean", selftest checks the GPU unless told otherwise, and --gpu-memory reads a fraction as vLLM does.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_glov-cuda");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn glov_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("GLOV_CUDA_CACHE", cwd.join("feature-cache"))
        .output()
        .expect("the binary runs")
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_quick_start_config_works_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{REPO}/examples/tiny.toml");
    let args = ["optimize", "--config", &config, "--out", "run", "--steps", "1", "--samples", "2"];
    let output = glov_in(dir.path(), &args);
    assert!(output.status.success(), "{}", describe(&output));
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run/config.json")).unwrap()).unwrap();
    let repo = Path::new(REPO);
    // The file's paths from the file's folder; --out from the working directory.
    assert_eq!(Path::new(stored["settings"]["llm"].as_str().unwrap()), repo.join("examples/tiny-llm"));
    assert_eq!(Path::new(stored["settings"]["dataset"].as_str().unwrap()), repo.join("examples/tiny-dataset"));
    assert_eq!(
        Path::new(stored["settings"]["clip"].as_str().unwrap()),
        repo.join("examples/../tests/fixtures/clip-tiny-quickgelu")
    );
    // Not on a terminal: one line per step in the log.
    let log = stderr(&output);
    assert!(log.contains("step 1/1: best a=1: ") && log.contains("tokens/s generating"), "{log}");
}

#[test]
fn every_missing_required_argument_is_named_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let output = glov_in(dir.path(), &["optimize"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert!(err.contains("--out, --llm, --clip, --dataset, --dataset-name are required"), "{err}");
    assert!(err.contains("out = ..., llm = ...") && err.contains("in --config"), "{err}");
    let output = glov_in(dir.path(), &["optimize", "--llm", "m", "--clip", "c", "--dataset", "d", "--out", "o"]);
    assert!(stderr(&output).contains("error: --dataset-name is required"), "{}", describe(&output));
    let help = glov_in(dir.path(), &["optimize", "--help"]);
    let usage = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(usage.contains("optimize --llm <MODEL> --clip <MODEL> --dataset <DIR> --dataset-name <NAME>"), "{usage}");
    assert!(usage.contains("Global options"), "global options apart from the command's: {usage}");
}

#[test]
fn config_keys_are_checked_as_flags_are() {
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        ("max_new_tokens = 3\n", "unknown setting \"max_new_tokens\"; did you mean max-new-tokens?"),
        ("devise = \"cpu\"\n", "did you mean device?"),
        ("device = \"tpu\"\n", "unknown device \"tpu\""),
        ("gpu-memory = 20\n", "a number alone is a fraction of the card's memory"),
    ] {
        std::fs::write(dir.path().join("c.toml"), text).unwrap();
        let output = glov_in(dir.path(), &["optimize", "--config", "c.toml", "--out", "o"]);
        assert_eq!(output.status.code(), Some(1), "{text}: {}", describe(&output));
        let err = stderr(&output);
        assert!(err.contains("config file c.toml") && err.contains(want), "{text}: {err}");
    }
    // The device a config file names is where the run computes.
    let config = format!("{REPO}/examples/tiny.toml");
    let with_device = format!("{}device = \"cuda:7\"\n", std::fs::read_to_string(&config).unwrap());
    let rebased = with_device
        .replace("\"tiny-llm\"", &format!("\"{REPO}/examples/tiny-llm\""))
        .replace("\"tiny-dataset\"", &format!("\"{REPO}/examples/tiny-dataset\""))
        .replace("\"../tests/", &format!("\"{REPO}/tests/"));
    std::fs::write(dir.path().join("c.toml"), rebased).unwrap();
    let output = glov_in(dir.path(), &["optimize", "--config", "c.toml", "--out", "o"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(stderr(&output).to_lowercase().contains("cuda"), "the run asked for the GPU: {}", describe(&output));
    let output =
        glov_in(dir.path(), &["--device", "cpu", "optimize", "--config", "c.toml", "--out", "o", "--steps", "1"]);
    assert!(output.status.success(), "a flag wins over the file: {}", describe(&output));
}

#[test]
fn selftest_checks_the_gpu_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let output = glov_in(dir.path(), &["selftest", "--quick"]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        assert!(stdout.starts_with("cuda:"), "a pass must come from the GPU: {}", describe(&output));
    } else {
        assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
        assert!(!stdout.contains("cases passed"), "{}", describe(&output));
        let err = stderr(&output);
        assert!(err.contains("selftest checks the CUDA backend") || err.contains("without CUDA kernels"), "{err}");
    }
    let output = glov_in(dir.path(), &["--device", "cpu", "selftest", "--quick"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(stderr(&output).contains("no CUDA kernel is checked"), "{}", describe(&output));
}

#[test]
fn gpu_memory_is_a_fraction_of_the_card_or_a_size_with_its_unit() {
    let dir = tempfile::tempdir().unwrap();
    for good in ["0.9", "20GiB", "512MiB"] {
        let output = glov_in(dir.path(), &["--gpu-memory", good, "selftest", "--list"]);
        assert!(output.status.success(), "{good}: {}", describe(&output));
    }
    for (bad, want) in [("20", "fraction"), ("20GB", "binary units"), ("0", "fraction"), ("lots", "neither")] {
        let output = glov_in(dir.path(), &["--gpu-memory", bad, "selftest", "--list"]);
        assert_eq!(output.status.code(), Some(2), "{bad}: {}", describe(&output));
        assert!(stderr(&output).contains(want), "{bad}: {}", describe(&output));
    }
}

#[test]
fn output_is_in_words_and_units_not_debug_formatting() {
    let dir = tempfile::tempdir().unwrap();
    let llama = format!("{REPO}/tests/fixtures/llm-tiny-llama");
    let output = glov_in(dir.path(), &["inspect", &llama]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(text.contains("Llama 3 scaling (factor 8,") && text.contains("tied embeddings: no"), "{text}");
    assert!(text.contains(" KiB\n") && !text.contains(" bytes\n  model-"), "{text}");
    for debug in ["None", "Some(", "{ factor", "Llama3 {"] {
        assert!(!text.contains(debug), "{debug:?} in\n{text}");
    }
    let clip = format!("{REPO}/tests/fixtures/clip-tiny-quickgelu");
    let output = glov_in(dir.path(), &["inspect", "--model", &clip, "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("inspect --format json");
    assert_eq!(json["sizes"]["text"]["activation"], "quick_gelu");
    let args = ["generate", "--llm", &llama, "--prompt", "a photo of", "-n", "2", "--max-new-tokens", "3"];
    let output = glov_in(dir.path(), &args);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(text.contains("--- sequence 0 (3 tokens, stopped at --max-new-tokens)"), "{}", describe(&output));

    // A folder in another format is told which formats are read.
    let open_clip = dir.path().join("open_clip_model");
    std::fs::create_dir(&open_clip).unwrap();
    std::fs::write(open_clip.join("open_clip_config.json"), "{}").unwrap();
    let output = glov_in(dir.path(), &["inspect", "open_clip_model"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert!(err.contains("has no config.json") && err.contains("open_clip") && err.contains("GGUF"), "{err}");
}
