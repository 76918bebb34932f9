//! Hostile tokenizers and chat templates (made by `scripts/make_hostile_tokenizers.py`): each ends with a clear
//! error naming the file and the field (or, for a long token, builds as it should), within seconds and in bounded
//! memory.

mod common;

use common::{Bounded, assert_clear_error, fixtures, run_bounded};
use std::path::{Path, PathBuf};

const MEMORY_MIB: u64 = 1024;
const SECONDS: u64 = 20;

fn hostile(name: &str) -> PathBuf {
    fixtures().join("hostile").join("tokenizers").join(name)
}

/// `glov-cuda generate` of one token from `model` for `prompt_args`, under the limits.
fn generate(cwd: &Path, model: &Path, prompt_args: &[&str]) -> Bounded {
    let model = model.to_str().unwrap();
    let mut args = vec!["generate", "--llm", model, "--max-new-tokens", "1"];
    args.extend_from_slice(prompt_args);
    run_bounded(cwd, &args, MEMORY_MIB, SECONDS)
}

/// A copy of tests/fixtures/llm-tiny-llama with `file` replaced by the hostile fixture `fixture`.
fn tiny_llama_with(file: &str, fixture: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join("llm-tiny-llama")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    std::fs::copy(hostile(fixture), dir.path().join(file)).unwrap();
    dir
}

#[test]
fn a_sentencepiece_vocabulary_of_nested_runs_is_refused() {
    let file = hostile("spm-nested-runs.gguf");
    let run = generate(&fixtures(), &file, &["--prompt", "hi"]);
    assert_clear_error(&run, &[file.to_str().unwrap(), "tokenizer.ggml.tokens", "refusing to build the tokenizer"]);
}

#[test]
fn a_sentencepiece_token_of_700_kb_builds_in_linear_time() {
    let run = generate(&fixtures(), &hostile("spm-long-token.gguf"), &["--prompt", "hi"]);
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(run.output.status.success(), "{:?}: {stderr}", run.output.status);
    assert!(run.seconds < 10.0, "{} s", run.seconds);
}

#[test]
fn a_gguf_merge_longer_than_any_token_is_an_error() {
    let file = hostile("gpt2-merge-too-long.gguf");
    let run = generate(&fixtures(), &file, &["--prompt", "hi"]);
    assert_clear_error(&run, &[file.to_str().unwrap(), "tokenizer.ggml.merges[344]", "not in the vocabulary"]);
}

#[test]
fn a_tokenizer_json_merge_longer_than_any_token_is_an_error() {
    let dir = tiny_llama_with("tokenizer.json", "merge-too-long.tokenizer.json");
    let run = generate(dir.path(), dir.path(), &["--prompt", "hi"]);
    let file = dir.path().join("tokenizer.json");
    assert_clear_error(&run, &[file.to_str().unwrap(), "model.merges[344]", "not in the vocabulary"]);
}

#[test]
fn a_gguf_chat_template_that_loops_for_ever_exceeds_its_budget() {
    let file = hostile("gguf-template-loop.gguf");
    let run = generate(&fixtures(), &file, &["--user", "hi"]);
    assert_clear_error(&run, &[file.to_str().unwrap(), "tokenizer.chat_template", "exceeded its budget"]);
}

#[test]
fn a_chat_template_that_loops_for_ever_exceeds_its_budget() {
    let dir = tiny_llama_with("tokenizer_config.json", "loop.tokenizer_config.json");
    let run = generate(dir.path(), dir.path(), &["--user", "hi"]);
    let file = dir.path().join("tokenizer_config.json");
    assert_clear_error(&run, &[file.to_str().unwrap(), "(chat_template)", "exceeded its budget"]);
}

#[test]
fn a_chat_template_that_doubles_a_string_exceeds_its_budget() {
    let dir = tiny_llama_with("tokenizer_config.json", "doubling.tokenizer_config.json");
    let run = generate(dir.path(), dir.path(), &["--user", "hi"]);
    let file = dir.path().join("tokenizer_config.json");
    assert_clear_error(&run, &[file.to_str().unwrap(), "(chat_template)", "exceeded its budget"]);
}
