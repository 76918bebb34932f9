//! The CUDA kernels embedded at build time (see `build.rs`): one module per `kernels/*.cu` file, as PTX for
//! compute capability 8.0 and up, with an sm_90a cubin for the files that use Hopper-only instructions.

/// One compiled `kernels/*.cu` file.
#[derive(Clone, Copy, Debug)]
pub struct KernelModule {
    /// The file's stem (`gemm` for `kernels/gemm.cu`).
    pub name: &'static str,
    pub ptx: &'static str,
    pub sm_90a: Option<&'static [u8]>,
    /// The kernels' entry names, in file order.
    pub entries: &'static [&'static str],
}

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// Whether this binary carries kernels (it was built with nvcc).
pub fn built_with_kernels() -> bool {
    NVCC.is_some()
}
