//! libFuzzer on [`glov_cuda_fuzz::cases::split_file`].

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    glov_cuda_fuzz::cases::split_file(bytes);
});
