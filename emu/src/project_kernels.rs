//! The project's own kernels, as the engine embeds them (the root package is a dev-dependency), for the tests that
//! run them here. A build without the CUDA compilers embeds none: those tests are then reported skipped, once, on a
//! line written straight to stderr (the test harness captures `eprintln!` of passing tests) that says how to build
//! the kernels, unless `GLOV_REQUIRE_KERNELS=1` (as in CI), which makes it a failure.

use glov_cuda::backend::cuda::kernels::{self, KernelModule, MODULES};
use std::io::Write;
use std::sync::Once;

/// Every embedded kernel module, or `None` (reported skipped) in a build without kernels.
pub fn all() -> Option<&'static [KernelModule]> {
    if kernels::built_with_kernels() {
        assert!(!MODULES.is_empty(), "a build with kernels embeds modules");
        return Some(MODULES);
    }
    let reason = "the engine was built without the CUDA kernels (no NVRTC or ptxas)";
    assert!(std::env::var("GLOV_REQUIRE_KERNELS").as_deref() != Ok("1"), "GLOV_REQUIRE_KERNELS=1 but {reason}");
    static REPORTED: Once = Once::new();
    REPORTED.call_once(|| {
        let line = format!(
            "skipped: the emulator's tests on the project's kernels (glov-emu): {reason}; to run: \
             `bash scripts/setup-cuda.sh`, then `cargo test --release --locked`\n"
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    });
    None
}

/// The PTX of the module built from `kernels/<name>.cu`, or `None` (reported skipped) in a build without kernels.
pub fn ptx(name: &str) -> Option<&'static str> {
    let modules = all()?;
    let module = modules.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no kernel module {name}"));
    Some(module.ptx)
}
