//! libFuzzer on [`glov_cuda_fuzz::cases::gguf_tokenizer`].

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    glov_cuda_fuzz::contained_panics_are_errors();
    glov_cuda_fuzz::cases::gguf_tokenizer(bytes);
});
