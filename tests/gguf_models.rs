//! Small Llama and Gemma 3 GGUF files (`scripts/make_gguf_fixtures.py`: random weights quantized to Q8_0, Q4_0,
//! Q4_1, Q5_0, Q5_1, F16 and BF16 by the `gguf` package, as llama.cpp's converter lays them out) read by the engine
//! against HF transformers reading the same files: config, every tensor (dequantized, un-permuted, un-offset),
//! the tokenizer built from the metadata, the chat template, and for Llama the logits and greedy tokens end to end.

mod common;

use common::{fixtures, max_row_relative_error, read_tensor};
use glov_cuda::backend::cpu::CpuBackend;
use glov_cuda::chat::Message;
use glov_cuda::checkpoint::Checkpoint;
use glov_cuda::generation::generate::{GenerateOptions, Request, Streams, generate};
use glov_cuda::generation::prompt_logits::last_logits;
use glov_cuda::generation::sampling::SamplingParams;
use glov_cuda::models::llm::LlmModel;
use serde_json::Value;
use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    fixtures().join("gguf").join(name)
}

fn golden(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path(name)).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// Every HF parameter transformers loaded equals ours (both dequantize with the same arithmetic, and moving rows
/// or subtracting 1 is exact); the file holds no other parameter.
fn tensors_match_hf(model: &str, reference: &str) {
    let checkpoint = Checkpoint::open(path(model).to_str().unwrap()).unwrap();
    let bytes = std::fs::read(path(reference)).unwrap();
    let hf = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = hf
        .names()
        .into_iter()
        .filter(|n| n.starts_with("model.") || n.starts_with("lm_head"))
        .map(str::to_string)
        .collect();
    names.sort();
    let ours: Vec<String> = checkpoint.weights.tensors().iter().map(|t| t.name.clone()).collect();
    assert_eq!(ours, names, "{model}: tensor names");
    for name in names {
        let (shape, want) = read_tensor(&path(reference), &name);
        let got = checkpoint.weights.get_shaped(&name, &shape).unwrap().to_f32();
        assert!(got == want, "{model}: {name} differs from HF's");
    }
}

fn config_matches_hf(model: &str, reference: &str, keys: &[&str]) -> Value {
    let checkpoint = Checkpoint::open(path(model).to_str().unwrap()).unwrap();
    let golden = golden(reference);
    for key in keys {
        let (a, b) = (&checkpoint.config[key], &golden["hf_config"][key]);
        let same = match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x as f32 == y as f32,
            _ => a == b,
        };
        assert!(same, "{model}: config {key}: ours {a}, HF {b}");
    }
    golden
}

fn tokenizer_matches_hf(model: &str, reference: &str) {
    let checkpoint = Checkpoint::open(path(model).to_str().unwrap()).unwrap();
    let (tokenizer, _, _) = glov_cuda::tokenizer::llm_text(&checkpoint).unwrap();
    for case in golden(reference)["tokenizer"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(tokenizer.encode_plain(text).unwrap(), ids(&case["ids"]), "{model}: ids of {text:?}");
    }
}

const LLAMA_KEYS: [&str; 13] = [
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "max_position_embeddings",
    "rms_norm_eps",
    "bos_token_id",
    "tie_word_embeddings",
    "rope_theta",
];

#[test]
fn llama_config_tensors_and_tokenizer_match_hf() {
    let golden = config_matches_hf("llama.gguf", "llama.json", &LLAMA_KEYS[..12]);
    assert_eq!(
        Checkpoint::open(path("llama.gguf").to_str().unwrap()).unwrap().config["rope_theta"],
        golden["hf_config"]["rope_parameters"]["rope_theta"]
    );
    tensors_match_hf("llama.gguf", "llama.safetensors");
    tokenizer_matches_hf("llama.gguf", "llama.json");
}

#[test]
fn llama_gguf_logits_greedy_and_chat_match_hf() {
    let cpu = CpuBackend::new();
    let model = LlmModel::open(&cpu, path("llama.gguf").to_str().unwrap()).unwrap();
    let golden = golden("llama.json");
    assert_eq!(model.stop_tokens, vec![601, 604], "EOS, then end of turn");
    let chat = &golden["chat"];
    let messages: Vec<Message> = serde_json::from_value(chat["messages"].clone()).unwrap();
    let chat_template = model.chat.as_ref().expect("the file has a chat template");
    assert_eq!(chat_template.render(&messages, true).unwrap(), chat["rendered"].as_str().unwrap());
    assert_eq!(model.chat_prompt(Some("Be brief."), "Name a colour.").unwrap(), ids(&chat["ids"]));

    let prompts: Vec<Vec<u32>> = golden["prompt_ids"].as_array().unwrap().iter().map(ids).collect();
    let (shape, want) = read_tensor(&path("llama.safetensors"), "last_logits");
    for (i, prompt) in prompts.iter().enumerate() {
        let got = last_logits(&cpu, &model.llm, prompt, None).unwrap();
        let err = max_row_relative_error(&got, &want[i * shape[1]..(i + 1) * shape[1]], shape[1]);
        assert!(err < 1e-4, "prompt {i}: logits differ from HF by {err:e}");
    }
    let options = GenerateOptions {
        max_new_tokens: 16,
        sampling: SamplingParams::greedy(),
        seed: 0,
        stop_tokens: vec![],
        steer: None,
        streams: Streams::Batch,
    };
    let requests: Vec<Request> = prompts.into_iter().map(|prompt| Request { prompt, n: 1, steer: None }).collect();
    let out = generate(&cpu, &model.llm, &requests, &options).unwrap();
    let want = golden["greedy"].as_array().unwrap();
    assert_eq!(out.sequences.len(), want.len(), "greedy sequences against HF's");
    for (got, want) in out.sequences.iter().zip(want) {
        assert_eq!(got.tokens, ids(want), "greedy tokens");
    }
}

#[test]
fn gemma3_config_tensors_and_tokenizer_match_hf() {
    let keys = [
        "model_type",
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "max_position_embeddings",
        "rms_norm_eps",
        "tie_word_embeddings",
        "sliding_window",
        "layer_types",
        "rope_parameters",
        "query_pre_attn_scalar",
        "hidden_activation",
    ];
    config_matches_hf("gemma3.gguf", "gemma3.json", &keys);
    tensors_match_hf("gemma3.gguf", "gemma3.safetensors");
    tokenizer_matches_hf("gemma3.gguf", "gemma3.json");
}
