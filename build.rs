//! Build script: records the engine's source revision, and compiles the CUDA kernels.
//!
//! **Revision.** `GLOV_CUDA_COMMIT` (shown by `--version` and written into result files) is read from git when the
//! source is a git checkout.
//!
//! **Kernels.** Every `kernels/*.cu` is compiled by nvcc to PTX for `compute_80` (Ampere and later; the driver
//! compiles it for the card at load time), and a file whose first line holds `glov: sm_90a` also to a cubin for
//! `sm_90a` (Hopper-only instructions). Each PTX is then assembled by ptxas for sm_80 and sm_90, so that a kernel
//! that does not assemble fails the build, and the register / shared-memory / spill report of every kernel is
//! written to `$OUT_DIR/ptxas-report.txt`. The results are embedded in the binary through
//! `$OUT_DIR/kernels.rs`. nvcc is looked for in `$NVCC`, `$CUDA_HOME/bin`, `$CUDA_PATH/bin`, `PATH`, and the
//! project-local install of `scripts/setup-cuda.sh` (`.cuda/`). Without nvcc the build succeeds with a warning and
//! the CUDA backend reports that it was built without kernels; `GLOV_REQUIRE_KERNELS=1` makes that an error.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    record_commit();
    compile_kernels();
}

fn record_commit() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .is_some_and(|out| !out.stdout.is_empty());
    println!("cargo:rustc-env=GLOV_CUDA_COMMIT={commit}{}", if dirty { "-modified" } else { "" });
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
}

/// The first nvcc found, in the documented order.
fn find_nvcc(root: &Path) -> Option<PathBuf> {
    let from_env = |var: &str| std::env::var_os(var).map(PathBuf::from);
    let mut candidates = Vec::new();
    candidates.extend(from_env("NVCC"));
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        candidates.extend(from_env(var).map(|home| home.join("bin").join("nvcc")));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("nvcc")));
    }
    candidates.push(root.join(".cuda/nvidia/cu13/bin/nvcc"));
    candidates.into_iter().find(|p| p.is_file())
}

fn run(command: &mut Command, what: &str) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("{what}: cannot run {command:?}: {e}"))?;
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    if output.status.success() { Ok(text) } else { Err(format!("{what} failed:\n{text}")) }
}

/// One kernel file's build: PTX, the optional sm_90a cubin, and its ptxas reports.
fn build_one(nvcc: &Path, ptxas: &Path, source: &Path, out: &Path) -> Result<(String, bool, String), String> {
    let stem = source.file_stem().and_then(|s| s.to_str()).ok_or("kernel file names are UTF-8")?.to_string();
    let text = std::fs::read_to_string(source).map_err(|e| format!("{}: {e}", source.display()))?;
    let hopper = text.lines().next().is_some_and(|first| first.contains("glov: sm_90a"));
    let common = ["-O3", "-std=c++17", "-lineinfo", "--use_fast_math", "-I", "kernels"];
    let ptx = out.join(format!("{stem}.ptx"));
    run(
        Command::new(nvcc).args(common).args(["-ptx", "-arch=compute_80", "-o"]).arg(&ptx).arg(source),
        &format!("nvcc (PTX) of {}", source.display()),
    )?;
    let mut report = String::new();
    for arch in ["sm_80", "sm_90"] {
        let log = run(
            Command::new(ptxas)
                .args(["-v", "-O3", &format!("-arch={arch}"), "-o"])
                .arg(out.join("ptxas.tmp"))
                .arg(&ptx),
            &format!("ptxas {arch} of {}", source.display()),
        )?;
        report.push_str(&format!("== {stem}.cu, {arch}\n{log}\n"));
    }
    if hopper {
        run(
            Command::new(nvcc)
                .args(common)
                .args(["-cubin", "-gencode=arch=compute_90a,code=sm_90a", "-Xptxas", "-v", "-o"])
                .arg(out.join(format!("{stem}.sm_90a.cubin")))
                .arg(source),
            &format!("nvcc (sm_90a cubin) of {}", source.display()),
        )
        .map(|log| report.push_str(&format!("== {stem}.cu, sm_90a cubin\n{log}\n")))?;
    }
    Ok((stem, hopper, report))
}

