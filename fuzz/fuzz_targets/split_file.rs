//! A CoOp split file (`split_zhou_*.json`) over an image root: every split, whose paths must stay in the root.

#![no_main]

use glov_cuda::dataset::Split;
use glov_cuda::dataset::split_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let root = glov_cuda_fuzz::scratch().join("images");
    std::fs::create_dir_all(root.join("cat")).unwrap();
    let path = glov_cuda_fuzz::file("split.json", bytes);
    for split in [Split::Train, Split::Val, Split::Test] {
        let _ = split_file::load(&root, &path, split);
    }
});
