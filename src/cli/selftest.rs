//! `glov-cuda selftest`: every CUDA kernel, plain and fast, then CLIP and the LLM on the device, against the CPU
//! reference backend. It checks the CUDA backend unless `--device cpu` asks for the harness against the reference
//! itself, and fails where the binary has no kernels or the machine no GPU; `--list` names the kernels in the binary
//! (no GPU needed).

use crate::backend::Backend;
use crate::backend::Device;
use crate::backend::cuda::backend::CudaBackend;
use crate::backend::cuda::kernels::{self, COMPILERS, MIN_DRIVER, MODULES, PTX_ISA};
use crate::backend::runtime_options::RuntimeOptions;
use crate::selftest::{self, CaseResult, Selection};
use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args)]
pub struct SelftestArgs {
    /// Name the selftest cases, and the kernel modules and entries compiled into this binary, and exit.
    #[arg(long)]
    list: bool,
    /// The small shapes only (for compute-sanitizer runs).
    #[arg(long)]
    quick: bool,
    /// Run only these cases (comma-separated names, as the table's first column prints them; `--list` names them
    /// all). Cases computed together run together; only the named ones are reported.
    #[arg(long, value_name = "CASES")]
    only: Option<String>,
    /// Seed of the random inputs (each case draws its own from it, the same whichever cases run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the results as JSON to this file too.
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
}

pub fn run(runtime: &RuntimeOptions, args: SelftestArgs) -> Result<()> {
    if args.list {
        print!("{}", list());
        return Ok(());
    }
    let only = match &args.only {
        Some(list) => Selection::only(list)?,
        None => Selection::all(),
    };
    let results: Vec<CaseResult> = match runtime.device.unwrap_or(Device::Cuda(0)) {
        Device::Cpu => {
            eprintln!(
                "--device cpu: the harness against the CPU reference itself (every error must be 0); no CUDA kernel \
                 is checked"
            );
            selftest::run_reference(args.quick, args.seed, &only)?
        }
        Device::Cuda(ordinal) => {
            let backend = CudaBackend::open(ordinal, runtime.kernels(), runtime.gpu_memory)
                .context("selftest checks the CUDA backend (--device cpu checks the harness alone)")?;
            println!("{}, kernels by {}", backend.describe(), COMPILERS.unwrap_or("?"));
            selftest::run_cuda(&backend, args.quick, args.seed, &only)?
        }
    };
    print!("{}", selftest::table(&results));
    let missing = only.missing(&results);
    if !missing.is_empty() {
        bail!("--only: {} did not run (the recorded decode step runs on the CUDA backend only)", missing.join(", "));
    }
    if let Some(path) = &args.json {
        crate::atomic_file::write(path, (serde_json::to_string_pretty(&results)? + "\n").as_bytes())?;
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    if failed > 0 {
        bail!("{failed} of {} selftest cases failed", results.len());
    }
    println!("all {} cases passed", results.len());
    Ok(())
}

fn list() -> String {
    let cases = format!("selftest cases (for --only): {}\n", selftest::CASES.join(", "));
    let Some(compilers) = COMPILERS else {
        return "built without CUDA kernels (no NVRTC or ptxas at build time): run `bash scripts/setup-cuda.sh`, then rebuild (`cargo build --release`)\n"
            .to_string()
            + &cases;
    };
    let mut out = format!(
        "kernels compiled by {compilers}\n\
         PTX: ISA {}.{} for compute_80, compiled at load for any card of compute capability 8.0 or newer\n\
         machine code: {}, loaded when the card matches\n\
         oldest driver: CUDA {}.{} (R535)\n",
        PTX_ISA.0,
        PTX_ISA.1,
        kernels::cubin_archs(),
        MIN_DRIVER / 1000,
        MIN_DRIVER % 1000 / 10
    );
    for module in MODULES {
        let cubins: Vec<String> = module.cubins.iter().map(|c| format!("sm_{} {}", c.arch, c.image.len())).collect();
        out.push_str(&format!(
            "{} ({} bytes of PTX; machine code bytes: {}):\n",
            module.name,
            module.ptx.len(),
            cubins.join(", ")
        ));
        for entry in module.entries {
            out.push_str(&format!("  {entry}\n"));
        }
    }
    out + &cases
}
