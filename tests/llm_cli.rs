//! The LLM commands end to end: `generate`, `probe llm` (against HF's recorded outputs), `steer-vector`, and the
//! errors for bad input.

mod common;

use common::{fixtures, max_row_relative_error, read_tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn glov(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glov-cuda"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the glov-cuda binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn llama() -> PathBuf {
    fixtures().join("llm-tiny-llama")
}

fn golden() -> Value {
    serde_json::from_str(&std::fs::read_to_string(llama().join("golden.json")).unwrap()).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

fn write_vector(path: &Path, values: &[f32]) {
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![values.len()], bytemuck::cast_slice(values))
            .unwrap();
    safetensors::serialize_to_file([("steer", view)], None, path).unwrap();
}

fn expect_error(args: &[&str], needle: &str) {
    let out = glov(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail: {}", stderr(&out));
    assert!(stderr(&out).contains(needle), "{args:?}: expected {needle:?} in: {}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn generate_greedy_follows_hf_until_a_stop_token() {
    let g = golden();
    let prompt = g["prompts"][0].as_str().unwrap();
    let model = llama().display().to_string();
    let out = glov(&[
        "generate",
        "--llm",
        &model,
        "--prompt",
        prompt,
        "--greedy",
        "--max-new-tokens",
        "12",
        "-n",
        "2",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: Vec<u64> = g["greedy"][0].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let stops: Vec<u64> = g["eos_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let end = want.iter().position(|t| stops.contains(t)).map_or(12, |i| (i + 1).min(12));
    for s in json["sequences"].as_array().unwrap() {
        let got: Vec<u64> = s["token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(got, want[..end].to_vec());
        assert_eq!(s["finish_reason"], if end < 12 || stops.contains(&want[11]) { "stop" } else { "length" });
    }
    assert!(json["kv_cache_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn generate_with_a_chat_template_and_steering() {
    let dir = tempfile::tempdir().unwrap();
    let vector = dir.path().join("v.safetensors");
    let model = llama().display().to_string();
    let out = glov(&[
        "steer-vector",
        "--llm",
        &model,
        "--positive",
        "a sharp photo",
        "--negative",
        "a blurry photo",
        "--layer",
        "1",
        "--alpha",
        "2",
        "-o",
        vector.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (shape, _) = read_tensor(&vector, "steer");
    assert_eq!(shape, vec![64]);
    // An existing vector is kept unless --force, as optimize keeps an existing run.
    let again = [
        "steer-vector",
        "--llm",
        &model,
        "--positive",
        "x",
        "--negative",
        "y",
        "--layer",
        "1",
        "--out",
        vector.to_str().unwrap(),
    ];
    let before = std::fs::read(&vector).unwrap();
    let out = glov(&again);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists") && stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&vector).unwrap(), before);
    assert!(glov(&[&again[..], &["--force"]].concat()).status.success());
    assert_ne!(std::fs::read(&vector).unwrap(), before);
    for cache in ["steered", "clean"] {
        let out = glov(&[
            "generate",
            "--llm",
            &model,
            "--system",
            "You write prompts.",
            "--user",
            "Write one.",
            "-n",
            "3",
            "--max-new-tokens",
            "6",
            "--seed",
            "4",
            "--steer",
            vector.to_str().unwrap(),
            "--steer-layer",
            "1",
            "--steer-cache",
            cache,
            "--format",
            "json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["sequences"].as_array().unwrap().len(), 3);
        // The rendered prompt starts with the template's BOS and header tokens.
        assert_eq!(json["prompt_token_ids"][0], 600);
        assert_eq!(json["prompt_token_ids"][1], 602);
    }
}

#[test]
fn probe_llm_matches_hf_with_and_without_steering() {
    let g = golden();
    let model = llama().display().to_string();
    let prompt = g["prompts"][1].as_str().unwrap();
    let tensors = llama().join("golden.safetensors");
    let (shape, logits) = read_tensor(&tensors, "last_logits");
    let (hshape, means) = read_tensor(&tensors, "hidden_mean");
    let out = glov(&["probe", "llm", "--model", &model, "--prompt", prompt, "--layer", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let floats = |v: &Value| -> Vec<f32> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect() };
    let v = shape[1];
    assert!(max_row_relative_error(&floats(&json["last_logits"]), &logits[v..2 * v], v) < 1e-4);
    let h = hshape[1];
    assert!(max_row_relative_error(&floats(&json["hidden_mean"]), &means[h..2 * h], h) < 1e-4);

    let dir = tempfile::tempdir().unwrap();
    let vector = dir.path().join("steer.safetensors");
    write_vector(&vector, &read_tensor(&tensors, "steer").1);
    let (_, steered) = read_tensor(&tensors, "steered_last_logits");
    let out = glov(&[
        "probe",
        "llm",
        "--model",
        &model,
        "--prompt",
        prompt,
        "--steer",
        vector.to_str().unwrap(),
        "--steer-layer",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(max_row_relative_error(&floats(&json["last_logits"]), &steered[v..2 * v], v) < 1e-4);
    assert!(json["hidden_mean"].is_null());
}

#[test]
fn bad_llm_input_gets_clear_errors() {
    let model = llama().display().to_string();
    expect_error(
        &["generate", "--llm", &model, "--prompt", "a photo", "--max-new-tokens", "600"],
        "context of 512 tokens",
    );

    let dir = tempfile::tempdir().unwrap();
    let narrow = dir.path().join("narrow.safetensors");
    write_vector(&narrow, &[0.5; 48]);
    let narrow = narrow.to_str().unwrap();
    expect_error(
        &["generate", "--llm", &model, "--prompt", "a photo", "--steer", narrow, "--steer-layer", "1"],
        "width 48",
    );
    expect_error(
        &["probe", "llm", "--model", &model, "--prompt", "a photo", "--steer", narrow, "--steer-layer", "1"],
        "width 48",
    );
    let wide = dir.path().join("wide.safetensors");
    write_vector(&wide, &[0.5; 64]);
    expect_error(
        &["generate", "--llm", &model, "--prompt", "a photo", "--steer", wide.to_str().unwrap(), "--steer-layer", "4"],
        "out of range",
    );
    expect_error(&["probe", "llm", "--model", &model, "--prompt", "a photo", "--layer", "9"], "out of range");
    expect_error(
        &[
            "steer-vector",
            "--llm",
            &model,
            "--positive",
            "a",
            "--negative",
            "b",
            "--layer",
            "4",
            "-o",
            "/tmp/never.safetensors",
        ],
        "out of range",
    );

    let plain = dir.path().join("no-template");
    copy_dir(&llama(), &plain);
    std::fs::write(
        plain.join("tokenizer_config.json"),
        r#"{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}"#,
    )
    .unwrap();
    expect_error(&["generate", "--llm", plain.to_str().unwrap(), "--user", "hello"], "no chat template");

    let truncated = dir.path().join("truncated");
    copy_dir(&llama(), &truncated);
    let shard = truncated.join("model-00002-of-00002.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    expect_error(
        &["generate", "--llm", truncated.to_str().unwrap(), "--prompt", "hi"],
        "model-00002-of-00002.safetensors",
    );

    expect_error(&["inspect", fixtures().join("images").to_str().unwrap()], "config.json");
}
