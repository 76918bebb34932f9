//! Decoder LLMs on the CPU backend against HF transformers, on four tiny random-weight models recorded by
//! `scripts/make_llm_fixtures.py` and `scripts/make_gemma3_fixtures.py`: Llama (grouped-query attention, llama3
//! rope scaling, untied, sharded f32), Qwen2 (q/k/v biases, tied embeddings), Mistral (bf16 weights) and Gemma 3
//! (sliding-window and global layers with a window of 4 tokens that every prompt crosses, linear rope scaling,
//! tied embeddings).

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
use std::path::PathBuf;

const MODELS: [&str; 4] = ["llm-tiny-llama", "llm-tiny-qwen2", "llm-tiny-mistral", "llm-tiny-gemma3"];
const TOLERANCE: f32 = 1e-4;

struct Golden {
    model: LlmModel<CpuBackend>,
    json: Value,
    tensors: PathBuf,
}

fn golden(name: &str) -> Golden {
    let dir = fixtures().join(name);
    let model = LlmModel::open(&CpuBackend::new(), dir.to_str().unwrap()).unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    Golden { model, json, tensors: dir.join("golden.safetensors") }
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn prompts(g: &Golden) -> Vec<Vec<u32>> {
    let prompts: Vec<Vec<u32>> = g.json["prompt_ids"].as_array().unwrap().iter().map(ids).collect();
    let texts = g.json["prompts"].as_array().unwrap();
    assert_eq!(texts.len(), prompts.len(), "prompts against their ids");
    for (text, want) in texts.iter().zip(&prompts) {
        assert_eq!(&g.model.tokenizer.encode_plain(text.as_str().unwrap()).unwrap(), want, "ids of {text}");
    }
    prompts
}

fn greedy(g: &Golden, requests: Vec<Request>, tokens: usize, steer: Option<SteerConfig>) -> Vec<Vec<u32>> {
    let options = GenerateOptions {
        max_new_tokens: tokens,
        sampling: SamplingParams::greedy(),
        seed: 0,
        stop_tokens: vec![],
        steer,
        streams: Streams::Batch,
    };
    let out = generate(&CpuBackend::new(), &g.model.llm, &requests, &options).unwrap();
    assert!(out.sequences.iter().all(|s| s.finish == FinishReason::Length));
    out.sequences.into_iter().map(|s| s.tokens).collect()
}

#[test]
fn last_logits_match_hf() {
    for name in MODELS {
        let g = golden(name);
        let (shape, want) = read_tensor(&g.tensors, "last_logits");
        for (i, prompt) in prompts(&g).iter().enumerate() {
            let got = last_logits(&CpuBackend::new(), &g.model.llm, prompt, None).unwrap();
            let err = max_row_relative_error(&got, &want[i * shape[1]..(i + 1) * shape[1]], shape[1]);
            assert!(err < TOLERANCE, "{name} prompt {i}: logits differ from HF by {err:e}");
        }
    }
}

#[test]
fn greedy_continuations_match_hf_in_one_batch() {
    for name in MODELS {
        let g = golden(name);
        // All prompts in one batch of different lengths; each must still match HF run alone.
        let requests = prompts(&g).into_iter().map(|prompt| Request { prompt, n: 1, steer: None }).collect();
        let got = greedy(&g, requests, 32, None);
        for (i, want) in g.json["greedy"].as_array().unwrap().iter().enumerate() {
            assert_eq!(got[i], ids(want), "{name} prompt {i}: greedy tokens");
        }
    }
}

#[test]
fn block_output_means_match_hf() {
    for name in MODELS {
        let g = golden(name);
        let layer = g.json["layer"].as_u64().unwrap() as usize;
        let got = block_output_means(&CpuBackend::new(), &g.model.llm, &prompts(&g), layer).unwrap();
        let (shape, want) = read_tensor(&g.tensors, "hidden_mean");
        let err = max_row_relative_error(&got, &want, shape[1]);
        assert!(err < TOLERANCE, "{name}: block {layer} means differ from HF by {err:e}");
    }
}

#[test]
fn steered_logits_match_hf_in_both_modes() {
    for name in MODELS {
        let g = golden(name);
        let layer = g.json["layer"].as_u64().unwrap() as usize;
        let (_, vector) = read_tensor(&g.tensors, "steer");
        for (mode, key) in [(SteerMode::Last, "steered_last_logits"), (SteerMode::All, "steered_all_logits")] {
            let (shape, want) = read_tensor(&g.tensors, key);
            for (i, prompt) in prompts(&g).iter().enumerate() {
                let got =
                    last_logits(&CpuBackend::new(), &g.model.llm, prompt, Some(Steer { vector: &vector, layer, mode }))
                        .unwrap();
                let err = max_row_relative_error(&got, &want[i * shape[1]..(i + 1) * shape[1]], shape[1]);
                assert!(err < TOLERANCE, "{name} prompt {i} {mode}: steered logits differ from HF by {err:e}");
            }
        }
    }
}

#[test]
fn steered_greedy_matches_hf_in_both_cache_modes() {
    for name in MODELS {
        let g = golden(name);
        let layer = g.json["layer"].as_u64().unwrap() as usize;
        let (_, vector) = read_tensor(&g.tensors, "steer");
        for (cache, key) in
            [(SteerCache::Steered, "steered_greedy_steered_cache"), (SteerCache::Clean, "steered_greedy_clean_cache")]
        {
            // Steered and unsteered sequences side by side in one batch.
            let mut requests = Vec::new();
            for prompt in prompts(&g) {
                requests.push(Request { prompt: prompt.clone(), n: 1, steer: Some(vector.clone()) });
                requests.push(Request { prompt, n: 1, steer: None });
            }
            let steer = SteerConfig { layer, mode: SteerMode::Last, cache };
            let got = greedy(&g, requests, 16, Some(steer));
            for (i, want) in g.json[key].as_array().unwrap().iter().enumerate() {
                assert_eq!(got[2 * i], ids(want), "{name} prompt {i} {cache:?} cache: steered greedy tokens");
                let plain: Vec<u32> = ids(&g.json["greedy"][i])[..16].to_vec();
                assert_eq!(got[2 * i + 1], plain, "{name} prompt {i}: an unsteered neighbour is unaffected");
            }
        }
    }
}

#[test]
fn chat_templates_render_as_hf() {
    for name in MODELS {
        let g = golden(name);
        let chat = g.model.chat.as_ref().unwrap_or_else(|| panic!("{name} has a chat template"));
        for case in g.json["chat"].as_array().unwrap() {
            let messages: Vec<glov_cuda::chat::Message> = serde_json::from_value(case["messages"].clone()).unwrap();
            let add = case["add_generation_prompt"].as_bool().unwrap();
            let result = chat.render(&messages, add);
            if case.get("error").is_some_and(|e| e.as_bool() == Some(true)) {
                let err = format!("{:#}", result.unwrap_err());
                assert!(err.contains("conversation roles must alternate"), "{name}: {err}");
                continue;
            }
            let rendered = result.unwrap();
            assert_eq!(rendered, case["rendered"].as_str().unwrap(), "{name}: rendering of {messages:?}");
            assert_eq!(
                g.model.tokenizer.encode_rendered(&rendered).unwrap(),
                ids(&case["ids"]),
                "{name}: ids of the rendering"
            );
        }
        let eos = ids(&g.json["eos_ids"]);
        assert!(
            eos.iter().all(|t| g.model.stop_tokens.contains(t)),
            "{name}: stop tokens {:?} miss some of {eos:?}",
            g.model.stop_tokens
        );
    }
}

#[test]
fn sampled_sequences_do_not_depend_on_their_batch() {
    let g = golden("llm-tiny-llama");
    let prompts = prompts(&g);
    let sampling = SamplingParams { temperature: 1.0, top_k: 50, top_p: 0.9, greedy: false };
    let options = GenerateOptions {
        max_new_tokens: 12,
        sampling,
        seed: 7,
        stop_tokens: vec![],
        steer: None,
        streams: Streams::Batch,
    };
    let run = |requests: &[Request]| generate(&CpuBackend::new(), &g.model.llm, requests, &options).unwrap().sequences;
    let alone = run(&[Request { prompt: prompts[0].clone(), n: 3, steer: None }]);
    let together = run(&[
        Request { prompt: prompts[0].clone(), n: 3, steer: None },
        Request { prompt: prompts[2].clone(), n: 4, steer: None },
    ]);
    for s in 0..3 {
        assert_eq!(alone[s].tokens, together[s].tokens, "sequence {s} changed when another prompt joined the batch");
    }
    assert_ne!(alone[0].tokens, alone[1].tokens, "sequences of one prompt draw different tokens");
    let reseeded = generate(
        &CpuBackend::new(),
        &g.model.llm,
        &[Request { prompt: prompts[0].clone(), n: 3, steer: None }],
        &GenerateOptions { seed: 8, ..options.clone() },
    )
    .unwrap();
    assert_ne!(reseeded.sequences[0].tokens, alone[0].tokens);
}

#[test]
fn stop_tokens_end_a_sequence_and_say_why() {
    let g = golden("llm-tiny-llama");
    let prompt = prompts(&g)[0].clone();
    let greedy_tokens = ids(&g.json["greedy"][0]);
    let stop = greedy_tokens[4];
    let first = greedy_tokens.iter().position(|&t| t == stop).unwrap();
    let options = GenerateOptions {
        max_new_tokens: 32,
        sampling: SamplingParams::greedy(),
        seed: 0,
        stop_tokens: vec![stop],
        steer: None,
        streams: Streams::Batch,
    };
    let out = generate(&CpuBackend::new(), &g.model.llm, &[Request { prompt, n: 2, steer: None }], &options).unwrap();
    for s in &out.sequences {
        assert_eq!(s.finish, FinishReason::Stop);
        assert_eq!(s.tokens, greedy_tokens[..=first].to_vec());
    }
    // The cache holds one shared prefix and two private parts: (6 + 2 * 33) positions x 4 layers x K and V x 2 heads x 8.
    assert_eq!(out.kv_cache_bytes, (6 + 2 * 33) * 4 * 2 * 2 * 8 * 4);
}
