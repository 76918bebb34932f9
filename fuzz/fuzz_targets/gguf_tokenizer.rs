//! The tokenizer and chat template a GGUF file's metadata describes, and a round of encoding and decoding.

#![no_main]

use glov_cuda::checkpoint::gguf::GgufFile;
use glov_cuda::tokenizer::LlmTokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    glov_cuda_fuzz::contained_panics_are_errors();
    let path = glov_cuda_fuzz::file("tokenizer.gguf", bytes);
    let Ok(file) = GgufFile::open(&path) else { return };
    let Ok((tokenizer, _)) = LlmTokenizer::from_gguf(&file.metadata) else { return };
    if let Ok(ids) = tokenizer.encode_plain("a photo of a <category>, 12 ünïcode\n") {
        let _ = tokenizer.decode(&ids);
    }
});
