//! A GGUF file as a model: header, metadata, tensor infos, the HF config built from the metadata, the config's
//! check against the tensors, and the dequantization of every tensor.

#![no_main]

use glov_cuda::checkpoint::Checkpoint;
use glov_cuda::models::llm::LlmConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let path = glov_cuda_fuzz::file("model.gguf", bytes);
    let Ok(checkpoint) = Checkpoint::open(path.to_str().unwrap()) else { return };
    for tensor in checkpoint.weights.tensors() {
        std::hint::black_box(tensor.to_f32());
    }
    if let Ok(config) = LlmConfig::from_json(&checkpoint.config) {
        let _ = config.check_weights(&checkpoint.weights);
    }
});
