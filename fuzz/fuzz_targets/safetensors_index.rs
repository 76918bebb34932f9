//! A model directory with a `model.safetensors.index.json` beside one small valid shard: the shard names it gives
//! (which must stay inside the directory) and the weight map.

#![no_main]

use glov_cuda::checkpoint::WeightStore;
use libfuzzer_sys::fuzz_target;

/// A shard holding one f32 tensor `w` of shape [2].
fn shard() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0, 0, 128, 63, 0, 0, 0, 64]);
    bytes
}

fuzz_target!(|bytes: &[u8]| {
    let dir = glov_cuda_fuzz::scratch().join("sharded");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model-00001-of-00001.safetensors"), shard()).unwrap();
    std::fs::write(dir.join("model.safetensors.index.json"), bytes).unwrap();
    let Ok(store) = WeightStore::open(&dir) else { return };
    for tensor in store.tensors() {
        std::hint::black_box(tensor.to_f32());
    }
});
