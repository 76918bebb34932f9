//! `glov-cuda selftest`: the CUDA kernels against the CPU reference backend; `--list` names the kernels in the
//! binary (no GPU needed).

use crate::backend::Device;
use crate::backend::cuda::kernels::{MODULES, NVCC};
use anyhow::{Result, bail};
use clap::Args;

#[derive(Args)]
pub struct SelftestArgs {
    /// Name the kernel modules and entries compiled into this binary, and exit.
    #[arg(long)]
    list: bool,
    /// Fewer shapes (for compute-sanitizer runs).
    #[arg(long)]
    quick: bool,
}

pub fn run(device: Device, args: SelftestArgs) -> Result<()> {
    if args.list {
        print!("{}", list());
        return Ok(());
    }
    let _ = args.quick;
    match device {
        Device::Cpu => bail!("selftest compares the CUDA backend with the CPU reference: give --device cuda[:N]"),
        Device::Cuda(ordinal) => match crate::backend::cuda::open(ordinal)? {},
    }
}

fn list() -> String {
    let Some(nvcc) = NVCC else {
        return "built without CUDA kernels (no nvcc at build time): run scripts/setup-cuda.sh and rebuild\n".into();
    };
    let mut out = format!("kernels compiled by {nvcc} (PTX for compute_80 and up)\n");
    for module in MODULES {
        let hopper = if module.sm_90a.is_some() { ", sm_90a cubin" } else { "" };
        out.push_str(&format!("{} ({} bytes of PTX{hopper}):\n", module.name, module.ptx.len()));
        for entry in module.entries {
            out.push_str(&format!("  {entry}\n"));
        }
    }
    out
}
