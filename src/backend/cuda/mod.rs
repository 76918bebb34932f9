//! The CUDA backend: kernels compiled by `build.rs` and embedded (`kernels`), the driver, context and stream
//! (`runtime`), the pinned buffers every upload goes through (`staging`), the arena (`arena` keeps its books, `device_arena` its memory, `debug_alloc` the mode in which every
//! block is a driver allocation of its own), one launch wrapper per kernel (`ops` for CLIP and scoring, `llm_ops`,
//! `kv_cache` and `sampling` for the LLM), and the `Backend` implementation (`backend`). Opening it checks, in
//! order, that the binary has kernels, that an NVIDIA driver can be loaded, its version, the device and its
//! compute capability, and answers with an error that says what is missing, never a panic.
//!
//! Besides `CudaBackend` and its views (`with_variant`, `with_graphs`), the parity harness above the models
//! (`crate::selftest`) uses two things of this module to test single kernels: `runtime::Gpu`, and the launch
//! wrappers of `ops` with their `Variant` (each takes the GPU, its tensors and the variant to run). This module
//! imports nothing from the layers above it (`tests/layering.rs` checks).

pub mod arena;
pub mod backend;
pub mod bandwidth;
pub mod debug_alloc;
pub mod device_arena;
pub mod kernels;
pub mod kv_cache;
pub mod llm_ops;
pub mod ops;
pub mod runtime;
pub mod sampling;
pub mod staging;

/// The driver library, looked up before any driver call (cudarc would panic on a missing library).
const DRIVER_LIBRARIES: [&str; 2] = ["libcuda.so.1", "libcuda.so"];

/// Whether the NVIDIA driver library can be loaded, or the loader's message for the first name tried.
pub fn driver_library() -> std::result::Result<&'static str, String> {
    let mut first_error = None;
    for name in DRIVER_LIBRARIES {
        let c_name = std::ffi::CString::new(name).expect("no NUL in a library name");
        // SAFETY: dlopen with a valid C string; the handle is closed at once (the runtime opens its own).
        let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if !handle.is_null() {
            // SAFETY: a handle dlopen just returned.
            unsafe { libc::dlclose(handle) };
            return Ok(name);
        }
        // SAFETY: dlerror returns null or a valid C string owned by the loader.
        let message = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                String::from("not found")
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        first_error.get_or_insert(message);
    }
    Err(first_error.unwrap_or_default())
}