/// Kernel entry names in a PTX file (`.entry name(`).
fn entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|line| line.trim_start().strip_prefix(".visible .entry "))
        .map(|rest| rest.split(['(', ' ']).next().unwrap_or("").to_string())
        .collect()
}

fn compile_kernels() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for var in ["NVCC", "CUDA_HOME", "CUDA_PATH", "GLOV_REQUIRE_KERNELS"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=kernels");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(root.join("kernels"))
        .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    sources.retain(|p| p.extension().is_some_and(|e| e == "cu" || e == "cuh"));
    sources.sort();
    for source in &sources {
        println!("cargo:rerun-if-changed={}", source.display());
    }
    sources.retain(|p| p.extension().is_some_and(|e| e == "cu"));
    let require = std::env::var("GLOV_REQUIRE_KERNELS").is_ok_and(|v| v == "1");

    let Some(nvcc) = find_nvcc(&root) else {
        let message = "nvcc not found (NVCC, CUDA_HOME, CUDA_PATH, PATH, .cuda/): building without CUDA kernels; \
                       run scripts/setup-cuda.sh and rebuild";
        if require {
            panic!("GLOV_REQUIRE_KERNELS=1: {message}");
        }
        println!("cargo:warning={message}");
        write_index(&out, None, &[]);
        return;
    };
    println!("cargo:rerun-if-changed={}", nvcc.display());
    let ptxas = nvcc.with_file_name("ptxas");
    let version = run(Command::new(&nvcc).arg("--version"), "nvcc --version")
        .map(|v| v.lines().filter(|l| l.contains("release")).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| panic!("{e}"));

    let results: Vec<Result<(String, bool, String), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            sources.iter().map(|source| scope.spawn(|| build_one(&nvcc, &ptxas, source, &out))).collect();
        handles.into_iter().map(|h| h.join().expect("a kernel build thread")).collect()
    });
    let mut built = Vec::new();
    let mut report = format!("ptxas resource report ({version})\n\n");
    for result in results {
        match result {
            Ok((stem, hopper, log)) => {
                report.push_str(&log);
                built.push((stem, hopper));
            }
            Err(e) => panic!("{e}"),
        }
    }
    let _ = std::fs::remove_file(out.join("ptxas.tmp"));
    std::fs::write(out.join("ptxas-report.txt"), report).expect("writing the ptxas report");
    write_index(&out, Some(&version), &built);
}

/// `$OUT_DIR/kernels.rs`: every module's name, PTX, optional sm_90a cubin and entry names.
fn write_index(out: &Path, nvcc_version: Option<&str>, built: &[(String, bool)]) {
    let mut code =
        String::from("/// The kernel modules embedded at build time.\npub const MODULES: &[KernelModule] = &[\n");
    for (stem, hopper) in built {
        let ptx = std::fs::read_to_string(out.join(format!("{stem}.ptx"))).expect("the PTX just written");
        let names: Vec<String> = entries(&ptx).into_iter().map(|e| format!("{e:?}")).collect();
        let cubin = if *hopper {
            format!("Some(include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{stem}.sm_90a.cubin\")))")
        } else {
            "None".to_string()
        };
        code.push_str(&format!(
            "    KernelModule {{ name: {stem:?}, ptx: include_str!(concat!(env!(\"OUT_DIR\"), \"/{stem}.ptx\")), \
             sm_90a: {cubin}, entries: &[{}] }},\n",
            names.join(", ")
        ));
    }
    code.push_str("];\n");
    code.push_str(&format!("/// The nvcc that compiled them, or `None` when the build had no nvcc.\npub const NVCC: Option<&str> = {nvcc_version:?};\n"));
    std::fs::write(out.join("kernels.rs"), code).expect("writing kernels.rs");
}
