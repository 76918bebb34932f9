//! A sweep plan (TOML): parsed, and expanded into its cells.

#![no_main]

use glov_cuda::sweep::plan::Plan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let dir = glov_cuda_fuzz::scratch().join("sweep");
    if let Ok(plan) = Plan::parse(text, &dir.join("plan.toml")) {
        let _ = plan.cells(&dir);
    }
});
