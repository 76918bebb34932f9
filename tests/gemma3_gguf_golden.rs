//! The Gemma 3 model read from GGUF files against HF transformers reading the same files: the small random
//! tests/fixtures/gguf/gemma3.gguf (`scripts/make_gguf_fixtures.py`; sliding window 4, so the window matters) and
//! Gemma-3-270M (`GLOV_GEMMA3_GGUF`, `scripts/make_gemma3_gguf_fixtures.py`): last-position logits, block-L means,
//! steered logits and greedy tokens.

mod common;

use common::{fixtures, max_row_relative_error, read_tensor};
use glov_cuda::backend::cpu::CpuBackend;
use glov_cuda::generation::generate::{FinishReason, GenerateOptions, Request, Streams, generate};
use glov_cuda::generation::hidden::block_output_means;
use glov_cuda::generation::prompt_logits::{Steer, last_logits};
use glov_cuda::generation::sampling::SamplingParams;
use glov_cuda::generation::steering::{SteerCache, SteerConfig, SteerMode};
use glov_cuda::models::llm::LlmModel;
use serde_json::Value;
use std::path::Path;

const TOLERANCE: f32 = 1e-4;

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn greedy(
    model: &LlmModel<CpuBackend>,
    prompts: &[Vec<u32>],
    n: usize,
    steer: Option<(SteerConfig, Vec<f32>)>,
) -> Vec<Vec<u32>> {
    let options = GenerateOptions {
        max_new_tokens: n,
        sampling: SamplingParams::greedy(),
        seed: 0,
        stop_tokens: vec![],
        steer: steer.as_ref().map(|(config, _)| *config),
        streams: Streams::Batch,
    };
    let requests: Vec<Request> = prompts
        .iter()
        .map(|prompt| Request { prompt: prompt.clone(), n: 1, steer: steer.as_ref().map(|(_, v)| v.clone()) })
        .collect();
    let out = generate(&CpuBackend::new(), &model.llm, &requests, &options).unwrap();
    assert!(out.sequences.iter().all(|s| s.finish == FinishReason::Length));
    out.sequences.into_iter().map(|s| s.tokens).collect()
}

/// The last-position logits of each prompt against the rows of `key` in `tensors`.
fn check_logits(
    model: &LlmModel<CpuBackend>,
    prompts: &[Vec<u32>],
    tensors: &Path,
    key: &str,
    steer: Option<(&[f32], usize, SteerMode)>,
) {
    let (shape, want) = read_tensor(tensors, key);
    for (i, prompt) in prompts.iter().enumerate() {
        let steer = steer.map(|(vector, layer, mode)| Steer { vector, layer, mode });
        let got = last_logits(&CpuBackend::new(), &model.llm, prompt, steer).unwrap();
        let err = max_row_relative_error(&got, &want[i * shape[1]..(i + 1) * shape[1]], shape[1]);
        assert!(err < TOLERANCE, "prompt {i}: {key} differ from HF by {err:e}");
    }
}

#[test]
fn tiny_gemma3_gguf_matches_hf() {
    let dir = fixtures().join("gguf");
    let model = LlmModel::open(&CpuBackend::new(), dir.join("gemma3.gguf").to_str().unwrap())
        .expect("the Gemma 3 GGUF file opens as a model");
    let golden = json(&dir.join("gemma3.json"));
    let tensors = dir.join("gemma3.safetensors");
    let prompts: Vec<Vec<u32>> = golden["prompt_ids"].as_array().unwrap().iter().map(ids).collect();
    check_logits(&model, &prompts, &tensors, "last_logits", None);
    let layer = golden["layer"].as_u64().unwrap() as usize;
    let (shape, want) = read_tensor(&tensors, "hidden_mean");
    let got = block_output_means(&CpuBackend::new(), &model.llm, &prompts, layer).unwrap();
    let err = max_row_relative_error(&got, &want, shape[1]);
    assert!(err < TOLERANCE, "block {layer} means differ from HF by {err:e}");
    let (_, vector) = read_tensor(&tensors, "steer");
    check_logits(&model, &prompts, &tensors, "steered_last_logits", Some((&vector, layer, SteerMode::Last)));
    let got = greedy(&model, &prompts, 16, None);
    let want = golden["greedy"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "greedy sequences against HF's");
    for (got, want) in got.iter().zip(want) {
        assert_eq!(got, &ids(want), "greedy tokens");
    }
}

#[test]
fn gemma3_270m_matches_hf() {
    let Some(file) = common::gemma3_270m("the Gemma-3-270M golden test (tests/gemma3_gguf_golden.rs)") else {
        return;
    };
    let dir = fixtures().join("gemma3-270m-gguf");
    let model =
        LlmModel::open(&CpuBackend::new(), file.to_str().unwrap()).expect("the Gemma 3 GGUF file opens as a model");
    let golden = json(&dir.join("golden.json"));
    let tensors = dir.join("golden.safetensors");
    let prompts: Vec<Vec<u32>> = golden["prompt_ids"].as_array().unwrap().iter().map(ids).collect();
    let pick = |key: &str| -> Vec<Vec<u32>> {
        let rows: Vec<usize> = match &golden[key] {
            Value::Array(rows) => rows.iter().map(|r| r.as_u64().unwrap() as usize).collect(),
            row => vec![row.as_u64().unwrap() as usize],
        };
        rows.into_iter().map(|r| prompts[r].clone()).collect()
    };
    check_logits(&model, &pick("logits_prompts"), &tensors, "last_logits", None);
    let layer = golden["layer"].as_u64().unwrap() as usize;
    let (shape, want) = read_tensor(&tensors, "hidden_mean");
    let got = block_output_means(&CpuBackend::new(), &model.llm, &prompts, layer).unwrap();
    let err = max_row_relative_error(&got, &want, shape[1]);
    assert!(err < TOLERANCE, "block {layer} means differ from HF by {err:e}");
    let (_, vector) = read_tensor(&tensors, "steer");
    let steered = pick("steered_prompt");
    for (mode, key) in [(SteerMode::Last, "steered_last_logits"), (SteerMode::All, "steered_all_logits")] {
        check_logits(&model, &steered, &tensors, key, Some((&vector, layer, mode)));
    }
    let got = greedy(&model, &prompts, 32, None);
    let want = golden["greedy"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "greedy sequences against HF's");
    for (i, (got, want)) in got.iter().zip(want).enumerate() {
        assert_eq!(got, &ids(want), "prompt {i}: greedy tokens ({:?})", golden["greedy_text"][i]);
    }
    let config = SteerConfig { layer, mode: SteerMode::Last, cache: SteerCache::Steered };
    let got = greedy(&model, &steered, 16, Some((config, vector.clone())));
    assert_eq!(got[0], ids(&golden["steered_greedy"]), "steered greedy tokens");
}
