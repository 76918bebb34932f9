//! A `config.json` read as each architecture's configuration (the Llama family, Qwen2, Mistral, Gemma 3; CLIP).

#![no_main]

use glov_cuda::models::clip::ClipConfig;
use glov_cuda::models::llm::LlmConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) else { return };
    if let Ok(config) = LlmConfig::from_json(&json) {
        std::hint::black_box(config.inv_freq());
        std::hint::black_box(config.local_inv_freq());
    }
    let _ = ClipConfig::from_json(&json);
});
