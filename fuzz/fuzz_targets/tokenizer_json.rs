//! A `tokenizer.json` file, and a round of encoding and decoding.

#![no_main]

use glov_cuda::tokenizer::LlmTokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    glov_cuda_fuzz::contained_panics_are_errors();
    let Ok(tokenizer) = LlmTokenizer::from_bytes(bytes, "tokenizer.json") else { return };
    if let Ok(ids) = tokenizer.encode_plain("a photo of a <category>, 12 ünïcode\n") {
        let _ = tokenizer.decode(&ids);
    }
});
