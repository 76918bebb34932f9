//! A model directory with one safetensors file: the weight store, and every tensor read as f32.

#![no_main]

use glov_cuda::checkpoint::WeightStore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let dir = glov_cuda_fuzz::scratch().join("safetensors");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    let Ok(store) = WeightStore::open(&dir) else { return };
    for tensor in store.tensors() {
        std::hint::black_box(tensor.to_f32());
    }
});
