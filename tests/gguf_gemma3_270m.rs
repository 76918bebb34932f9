//! Gemma-3-270M (Q4_K_M GGUF, fetched by `scripts/fetch-gemma3-270m.sh`) read by the engine against HF transformers
//! reading the same file (`scripts/make_gemma3_gguf_fixtures.py`, tests/fixtures/gemma3-270m-gguf): the tokenizer
//! built from the metadata, the config, and the tensors.
//!
//! The file is named by `GLOV_GEMMA3_GGUF`. Without it the test output has a line saying these tests were skipped
//! and how to run them, unless `GLOV_REQUIRE_GEMMA3=1` (as in CI, which fetches the file), which makes its absence
//! a failure.

mod common;

use common::fixtures;
use glov_cuda::checkpoint::Checkpoint;
use serde_json::Value;
use std::path::PathBuf;

fn model_file() -> Option<PathBuf> {
    common::gemma3_270m("the Gemma-3-270M tests (tests/gguf_gemma3_270m.rs)")
}

fn golden() -> Value {
    let path = fixtures().join("gemma3-270m-gguf").join("golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn tokenizer_matches_hf() {
    let Some(file) = model_file() else { return };
    let checkpoint = Checkpoint::open(file.to_str().unwrap()).unwrap();
    let (tokenizer, chat, stop) = glov_cuda::tokenizer::llm_text(&checkpoint).unwrap();
    let golden = golden();
    assert_eq!(tokenizer.vocab_size(), 262_144);
    assert!(chat.is_none(), "the file has no chat template");
    assert_eq!(stop, vec![golden["eos_id"].as_u64().unwrap() as u32]);
    for case in golden["tokenizer"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let got = tokenizer.encode_plain(text).unwrap();
        assert_eq!(got, ids(&case["ids"]), "ids of {text:?}");
        if case["decodes_to_text"].as_bool().unwrap() {
            assert_eq!(tokenizer.decode(&got).unwrap(), text, "decoding the ids of {text:?}");
        }
    }
    let (texts, want_ids) = (golden["prompts"].as_array().unwrap(), golden["prompt_ids"].as_array().unwrap());
    assert_eq!(texts.len(), want_ids.len(), "prompts against their ids");
    for (text, want) in texts.iter().zip(want_ids) {
        assert_eq!(tokenizer.encode_plain(text.as_str().unwrap()).unwrap(), ids(want), "ids of {text}");
    }
}

#[test]
fn config_and_tensors_match_hf() {
    let Some(file) = model_file() else { return };
    let checkpoint = Checkpoint::open(file.to_str().unwrap()).unwrap();
    let golden = golden();
    let hf = &golden["hf_config"];
    let ours = &checkpoint.config;
    for key in [
        "model_type",
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "hidden_activation",
        "max_position_embeddings",
        "rms_norm_eps",
        "pad_token_id",
        "eos_token_id",
        "bos_token_id",
        "tie_word_embeddings",
        "rope_parameters",
        "query_pre_attn_scalar",
        "sliding_window",
        "layer_types",
        "final_logit_softcapping",
        "attn_logit_softcapping",
    ] {
        let (a, b) = (&ours[key], &hf[key]);
        let same = match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        };
        assert!(same, "config {key}: ours {a}, HF {b}");
    }
    assert_eq!(ours["sliding_window_pattern"], hf["_sliding_window_pattern"]);
    assert_eq!(ours["rope_theta"], hf["rope_parameters"]["full_attention"]["rope_theta"]);
    assert_eq!(ours["rope_local_base_freq"], hf["rope_parameters"]["sliding_attention"]["rope_theta"]);

    let (d, f, v, q, kv) = (640, 2048, 262_144, 4 * 256, 256);
    let w = &checkpoint.weights;
    assert_eq!(w.tensors().len(), 236);
    w.get_shaped("model.embed_tokens.weight", &[v, d]).unwrap();
    w.get_shaped("model.norm.weight", &[d]).unwrap();
    assert!(w.get("lm_head.weight").is_err(), "the embeddings are tied");
    for layer in 0..18 {
        let p = format!("model.layers.{layer}");
        for (name, shape) in [
            ("self_attn.q_proj.weight", vec![q, d]),
            ("self_attn.k_proj.weight", vec![kv, d]),
            ("self_attn.v_proj.weight", vec![kv, d]),
            ("self_attn.o_proj.weight", vec![d, q]),
            ("self_attn.q_norm.weight", vec![256]),
            ("self_attn.k_norm.weight", vec![256]),
            ("input_layernorm.weight", vec![d]),
            ("post_attention_layernorm.weight", vec![d]),
            ("pre_feedforward_layernorm.weight", vec![d]),
            ("post_feedforward_layernorm.weight", vec![d]),
            ("mlp.gate_proj.weight", vec![f, d]),
            ("mlp.up_proj.weight", vec![f, d]),
            ("mlp.down_proj.weight", vec![d, f]),
        ] {
            w.get_shaped(&format!("{p}.{name}"), &shape).unwrap();
        }
    }
}

#[test]
fn every_tensor_dequantizes_to_finite_values() {
    let Some(file) = model_file() else { return };
    let checkpoint = Checkpoint::open(file.to_str().unwrap()).unwrap();
    let mut values = 0;
    for tensor in checkpoint.weights.tensors() {
        let converted = tensor.to_f32();
        assert!(converted.iter().all(|v| v.is_finite()), "{} has values that are not finite", tensor.name);
        values += converted.len();
    }
    assert_eq!(values, 268_098_176);
}

/// The example of a real proposer (examples/gemma3-270m.toml), cut to two steps: every step is saved, and the
/// model's answers give templates with the class slot (the answers of a base model without a chat template are
/// its next lines, so this also shows the plain-text meta-prompt reaching it).
#[test]
fn the_example_proposes_templates() {
    let Some(file) = model_file() else { return };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let runs = tempfile::tempdir().unwrap();
    let out = runs.path().join("gemma3");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_glov-cuda"))
        .current_dir(root)
        .env("GLOV_CUDA_CACHE", runs.path().join("cache"))
        .args(["--device", "cpu", "optimize", "--config", "examples/gemma3-270m.toml", "--steps", "2", "-q"])
        .arg("--llm")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("glov-cuda runs");
    assert!(status.success(), "the example failed");
    let steps = std::fs::read_to_string(out.join("steps.jsonl")).unwrap();
    assert_eq!(steps.lines().count(), 4, "2 steps x 2 alphas saved:\n{steps}");
    let proposed: Vec<String> = std::fs::read_to_string(out.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|entry| !entry["raw"].is_null())
        .map(|entry| entry["template"].as_str().unwrap().to_string())
        .collect();
    assert!(
        proposed.iter().any(|t| t.contains("{}") && t.split_whitespace().count() >= 3),
        "no template of a few words with the class slot among {proposed:?}"
    );
}
