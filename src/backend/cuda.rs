//! The CUDA backend. Its kernels and runtime are not part of this build yet; selecting it gives an error that says
//! so, instead of a panic.

use super::Device;
use anyhow::{Result, bail};

/// Opens the CUDA backend on device `ordinal`.
pub fn open(ordinal: usize) -> Result<std::convert::Infallible> {
    bail!(
        "--device {}: the CUDA backend is not built yet in this version of glov-cuda; use --device cpu",
        Device::Cuda(ordinal)
    )
}
