//! The `glov-cuda` command line.

mod bench;
mod bench_gemm;
mod bench_glov;
mod bench_glov_vlm;
mod bench_llm;
mod bench_vlm;
mod describe;
mod generate;
mod inspect;
mod inspect_gguf;
mod optimize;
mod output;
mod probe;
mod report;
mod score;
mod selftest;
mod steer_vector;
mod steering_args;
mod sweep;

use crate::backend::Device;
use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::backend::CudaBackend;
use crate::backend::runtime_options::RuntimeOptions;
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "glov-cuda",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("GLOV_CUDA_COMMIT"), ")"),
    about = "GLOV on a GPU-native engine: zero-shot CLIP scoring of prompt templates, LLM-guided template search",
    long_about = "glov-cuda searches for natural-language prompt templates that raise CLIP's zero-shot accuracy, \
                  as in GLOV (Mirza et al., TMLR 2025): an LLM proposes templates, CLIP scores them on a few-shot \
                  set, and an offset vector added to the LLM's residual stream steers it towards better ones \
                  (`optimize`); it also scores template files in batches (`score`), generates with steering \
                  (`generate`) and runs grids of searches locally or on Slurm (`sweep`, `report`).\n\n\
                  Every command runs on the CPU reference backend (`--device cpu`, the default) and on the CUDA \
                  backend (`--device cuda`), whose kernels are compiled in when `bash scripts/setup-cuda.sh` was \
                  run before building; `selftest` checks the CUDA backend unless told `--device cpu`. The global \
                  options (--device, --kernels, --gpu-memory, --no-cuda-graphs, --threads) can also sit in an \
                  `optimize --config` file or a sweep plan under the same names; flags win.\n\n\
                  Precision is fixed, so there is no --dtype: the CPU backend computes in f32 from any stored type \
                  (f32, f16, bf16, GGUF quantizations dequantized); the CUDA backend stores weights in bf16 and \
                  accumulates sums in f32.\n\n\
                  Models are Hugging Face model directories (config.json, safetensors weights, tokenizer.json, \
                  preprocessor_config.json), org/name ids already in the local HF cache, or GGUF files (LLMs)."
)]
pub struct Cli {
    #[command(flatten)]
    runtime: RuntimeOptions,

    /// More log output on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Search prompt templates with GLOV: a steered LLM proposes, CLIP scores, over a sweep of guidance strengths.
    Optimize(Box<optimize::OptimizeArgs>),
    /// Zero-shot accuracy of each template in a file (and of their ensemble) on a dataset split.
    Score(score::ScoreArgs),
    /// Class descriptions written by an LLM in CuPL's or DCLIP's way, for `score --descriptions`.
    Describe(describe::DescribeArgs),
    /// Sample continuations of a prompt with an LLM, optionally steered by a vector in its residual stream.
    Generate(generate::GenerateArgs),
    /// Save alpha * (H(positive) - H(negative)): mean block-L outputs of two texts, a steering vector.
    SteerVector(steer_vector::SteerVectorArgs),
    /// Print raw model outputs as JSON, for checking against other implementations.
    #[command(subcommand)]
    Probe(probe::ProbeCommand),
    /// Benchmarks on randomly initialised models of named shapes (JSON on stdout).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Check the CUDA kernels against the CPU reference on the GPU (`--device cpu`: the harness alone; `--list`:
    /// name the kernels in this binary).
    Selftest(selftest::SelftestArgs),
    /// Describe a model directory: architecture, sizes, dtypes, parameters, files.
    Inspect(inspect::InspectArgs),
    /// Run a plan's grid of optimize runs (datasets x models x seeds), here or as a Slurm job array.
    Sweep(sweep::SweepArgs),
    /// Lay out finished runs as the paper's tables: one row per dataset, one block per CLIP model.
    Report(report::ReportArgs),
}

/// Logs on stderr, filtered by `-q`/`-v` or `RUST_LOG`; and, under a profiler, every info-level span (image
/// features, towers, scoring, each GLOV step, ...) as an NVTX range whatever the log filter.
fn init_logging(cli: &Cli) {
    use tracing_subscriber::prelude::*;
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter);
    let ranges = crate::nvtx::NvtxLayer.with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing_subscriber::registry().with(logs).with(ranges).try_init();
}

/// Runs a command on the backend the runtime options choose (the CPU unless told otherwise).
macro_rules! on_device {
    ($runtime:expr, $run:expr) => {{
        let runtime: &RuntimeOptions = $runtime;
        start(runtime, Device::Cpu)?;
        match runtime.device.unwrap_or(Device::Cpu) {
            Device::Cpu => $run(&CpuBackend::new()),
            Device::Cuda(ordinal) => $run(
                &CudaBackend::open(ordinal, runtime.kernels(), runtime.gpu_memory)?.with_graphs(runtime.cuda_graphs()),
            ),
        }
    }};
}

/// Starts the CPU worker pool of `--threads`, and says where the command computes when nothing chose it.
fn start(runtime: &RuntimeOptions, default: Device) -> Result<()> {
    if let Some(threads) = runtime.threads {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build_global()?;
    }
    if runtime.device.is_none() {
        tracing::info!("computing on {default} (the default; --device, or device = ... in a config file, chooses)");
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let runtime = &cli.runtime;
    match cli.command {
        Command::Optimize(args) => {
            let (args, file) = optimize::read_config(*args)?;
            on_device!(&runtime.clone().or(file.runtime.clone()), |b| optimize::run(b, args, file, cli.quiet))
        }
        Command::Score(args) => on_device!(runtime, |b| score::run(b, args)),
        Command::Probe(command) => on_device!(runtime, |b| probe::run(b, command)),
        Command::Bench(command) => on_device!(runtime, |b| bench::run(b, command)),
        Command::Generate(args) => on_device!(runtime, |b| generate::run(b, args)),
        Command::Describe(args) => on_device!(runtime, |b| describe::run(b, args)),
        Command::SteerVector(args) => on_device!(runtime, |b| steer_vector::run(b, args)),
        Command::Selftest(args) => {
            start(runtime, Device::Cuda(0))?;
            selftest::run(runtime, args)
        }
        Command::Sweep(args) => sweep::run(args, runtime.clone()),
        Command::Inspect(args) => inspect::run(args),
        Command::Report(args) => report::run(args),
    }
}

/// Output piped into a program that stops reading (`| head`) ends the process quietly, as for other command-line
/// tools, instead of failing on the next print.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub fn main() -> ExitCode {
    restore_default_sigpipe();
    let cli = Cli::parse();
    init_logging(&cli);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<optimize::Interrupted>() => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
